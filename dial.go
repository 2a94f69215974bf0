package openssl

/*
#include <stdlib.h>
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"net"
	"unsafe"
)

// DialFlags change what Dial checks.
type DialFlags int

const (
	// InsecureSkipHostVerification: do not verify the server's certificate
	// against the host name (nor the chain, unless the Ctx's verify mode is
	// VerifyPeer).
	InsecureSkipHostVerification DialFlags = 1 << iota
	// DisableSNI: send no server name indication.
	DisableSNI
)

// Dial connects to addr ("host:port") over network ("tcp", "tcp4", "tcp6")
// and completes a TLS handshake as a client. Unless flags say otherwise, it
// sends host as SNI and fails the handshake when the server's certificate
// does not verify against sslCtx's trusted CAs or does not match host (a DNS
// name or an IP address). A nil sslCtx means a new [Ctx] trusting the
// system's CAs. With [Ctx.SetClientSessionCache] it offers the session
// cached for host. Errors are the dialer's or the handshake's *Error. To
// verify another name than host, use [DialConfig].
func Dial(network, addr string, sslCtx *Ctx, flags DialFlags) (*Conn, error) {
	return DialContext(context.Background(), network, addr, sslCtx, flags)
}

// DialContext is [Dial] bounded by ctx, for both the TCP connect and the
// handshake.
func DialContext(ctx context.Context, network, addr string, sslCtx *Ctx, flags DialFlags) (*Conn, error) {
	d := DialConfig{Flags: flags}
	return d.DialContext(ctx, network, addr, sslCtx)
}

// DialConfig is what [DialConfig.Dial] does beyond [Dial]'s defaults; the
// zero DialConfig dials as Dial does with no flags.
type DialConfig struct {
	// ServerName is the name sent as SNI and verified against the
	// server's certificate; "" means the host of addr. It is also the key
	// of the client session cache (for an IP address, addr is).
	ServerName string
	// Flags are Dial's flags.
	Flags DialFlags
	// Session, when not nil, is offered to the server instead of the
	// client session cache's (see [Conn.SetSession]).
	Session []byte
	// Dialer makes the TCP connection; nil means a zero net.Dialer.
	Dialer *net.Dialer
}

// Dial connects and completes the handshake as d says.
func (d *DialConfig) Dial(network, addr string, sslCtx *Ctx) (*Conn, error) {
	return d.DialContext(context.Background(), network, addr, sslCtx)
}

// DialContext is [DialConfig.Dial] bounded by ctx, for both the TCP connect
// and the handshake.
func (d *DialConfig) DialContext(ctx context.Context, network, addr string, sslCtx *Ctx) (*Conn, error) {
	if ctx == nil {
		return nil, &Error{Op: "dial", Err: ErrNilContext}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &Error{Op: "dial", Err: err}
	}
	if sslCtx == nil {
		if sslCtx, err = NewCtx(); err != nil {
			return nil, err
		}
		if err = sslCtx.SetDefaultVerifyPaths(); err != nil {
			return nil, err
		}
	}
	name, key := host, host
	if d.ServerName != "" {
		name, key = d.ServerName, d.ServerName
	}
	if net.ParseIP(name) != nil {
		key = addr
	}
	dialer := d.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	raw, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &Error{Op: "dial", Err: err}
	}
	conn, err := Client(raw, sslCtx)
	if err != nil {
		raw.Close()
		return nil, err
	}
	if d.Session != nil {
		err = conn.SetSession(d.Session)
	}
	if err == nil {
		err = conn.setPeerName(name, key, d.Flags)
	}
	if err == nil {
		err = conn.HandshakeContext(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// setPeerName arranges SNI, host verification and the cached session
// before the handshake.
func (c *Conn) setPeerName(host, cacheKey string, flags DialFlags) error {
	isIP := net.ParseIP(host) != nil
	sni := flags&DisableSNI == 0 && !isIP && host != ""
	verify := flags&InsecureSkipHostVerification == 0
	chost := C.CString(host)
	defer C.free(unsafe.Pointer(chost))
	return c.sslCall("set host", func(ssl *C.SSL, r *C.go_ossl_result) {
		r.ret = 1
		switch {
		case verify && isIP:
			C.go_ossl_set_ip(ssl, chost, r)
			if r.ret == 1 && sni {
				C.go_ossl_set_host(ssl, chost, 1, r)
			}
		case verify:
			C.go_ossl_set_host(ssl, chost, boolInt(sni), r)
		case sni:
			C.go_ossl_set_sni(ssl, chost, r)
		}
		if r.ret != 1 {
			return
		}
		if verify {
			C.go_ossl_require_verify(ssl)
			c.hooks.peerName = host
		}
		c.useCachedSession(cacheKey, r)
	})
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Listen listens on laddr and returns a listener whose Accept returns
// server Conns made with sslCtx; their handshakes run on first use.
func Listen(network, laddr string, sslCtx *Ctx) (net.Listener, error) {
	l, err := net.Listen(network, laddr)
	if err != nil {
		return nil, err
	}
	return NewListener(l, sslCtx), nil
}

// NewListener wraps inner: Accept returns server Conns made with sslCtx. An
// accepted connection that cannot be wrapped is closed and its error
// returned by Accept.
func NewListener(inner net.Listener, sslCtx *Ctx) net.Listener {
	return &listener{Listener: inner, sslCtx: sslCtx}
}

type listener struct {
	net.Listener
	sslCtx *Ctx // constant
}

// Accept waits for a connection and returns it as a server *Conn.
func (l *listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	conn, err := Server(raw, l.sslCtx)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}
