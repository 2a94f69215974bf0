package openssl

/*
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"crypto/x509"
	"runtime"
	"sync"
	"unsafe"
)

// ConnectionState describes a connection after its handshake. Fields named
// as in crypto/tls mean the same.
type ConnectionState struct {
	// HandshakeComplete is true once the handshake succeeded; the other
	// fields are zero before.
	HandshakeComplete bool
	// Version is the TLS version, as crypto/tls's VersionTLS12 and
	// VersionTLS13.
	Version uint16
	// CipherSuite is OpenSSL's name of the cipher suite, such as
	// "TLS_AES_128_GCM_SHA256" or "ECDHE-ECDSA-AES128-GCM-SHA256".
	CipherSuite string
	// CipherSuiteID is the cipher suite's IANA number, as crypto/tls's
	// CipherSuite and its TLS_* constants give it.
	CipherSuiteID uint16
	// NegotiatedProtocol is the ALPN protocol, or "".
	NegotiatedProtocol string
	// ServerName is the SNI name the client sent, or "".
	ServerName string
	// DidResume is true when the session was resumed.
	DidResume bool
	// PeerCertificates is the peer's chain, leaf first; nil when the peer
	// sent none.
	PeerCertificates []*x509.Certificate
	// VerifyResult is the verification result of the peer's certificate
	// (VerifyOK also when the peer sent none).
	VerifyResult VerifyResult

	// peerChain fills PeerCertificates when ConnectionState is called.
	peerChain *peerChain
}

// peerChain is the peer's certificate chain as OpenSSL holds it, parsed into
// crypto/x509's form only when [Conn.ConnectionState] is first called: most
// connections never ask, and the parse costs allocations a handshake need
// not make (OpenSSL has parsed and verified the chain already).
type peerChain struct {
	x509s []*C.X509 // references of our own, freed once the Conn is unreachable
	once  sync.Once
	certs []*x509.Certificate // protected by once
}

// newPeerChain takes references to the peer's chain, nil when the peer sent
// none. The references are freed after owner becomes unreachable.
func newPeerChain(ssl *C.SSL, owner *Conn) *peerChain {
	const maxChain = 16
	var chain [maxChain]*C.X509
	n := int(C.go_ossl_peer_chain(ssl, &chain[0], maxChain))
	if n == 0 {
		return nil
	}
	x509s := append([]*C.X509(nil), chain[:n]...)
	runtime.AddCleanup(owner, freeX509s, x509s)
	return &peerChain{x509s: x509s}
}

func freeX509s(x509s []*C.X509) {
	for _, x := range x509s {
		C.X509_free(x)
	}
}

// certificates parses the chain on the first call.
func (p *peerChain) certificates() []*x509.Certificate {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		for _, x := range p.x509s {
			// A certificate OpenSSL accepted but crypto/x509 cannot
			// parse is left out rather than failing a working
			// connection.
			if cert, err := parseX509(x); err == nil {
				p.certs = append(p.certs, cert)
			}
		}
	})
	return p.certs
}

// Handshake runs the TLS handshake if it has not run yet. Read and Write
// call it; most programs need not. Its result is permanent: after a failure
// every call returns the same *Error, with OpenSSL's reason in Queue and, for
// certificate failures, Verify (corresponds to SSL_do_handshake).
func (c *Conn) Handshake() error {
	if c.handshakeDone.Load() {
		return nil
	}
	return c.HandshakeContext(context.Background())
}

// HandshakeContext is Handshake bounded by ctx as well as by the deadlines.
// When ctx ends first, the handshake fails for good with an *Error wrapping
// ctx's error. A nil ctx is ErrNilContext.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	if ctx == nil {
		return &Error{Op: "handshake", Err: ErrNilContext}
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil || c.handshakeDone.Load() {
		return c.handshakeErr
	}
	stop := c.interruptOn(ctx, dirBoth)
	err := c.handshakeStep.run(opHandshake, nil, dirRead)
	if stop() {
		err = ctx.Err()
	}
	if err != nil {
		c.handshakeErr = c.ioError(opHandshake, err)
		return c.handshakeErr
	}
	r := &c.handshakeStep.res
	cbErr := c.takeCallbackErr()
	if r.ret != 1 || cbErr != nil {
		// A callback's error fails the handshake even when OpenSSL
		// finished it (a key log write, say).
		e := &Error{Op: "handshake"}
		if r.ret != 1 {
			e = sslError("handshake", r)
			e.fipsRefusal = e.negotiationFailed() && FIPS()
		}
		c.sslMu.Lock()
		if c.ssl != nil {
			e.Verify = VerifyResult(C.SSL_get_verify_result(c.ssl))
		}
		if cbErr != nil {
			e.Err = cbErr
		} else if e.Err == nil {
			e.Err = c.mismatchError(e.Verify)
		}
		c.sslMu.Unlock()
		c.handshakeErr = e
		return e
	}
	c.state = c.readState()
	c.handshakeDone.Store(true)
	return nil
}

// readState reads the ConnectionState from the SSL after the handshake.
func (c *Conn) readState() ConnectionState {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	s := ConnectionState{HandshakeComplete: true}
	if c.ssl == nil {
		return s
	}
	s.Version = uint16(C.SSL_version(c.ssl))
	cipher := C.SSL_get_current_cipher(c.ssl)
	s.CipherSuite = cString(C.SSL_CIPHER_get_name(cipher))
	s.CipherSuiteID = uint16(C.SSL_CIPHER_get_protocol_id(cipher))
	var proto *C.uchar
	var protoLen C.uint
	C.SSL_get0_alpn_selected(c.ssl, &proto, &protoLen)
	if protoLen > 0 {
		s.NegotiatedProtocol = C.GoStringN((*C.char)(unsafe.Pointer(proto)), C.int(protoLen))
	}
	s.ServerName = cString(C.go_ossl_servername(c.ssl))
	s.DidResume = C.SSL_session_reused(c.ssl) == 1
	s.VerifyResult = VerifyResult(C.SSL_get_verify_result(c.ssl))
	s.peerChain = newPeerChain(c.ssl, c)
	return s
}

// ConnectionState returns the state of the connection; before the handshake
// completes, the zero ConnectionState.
func (c *Conn) ConnectionState() ConnectionState {
	if !c.handshakeDone.Load() {
		return ConnectionState{}
	}
	s := c.state
	s.PeerCertificates = s.peerChain.certificates()
	return s
}
