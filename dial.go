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
// system's CAs. Errors are the dialer's or the handshake's *Error.
func Dial(network, addr string, sslCtx *Ctx, flags DialFlags) (*Conn, error) {
	return DialContext(context.Background(), network, addr, sslCtx, flags)
}

// DialContext is [Dial] bounded by ctx, for both the TCP connect and the
// handshake.
func DialContext(ctx context.Context, network, addr string, sslCtx *Ctx, flags DialFlags) (*Conn, error) {
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
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &Error{Op: "dial", Err: err}
	}
	conn, err := Client(raw, sslCtx)
	if err != nil {
		raw.Close()
		return nil, err
	}
	if err = conn.setPeerName(host, flags); err == nil {
		err = conn.HandshakeContext(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// setPeerName arranges SNI and host verification before the handshake.
func (c *Conn) setPeerName(host string, flags DialFlags) error {
	isIP := net.ParseIP(host) != nil
	sni := flags&DisableSNI == 0 && !isIP && host != ""
	verify := flags&InsecureSkipHostVerification == 0
	if !sni && !verify {
		return nil
	}
	chost := C.CString(host)
	defer C.free(unsafe.Pointer(chost))
	var r C.go_ossl_result
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	switch {
	case verify && isIP:
		C.go_ossl_set_ip(c.ssl, chost, &r)
		if r.ret == 1 && sni {
			C.go_ossl_set_host(c.ssl, chost, 1, &r)
		}
	case verify:
		C.go_ossl_set_host(c.ssl, chost, boolInt(sni), &r)
	default:
		C.go_ossl_set_sni(c.ssl, chost, &r)
	}
	if r.ret != 1 {
		return callError("set host", &r)
	}
	if verify {
		C.SSL_set_verify(c.ssl, C.SSL_VERIFY_PEER, nil)
	}
	return nil
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
