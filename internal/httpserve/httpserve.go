// Package httpserve serves HTTP/1.1 and HTTP/2 with net/http over TLS
// connections that are not *tls.Conn: the openssl package's. It imports
// only the standard library, so that both the root package
// (ListenAndServeTLS) and httpssl build on it without an import cycle.
//
// net/http dispatches on ALPN only for *tls.Conn. For any other connection
// it can still speak HTTP/2 when Server.Protocols includes
// UnencryptedHTTP2: it then looks for the HTTP/2 client preface before
// reading an HTTP/1 request, and hands the connection to its own HTTP/2
// server. Over our connections the "unencrypted" stream is TLS's plaintext,
// so that is HTTP/2 over TLS, with net/http's own graceful shutdown.
//
// net/http fills Request.TLS for a connection with a ConnectionState method
// returning tls.ConnectionState, but then skips the preface check. So the
// connections handed to net/http have no such method, and a wrapper of the
// server's Handler sets Request.TLS from the connection the request came
// in on, as net/http does itself for *tls.Conn.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Conn is what serving needs of a server TLS connection; *openssl.Conn has
// it. The handshake must not have run yet: Serve runs it, bounded as
// net/http bounds a crypto/tls handshake, and logs its failure. NetConn is
// the connection under TLS, on which a plaintext HTTP request is answered.
type Conn interface {
	net.Conn
	HandshakeContext(ctx context.Context) error
	CloseWrite() error
	TLSConnectionState() tls.ConnectionState
	NetConn() net.Conn
}

// Serve configures srv (see Configure) and serves on l, whose Accept must
// return Conns. A handshake that fails with an error for which
// errors.Is(err, errHTTPRequest) (the client sent a plaintext HTTP
// request) is answered as net/http answers it over crypto/tls, and not
// logged; see answerHTTPRequest. It returns srv.Serve's error:
// http.ErrServerClosed after srv.Shutdown or srv.Close, or an error naming
// the connection type when l returns a connection that is not a Conn.
func Serve(srv *http.Server, l net.Listener, errHTTPRequest error) error {
	Configure(srv)
	return srv.Serve(&listener{Listener: l, srv: srv, errHTTPRequest: errHTTPRequest})
}

// Configure prepares srv for Serve, once; later calls change nothing:
//   - Protocols: HTTP/1 and HTTP/2 (net/http's UnencryptedHTTP2, which over
//     these connections runs inside TLS). A Protocols set by the caller is
//     kept, with UnencryptedHTTP2 added when it includes HTTP2; an empty
//     TLSNextProto map, net/http's old way to disable HTTP/2, still does.
//   - ConnContext: the caller's, then the connection for ConnFromContext.
//   - Handler: wrapped to set Request.TLS (a nil Handler means
//     http.DefaultServeMux, as for net/http).
func Configure(srv *http.Server) {
	configureMu.Lock()
	defer configureMu.Unlock()
	if _, done := srv.Handler.(tlsHandler); done {
		return
	}
	var p http.Protocols
	switch {
	case srv.Protocols != nil:
		p = *srv.Protocols
		if p.HTTP2() {
			p.SetUnencryptedHTTP2(true)
		}
	default:
		p.SetHTTP1(true)
		_, hasH2 := srv.TLSNextProto["h2"]
		p.SetUnencryptedHTTP2(srv.TLSNextProto == nil || hasH2)
	}
	srv.Protocols = &p

	connContext := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		return context.WithValue(ctx, connKey{}, c)
	}
	srv.Handler = tlsHandler{srv.Handler}
}

// configureMu serialises Configure, which reads and writes srv's fields.
var configureMu sync.Mutex

type connKey struct{}

// ConnFromContext returns the Conn a request, or a context derived from a
// ConnContext of a server set up by Configure, came in on; nil for any
// other context.
func ConnFromContext(ctx context.Context) Conn {
	if c, ok := ctx.Value(connKey{}).(*serverConn); ok {
		return c.Conn
	}
	return nil
}

// tlsHandler sets Request.TLS and calls h (http.DefaultServeMux when nil).
type tlsHandler struct{ h http.Handler }

func (h tlsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*serverConn); ok && r.TLS == nil {
		// Shared by the connection's requests, as net/http shares a
		// *tls.Conn's; set by the handshake before the first request was
		// read.
		r.TLS = c.state
	}
	next := h.h
	if next == nil {
		next = http.DefaultServeMux
	}
	next.ServeHTTP(w, r)
}

// listener hands net/http serverConns.
type listener struct {
	net.Listener
	srv            *http.Server // constant
	errHTTPRequest error        // constant
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(Conn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("openssl: the listener returned a %T, not a TLS connection (use openssl.Listen or openssl.NewListener)", c)
	}
	return &serverConn{Conn: tc, srv: l.srv, errHTTPRequest: l.errHTTPRequest}, nil
}

// serverConn runs the handshake on its first Read, which net/http makes
// before anything else, and reports a failure to the server's ErrorLog.
// It has no ConnectionState method (Conn's TLSConnectionState is not
// promoted under that name), so that net/http looks for the HTTP/2
// preface (see the package doc).
type serverConn struct {
	Conn
	srv            *http.Server // constant
	errHTTPRequest error        // constant; see Serve

	once         sync.Once
	handshakeErr error                // set inside once
	state        *tls.ConnectionState // set inside once, after a successful handshake
}

// NetConn returns the Conn, as tls.Conn's NetConn returns the connection
// under it: net/http's ConnState and ConnContext hooks see serverConns.
func (c *serverConn) NetConn() net.Conn { return c.Conn }

func (c *serverConn) Read(b []byte) (int, error) {
	c.once.Do(c.handshake)
	if c.handshakeErr != nil {
		return 0, c.handshakeErr
	}
	return c.Conn.Read(b)
}

// handshake runs the handshake within the time net/http gives a crypto/tls
// handshake: the shortest of ReadHeaderTimeout, ReadTimeout and
// WriteTimeout, when one is set.
func (c *serverConn) handshake() {
	ctx := context.Background()
	if d := handshakeTimeout(c.srv); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := c.Conn.HandshakeContext(ctx); err != nil {
		c.handshakeErr = err
		if errors.Is(err, c.errHTTPRequest) {
			c.answerHTTPRequest()
			return
		}
		c.logf("http: TLS handshake error from %s: %v", c.RemoteAddr(), err)
		return
	}
	st := c.Conn.TLSConnectionState()
	c.state = &st
}

// httpRequestAnswer is net/http's answer to a plaintext HTTP request on a
// TLS connection.
const httpRequestAnswer = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// lingerTimeout bounds answerHTTPRequest's wait for the client to close,
// as net/http's rstAvoidanceDelay bounds its own.
const lingerTimeout = 500 * time.Millisecond

// answerHTTPRequest answers a client that sent a plaintext HTTP request as
// net/http does for crypto/tls: httpRequestAnswer in plaintext on the
// connection under TLS (OpenSSL has sent nothing on it), then close. Unlike
// net/http it half-closes first and reads what the client sent until the
// client closes, for at most lingerTimeout: the rest of the request is
// still unread, and closing over unread input makes the kernel send RST,
// which can destroy the answer before the client reads it.
func (c *serverConn) answerHTTPRequest() {
	nc := c.Conn.NetConn()
	nc.SetDeadline(time.Now().Add(lingerTimeout))
	if _, err := io.WriteString(nc, httpRequestAnswer); err == nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			io.Copy(io.Discard, nc)
		}
	}
	c.Conn.Close()
}

func handshakeTimeout(srv *http.Server) time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

func (c *serverConn) logf(format string, args ...any) {
	if c.srv.ErrorLog != nil {
		c.srv.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}
