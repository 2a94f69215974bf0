package openssl

// Conn calls in spacemonkeygo/openssl's form: simple reads of the
// connection's state.

/*
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"net"
	"runtime"
)

// SessionReused reports whether the handshake resumed a session; false
// before the handshake (ConnectionState's DidResume).
func (c *Conn) SessionReused() bool {
	return c.ConnectionState().DidResume
}

// CurrentCipher returns OpenSSL's name of the cipher suite, such as
// "TLS_AES_128_GCM_SHA256"; before the handshake completes, an *Error
// wrapping ErrHandshakeIncomplete (ConnectionState's CipherSuite).
func (c *Conn) CurrentCipher() (string, error) {
	if !c.handshakeDone.Load() {
		return "", &Error{Op: "current cipher", Err: ErrHandshakeIncomplete}
	}
	return c.state.CipherSuite, nil
}

// VerifyResult returns the verification result of the peer's certificate:
// after the handshake ConnectionState's; before it completes or after it
// failed, what OpenSSL has so far (Ok when it checked nothing), and Ok once
// Close freed the SSL (corresponds to SSL_get_verify_result).
func (c *Conn) VerifyResult() VerifyResult {
	if c.handshakeDone.Load() {
		return c.state.VerifyResult
	}
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return VerifyOK
	}
	return VerifyResult(C.SSL_get_verify_result(c.ssl))
}

// PeerCertificate returns the peer's certificate. Errors are an *Error
// wrapping ErrHandshakeIncomplete before the handshake completes,
// ErrNoPeerCertificate when the peer sent none, net.ErrClosed after Close
// (corresponds to SSL_get1_peer_certificate).
func (c *Conn) PeerCertificate() (*Certificate, error) {
	chain, err := c.peerChain("peer certificate", 1)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// PeerCertificateChain returns the chain the peer sent, its certificate
// first, on clients and servers alike (spacemonkeygo's servers left the
// peer's certificate out, as SSL_get_peer_cert_chain does); errors as
// PeerCertificate's.
func (c *Conn) PeerCertificateChain() ([]*Certificate, error) {
	return c.peerChain("peer certificate chain", maxPeerChain)
}

// maxPeerChain bounds the certificates read from a peer's chain.
const maxPeerChain = 16

func (c *Conn) peerChain(op string, max int) ([]*Certificate, error) {
	if !c.handshakeDone.Load() {
		return nil, &Error{Op: op, Err: ErrHandshakeIncomplete}
	}
	var chain [maxPeerChain]*C.X509
	c.sslMu.Lock()
	if c.ssl == nil {
		c.sslMu.Unlock()
		return nil, &Error{Op: op, Err: net.ErrClosed}
	}
	n := int(C.go_ossl_peer_chain(c.ssl, &chain[0], C.int(min(max, maxPeerChain))))
	c.sslMu.Unlock()
	runtime.KeepAlive(c)
	if n == 0 {
		return nil, &Error{Op: op, Err: ErrNoPeerCertificate}
	}
	certs := make([]*Certificate, n)
	for i, x := range chain[:n] {
		certs[i] = newCertificate(x)
	}
	return certs, nil
}

// UnderlyingConn returns the connection TLS runs on, as NetConn.
func (c *Conn) UnderlyingConn() net.Conn { return c.conn }

// GetCtx returns the Ctx the Conn was made with.
func (c *Conn) GetCtx() *Ctx { return c.sslCtx }
