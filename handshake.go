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
	"slices"
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
	// sent none. As with crypto/tls, the certificates are shared with other
	// connections that received the same ones: do not modify them.
	PeerCertificates []*x509.Certificate
	// VerifiedChains holds one chain, the one OpenSSL's verification
	// built: leaf first, ending at the trust anchor, with the certificates
	// the peer sent as the same pointers as in PeerCertificates. It is
	// nil:
	//   - when verification was off ([VerifyNone], as crypto/tls's
	//     InsecureSkipVerify), even though a client's OpenSSL checks the
	//     server's chain all the same;
	//   - when it failed (VerifyResult is not VerifyOK: a VerifyCallback
	//     accepted a certificate OpenSSL rejected), or the peer sent no
	//     certificate;
	//   - on a resumed session (DidResume): OpenSSL does not verify again
	//     and keeps no chain, where crypto/tls returns the chains it
	//     stored in the session;
	//   - when the verified chain is longer than 16 certificates, or
	//     crypto/x509 cannot parse one of them.
	//
	// Corresponds to SSL_get0_verified_chain.
	VerifiedChains [][]*x509.Certificate
	// VerifyResult is the verification result of the peer's certificate
	// (VerifyOK also when the peer sent none).
	VerifyResult VerifyResult

	// peerChain fills PeerCertificates and VerifiedChains when
	// ConnectionState is called.
	peerChain *peerChain
}

// peerChain is the peer's certificate chain and the chain OpenSSL verified,
// as OpenSSL holds them, parsed into crypto/x509's form only when
// [Conn.ConnectionState] is first called: most connections never ask, and
// the parse costs allocations a handshake need not make (OpenSSL has parsed
// and verified the chain already).
type peerChain struct {
	// x509s is the peer's chain, then a nil and the verified chain when
	// there is one: references of our own, freed once the Conn is
	// unreachable. Constant.
	x509s []*C.X509

	once     sync.Once
	certs    []*x509.Certificate   // protected by once
	verified [][]*x509.Certificate // protected by once
}

// maxChains bounds the certificates kept of the peer's chain and of the
// verified chain, each.
const maxChains = 16

// newPeerChain takes references to the peer's chain and, when verified,
// to the chain OpenSSL verified; nil when there is neither. The references
// are freed after owner becomes unreachable.
func newPeerChain(ssl *C.SSL, owner *Conn, verified bool) *peerChain {
	var chain [2*maxChains + 1]*C.X509
	n := int(C.go_ossl_peer_chains(ssl, &chain[0], maxChains, boolInt(verified)))
	if n == 0 {
		return nil
	}
	x509s := append([]*C.X509(nil), chain[:n]...)
	runtime.AddCleanup(owner, freeX509s, x509s)
	return &peerChain{x509s: x509s}
}

func freeX509s(x509s []*C.X509) {
	for _, x := range x509s {
		// X509_free(NULL), the chains' separator, does nothing.
		C.X509_free(x)
	}
}

// parse parses both chains on the first call. The certificates the peer
// sent appear in both as the same pointers, as with crypto/tls: parseX509
// gives one *x509.Certificate per certificate while it is in use.
func (p *peerChain) parse() {
	peer, verified, hasVerified := p.x509s, []*C.X509(nil), false
	if i := slices.Index(p.x509s, nil); i >= 0 {
		peer, verified, hasVerified = p.x509s[:i], p.x509s[i+1:], true
	}
	for _, x := range peer {
		// A certificate OpenSSL accepted but crypto/x509 cannot parse
		// is left out rather than failing a working connection.
		if cert, err := parseX509(x); err == nil {
			p.certs = append(p.certs, cert)
		}
	}
	if !hasVerified {
		return
	}
	chain := make([]*x509.Certificate, 0, len(verified))
	for _, x := range verified {
		cert, err := parseX509(x)
		if err != nil {
			return // a partial chain would misstate what was verified
		}
		chain = append(chain, cert)
	}
	p.verified = [][]*x509.Certificate{chain}
}

// certificates returns the peer's chain and the verified chains, parsing
// them on the first call.
func (p *peerChain) certificates() ([]*x509.Certificate, [][]*x509.Certificate) {
	if p == nil {
		return nil, nil
	}
	p.once.Do(p.parse)
	return p.certs, p.verified
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
	// Verification ran, as crypto/tls means it, when the mode asked for
	// it: a client's OpenSSL also checks under SSL_VERIFY_NONE, and then
	// ignores the result.
	verified := s.VerifyResult == VerifyOK && C.SSL_get_verify_mode(c.ssl)&C.SSL_VERIFY_PEER != 0
	s.peerChain = newPeerChain(c.ssl, c, verified)
	return s
}

// ConnectionState returns the state of the connection; before the handshake
// completes, the zero ConnectionState.
func (c *Conn) ConnectionState() ConnectionState {
	if !c.handshakeDone.Load() {
		return ConnectionState{}
	}
	s := c.state
	s.PeerCertificates, s.VerifiedChains = s.peerChain.certificates()
	return s
}
