package openssl

import (
	"net/http"

	"github.com/closenotify/openssl/internal/httpserve"
)

// ListenAndServeTLS serves handler over HTTPS on the TCP address addr, with
// the certificate chain in certFile (PEM: the leaf, then any intermediates)
// and its key in keyFile, as net/http's function of that name does with
// crypto/tls. A nil handler means http.DefaultServeMux. It speaks HTTP/1.1
// and HTTP/2 (ALPN "h2", "http/1.1"); see ServerListenAndServeTLS. It
// returns only with an error: a file or the address that cannot be used,
// or the http.Server's.
func ListenAndServeTLS(addr, certFile, keyFile string, handler http.Handler) error {
	return ServerListenAndServeTLS(&http.Server{Addr: addr, Handler: handler}, certFile, keyFile)
}

// ServerListenAndServeTLS serves srv over HTTPS on srv.Addr (":https" when
// empty) with the certificate chain in certFile and its key in keyFile. It
// returns http.ErrServerClosed after srv.Shutdown or srv.Close, or the
// error that stopped it. On srv it sets, as the httpssl package's Serve
// does:
//   - Protocols: HTTP/1.1 and HTTP/2, served by net/http itself, with its
//     graceful Shutdown (a Protocols the caller set is kept, HTTP/2 added
//     to it as net/http's UnencryptedHTTP2 when it includes HTTP2, which
//     here runs inside TLS);
//   - Handler: wrapped so that Request.TLS holds the connection's state in
//     crypto/tls's form (ConnectionState.TLSConnectionState);
//   - ConnContext: the caller's, then the connection, which the httpssl
//     package's ConnFromContext returns.
//
// Handshakes run in each connection's goroutine, bounded by the shortest of
// srv's ReadHeaderTimeout, ReadTimeout and WriteTimeout (when one is set);
// a failed one is logged to srv.ErrorLog, except a plaintext HTTP request
// ([ErrHTTPRequest]), which gets net/http's plaintext "400 Bad Request"
// answer as the httpssl package's Serve describes. Connections close with
// the default ClosePolicy: close_notify, then TCP close.
func ServerListenAndServeTLS(srv *http.Server, certFile, keyFile string) error {
	ctx, err := NewCtxFromFiles(certFile, keyFile)
	if err != nil {
		return err
	}
	if err := ctx.SetNextProtos([]string{"h2", "http/1.1"}); err != nil {
		return err
	}
	addr := srv.Addr
	if addr == "" {
		addr = ":https"
	}
	l, err := Listen("tcp", addr, ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	return httpserve.Serve(srv, l, ErrHTTPRequest)
}
