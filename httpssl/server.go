// Package httpssl serves and fetches HTTP/1.1 and HTTP/2 over the openssl
// package's connections, with net/http doing the HTTP:
//   - Serve serves an http.Server on a listener from openssl.Listen or
//     openssl.NewListener; handlers see Request.TLS and can reach the
//     *openssl.Conn (ConnFromContext);
//   - Transport is an http.RoundTripper that dials with openssl.DialContext
//     and fills Response.TLS.
//
// HTTP/2 is chosen by ALPN: the Ctx must offer "h2" (SetNextProtos with
// NextProtos; NewTransport does it for its Ctx). net/http negotiates
// HTTP/2 by ALPN only on a *tls.Conn, so this package hands it the
// connection as net/http's "unencrypted" HTTP/2 (Protocols'
// UnencryptedHTTP2), which here runs inside TLS: the HTTP/2 code, its flow
// control and its graceful shutdown are net/http's own. net/http tells the
// two apart by the HTTP/2 client preface, which clients send after
// negotiating "h2" (and, with prior knowledge, without it). A plain
// http.Server.Serve on an openssl listener speaks HTTP/1.1 only, and
// without Request.TLS: its Ctx must not offer "h2" there.
package httpssl

import (
	"context"
	"net"
	"net/http"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/httpserve"
)

// NextProtos returns the ALPN list for HTTP/2 with a fallback to HTTP/1.1,
// most preferred first, for Ctx.SetNextProtos.
func NextProtos() []string { return []string{"h2", "http/1.1"} }

// Serve serves srv on l, which must return *openssl.Conn connections whose
// handshake has not run (openssl.Listen, openssl.NewListener). It speaks
// HTTP/1.1, and HTTP/2 when the handshake negotiated it (the listener's Ctx
// must offer it: SetNextProtos(NextProtos())). It returns srv.Serve's
// error: http.ErrServerClosed after srv.Shutdown or srv.Close.
//
// On srv it sets, once:
//   - Protocols: HTTP/1.1 and HTTP/2, served by net/http itself (a
//     Protocols the caller set is kept, with net/http's UnencryptedHTTP2
//     added when it includes HTTP2: over these connections it runs inside
//     TLS);
//   - Handler: wrapped so that Request.TLS holds the connection's state in
//     crypto/tls's form (openssl.ConnectionState.TLSConnectionState),
//     shared by the connection's requests as net/http shares a *tls.Conn's;
//   - ConnContext: the caller's, then the connection for ConnFromContext.
//     The net.Conn that ConnContext and ConnState hooks receive wraps the
//     *openssl.Conn, which its NetConn method returns.
//
// Each connection's handshake runs in its own goroutine on its first read,
// bounded like net/http bounds a crypto/tls handshake (the shortest of
// ReadHeaderTimeout, ReadTimeout and WriteTimeout, when one is set); a
// failure is logged to srv.ErrorLog as "http: TLS handshake error from
// ADDR: ERR", except when the client sent a plaintext HTTP request
// (openssl.ErrHTTPRequest: GET, POST, HEAD or PUT). That one is answered as
// net/http answers it over crypto/tls, in plaintext, "HTTP/1.0 400 Bad
// Request" with the body "Client sent an HTTP request to an HTTPS
// server.", and the connection closed, after reading what the client sent
// until it closes (at most half a second) so that the answer is not lost
// to a TCP reset.
//
// Connections end with Conn.Close and so with the listener Ctx's
// ClosePolicy: after a "Connection: close" response net/http first calls
// CloseWrite (close_notify, then FIN). srv.Shutdown is graceful for both
// protocols: idle HTTP/1.1 connections are closed, HTTP/2 ones get a GOAWAY
// and close once their streams are done. srv.Close closes every
// connection, one after the other, each within its ClosePolicy's Timeout.
func Serve(srv *http.Server, l net.Listener) error {
	return httpserve.Serve(srv, l, openssl.ErrHTTPRequest)
}

// ListenAndServeTLS serves handler over HTTPS on addr with the PEM
// certificate chain in certFile and the key in keyFile, speaking HTTP/1.1
// and HTTP/2; it is openssl.ListenAndServeTLS, which
// openssl.ServerListenAndServeTLS describes.
func ListenAndServeTLS(addr, certFile, keyFile string, handler http.Handler) error {
	return openssl.ListenAndServeTLS(addr, certFile, keyFile, handler)
}

// ConnFromContext returns the connection of the request whose context ctx
// is (or derives from), on a server set up by Serve or
// openssl.ListenAndServeTLS; nil otherwise, or when the listener returned
// a wrapper of *openssl.Conn.
func ConnFromContext(ctx context.Context) *openssl.Conn {
	c, _ := httpserve.ConnFromContext(ctx).(*openssl.Conn)
	return c
}
