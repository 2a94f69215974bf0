package httpssl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"

	"github.com/closenotify/openssl"
)

// Transport is an http.RoundTripper for "https" URLs that connects with
// openssl.DialContext and speaks HTTP/2 when the server picks "h2" by ALPN,
// HTTP/1.1 otherwise; "http" URLs go over plain TCP. Responses have
// Response.TLS set. It keeps connections alive and reuses them as
// net/http's Transport does, and is safe for concurrent use.
//
// It learns each server's protocol from a first connection, which then
// serves the request. When a server later picks the other protocol, the
// request fails with an error naming that, or, when its body can be sent
// again (none, or Request.GetBody set), is retried once.
//
// Proxies are not used: crypto/tls would make the TLS connection through
// one.
type Transport struct {
	sslCtx *openssl.Ctx      // constant
	flags  openssl.DialFlags // constant
	// h1 and h2 are net/http Transports limited to one protocol each: h2
	// runs net/http's HTTP/2 on our connections as its "unencrypted"
	// HTTP/2.
	h1, h2 *http.Transport // constant

	mu     sync.Mutex
	probes map[string]*probe // protected by mu; by "host:port"
}

// probe is what a first connection to a server told about its protocol.
type probe struct {
	done chan struct{} // closed once h2 and err are set
	h2   bool
	err  error
}

// NewTransport returns a Transport whose connections are made with sslCtx
// and flags, as openssl.DialContext makes them (host name verification and
// SNI unless flags say otherwise). It sets sslCtx's ALPN list to
// NextProtos(). A nil sslCtx means a new Ctx trusting the system's CAs.
// The HTTP settings are those of http.DefaultTransport (idle connection
// limits and timeouts), without a proxy.
func NewTransport(sslCtx *openssl.Ctx, flags openssl.DialFlags) (*Transport, error) {
	if sslCtx == nil {
		var err error
		if sslCtx, err = openssl.NewCtx(); err != nil {
			return nil, err
		}
		if err = sslCtx.SetDefaultVerifyPaths(); err != nil {
			return nil, err
		}
	}
	if err := sslCtx.SetNextProtos(NextProtos()); err != nil {
		return nil, err
	}
	t := &Transport{sslCtx: sslCtx, flags: flags, probes: make(map[string]*probe)}
	t.h1 = http.DefaultTransport.(*http.Transport).Clone()
	t.h1.Proxy = nil
	t.h1.DialTLSContext = t.dialer(false)
	t.h1.Protocols = new(http.Protocols)
	t.h1.Protocols.SetHTTP1(true)
	t.h2 = t.h1.Clone()
	t.h2.DialTLSContext = t.dialer(true)
	t.h2.Protocols = new(http.Protocols)
	t.h2.Protocols.SetUnencryptedHTTP2(true)
	return t, nil
}

// ErrProtocolChanged: a server picked another protocol by ALPN than it
// did on an earlier connection; the next request learns the new one.
var ErrProtocolChanged = errors.New("httpssl: the server changed its ALPN protocol choice")

// RoundTrip sends req and returns its response, with Response.TLS set for
// "https" URLs. Errors are net/http's, openssl.DialContext's, or wrap
// ErrProtocolChanged.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "https" {
		return t.h1.RoundTrip(req)
	}
	resp, err := t.roundTrip(req)
	if errors.Is(err, ErrProtocolChanged) {
		if again, ok := rewind(req); ok {
			resp, err = t.roundTrip(again)
		}
	}
	return resp, err
}

// rewind returns req ready to be sent again, if its body allows.
func rewind(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again := req.Clone(req.Context())
	again.Body = body
	return again, true
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	addr := hostPort(req)
	h2, conn, err := t.protocol(req.Context(), addr)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	var got atomic.Pointer[clientConn]
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if c, ok := info.Conn.(*clientConn); ok {
				got.Store(c)
			}
		},
	})
	if conn != nil {
		h := &handoff{addr: addr}
		h.conn.Store(conn)
		defer h.closeUnused()
		ctx = context.WithValue(ctx, handoffKey{}, h)
	}
	rt := t.h1
	if h2 {
		rt = t.h2
	}
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if resp.TLS == nil {
		// net/http's HTTP/1 code sets it only for a *tls.Conn.
		if c := got.Load(); c != nil {
			st := c.ConnectionState()
			resp.TLS = &st
		}
	}
	return resp, nil
}

// hostPort returns req's "host:port" as net/http passes it to
// DialTLSContext.
func hostPort(req *http.Request) string {
	port := req.URL.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(req.URL.Hostname(), port)
}

// protocol returns whether addr's server speaks HTTP/2, connecting to it
// first when that is not known yet; the connection it made then is
// returned for the request to use. Requests that arrive while another
// connects wait for its answer; when it failed (its context may have
// been cancelled), each connects itself.
func (t *Transport) protocol(ctx context.Context, addr string) (h2 bool, conn *openssl.Conn, err error) {
	t.mu.Lock()
	p, known := t.probes[addr]
	if !known {
		p = &probe{done: make(chan struct{})}
		t.probes[addr] = p
	}
	t.mu.Unlock()
	if known {
		select {
		case <-p.done:
			if p.err == nil {
				return p.h2, nil, nil
			}
			p = &probe{done: make(chan struct{})} // this request's own
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
	}
	conn, p.err = openssl.DialContext(ctx, "tcp", addr, t.sslCtx, t.flags)
	if p.err != nil {
		t.forget(addr, p) // the next request tries again
	} else {
		p.h2 = conn.ConnectionState().NegotiatedProtocol == "h2"
		t.mu.Lock()
		if _, ok := t.probes[addr]; !ok {
			t.probes[addr] = p // a request's own, after a failed one
		}
		t.mu.Unlock()
	}
	close(p.done)
	return p.h2, conn, p.err
}

// forget drops what is known of addr's protocol, if it is still p (or
// whatever it is, for a nil p).
func (t *Transport) forget(addr string, p *probe) {
	t.mu.Lock()
	if q := t.probes[addr]; p == nil || q == p {
		delete(t.probes, addr)
	}
	t.mu.Unlock()
}

// handoff carries the connection protocol made to the dial of the
// request it was made for.
type handoff struct {
	addr string
	conn atomic.Pointer[openssl.Conn]
}

type handoffKey struct{}

func (h *handoff) closeUnused() {
	if c := h.conn.Swap(nil); c != nil {
		c.Close()
	}
}

// dialer returns the DialTLSContext of h1 (h2 false) or h2.
func (t *Transport) dialer(h2 bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, ok := ctx.Value(handoffKey{}).(*handoff); ok && h.addr == addr {
			if c := h.conn.Swap(nil); c != nil {
				return &clientConn{c}, nil
			}
		}
		c, err := openssl.DialContext(ctx, network, addr, t.sslCtx, t.flags)
		if err != nil {
			return nil, err
		}
		if got := c.ConnectionState().NegotiatedProtocol; (got == "h2") != h2 {
			t.forget(addr, nil)
			c.Close()
			return nil, fmt.Errorf("%w: %s now picked %q", ErrProtocolChanged, addr, got)
		}
		return &clientConn{c}, nil
	}
}

// CloseIdleConnections closes the connections that carry no request, as
// http.Transport's method does.
func (t *Transport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2.CloseIdleConnections()
}

// clientConn is a client *openssl.Conn as net/http sees it: its
// ConnectionState is crypto/tls's, which net/http's HTTP/2 code puts into
// Response.TLS.
type clientConn struct {
	*openssl.Conn
}

// ConnectionState returns the state in crypto/tls's form.
func (c *clientConn) ConnectionState() tls.ConnectionState {
	return c.Conn.TLSConnectionState()
}

// NetConn returns the *openssl.Conn, as tls.Conn's NetConn returns the
// connection under TLS.
func (c *clientConn) NetConn() net.Conn { return c.Conn }
