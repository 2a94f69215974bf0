package openssl

/*
#include <openssl/x509.h>
#include "shim.h"
*/
import "C"

import (
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// VerifyOptions is spacemonkeygo/openssl's name for [VerifyMode].
type VerifyOptions = VerifyMode

// VerifyCallback is called by OpenSSL's verification for each certificate
// of the peer's chain, root first, leaf (depth 0) last. ok is OpenSSL's
// verdict on the certificate; the callback's result replaces it, so
// returning true accepts a certificate OpenSSL rejected. store describes the
// certificate and is valid only during the call. A callback that panics
// fails the handshake with an error saying so. Under [VerifyNone] a client
// goes on whatever the result, as OpenSSL does (a panic still fails the
// handshake).
type VerifyCallback func(ok bool, store *CertificateStoreCtx) bool

// SetVerify sets the verify mode and callback; a nil callback leaves
// OpenSSL's verdict alone (corresponds to SSL_CTX_set_verify).
func (c *Ctx) SetVerify(mode VerifyMode, cb VerifyCallback) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	c.verifyMode = mode
	if cb == nil {
		c.hooks.verify.Store(nil)
	} else {
		c.hooks.verify.Store(&cb)
	}
	C.go_ossl_ctx_set_verify(c.sslCtx, C.int(mode), boolInt(cb != nil))
}

// SetVerifyCallback sets the verify callback, keeping the verify mode; nil
// removes it (corresponds to SSL_CTX_set_verify).
func (c *Ctx) SetVerifyCallback(cb VerifyCallback) {
	c.SetVerify(c.VerifyMode(), cb)
}

// GetVerifyCallback returns the callback SetVerify or SetVerifyCallback
// set, or nil.
func (c *Ctx) GetVerifyCallback() VerifyCallback {
	if cb := c.hooks.verify.Load(); cb != nil {
		return *cb
	}
	return nil
}

// SetVerifyDepth limits the chain to depth certificates between the leaf
// and the trust anchor (corresponds to SSL_CTX_set_verify_depth).
func (c *Ctx) SetVerifyDepth(depth int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	C.SSL_CTX_set_verify_depth(c.sslCtx, C.int(depth))
}

// GetVerifyDepth returns the depth SetVerifyDepth set, or -1 when it was
// not called (OpenSSL's limit is then 100) (corresponds to
// SSL_CTX_get_verify_depth).
func (c *Ctx) GetVerifyDepth() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	return int(C.SSL_CTX_get_verify_depth(c.sslCtx))
}

// SetVerifyPeerCertificate sets a hook that receives the peer's chain,
// leaf first, after OpenSSL's verification, as crypto/tls's
// Config.VerifyPeerCertificate does:
//   - it runs when OpenSSL accepted the chain, and on a client whose
//     verification is off ([VerifyNone] without [Dial] or
//     [Conn.SetServerName]) whatever OpenSSL's verdict;
//   - an error from it fails the handshake: the handshake's *Error wraps
//     it (errors.Is, errors.As) and the peer gets a bad_certificate alert;
//   - a panic fails the handshake the same way.
//
// nil removes it (corresponds to SSL_CTX_set_cert_verify_callback).
func (c *Ctx) SetVerifyPeerCertificate(hook func(chain []*x509.Certificate) error) {
	setHook(c, &c.hooks.peerChain, ptrOrNil(hook, hook == nil), func(sslCtx *C.SSL_CTX) {
		C.go_ossl_ctx_set_cert_verify_hook(sslCtx)
	})
}

// CertificateStoreCtx is OpenSSL's state during the verification of one
// certificate, given to a [VerifyCallback]. It is valid only during the
// callback; afterwards its methods return zero values.
type CertificateStoreCtx struct {
	store *C.X509_STORE_CTX // nil after the callback
}

func (s *CertificateStoreCtx) invalidate() { s.store = nil }

// GetCurrentCert returns the certificate being verified, or nil
// (corresponds to X509_STORE_CTX_get_current_cert).
func (s *CertificateStoreCtx) GetCurrentCert() *Certificate {
	if s.store == nil {
		return nil
	}
	x := C.X509_STORE_CTX_get_current_cert(s.store)
	if x == nil || C.X509_up_ref(x) != 1 {
		return nil
	}
	return newCertificate(x)
}

// VerifyResult returns OpenSSL's verdict on the current certificate
// (corresponds to X509_STORE_CTX_get_error).
func (s *CertificateStoreCtx) VerifyResult() VerifyResult {
	if s.store == nil {
		return VerifyOK
	}
	return VerifyResult(C.X509_STORE_CTX_get_error(s.store))
}

// Err returns OpenSSL's verdict as an *Error naming OpenSSL's reason, nil
// when the certificate verified.
func (s *CertificateStoreCtx) Err() error {
	if v := s.VerifyResult(); v != VerifyOK {
		return &Error{Op: "verify", Err: errors.New("openssl: " + v.String())}
	}
	return nil
}

// Depth returns the depth of the current certificate in the chain, 0 for
// the leaf (corresponds to X509_STORE_CTX_get_error_depth).
func (s *CertificateStoreCtx) Depth() int {
	if s.store == nil {
		return 0
	}
	return int(C.X509_STORE_CTX_get_error_depth(s.store))
}

// storeChain returns the chain a verification built, or the peer's
// certificates as sent when it built none, parsed by crypto/x509.
func storeChain(store *C.X509_STORE_CTX) ([]*x509.Certificate, error) {
	sk := C.X509_STORE_CTX_get0_chain(store)
	var chain []*x509.Certificate
	if sk == nil || C.OPENSSL_sk_num((*C.OPENSSL_STACK)(unsafe.Pointer(sk))) == 0 {
		leaf := C.X509_STORE_CTX_get0_cert(store)
		if leaf == nil {
			return nil, ErrNoPeerCertificate
		}
		cert, err := parseX509(leaf)
		if err != nil {
			return nil, err
		}
		chain = append(chain, cert)
		sk = C.X509_STORE_CTX_get0_untrusted(store)
	}
	st := (*C.OPENSSL_STACK)(unsafe.Pointer(sk))
	for i := C.int(0); sk != nil && i < C.OPENSSL_sk_num(st); i++ {
		x := (*C.X509)(C.OPENSSL_sk_value(st, i))
		cert, err := parseX509(x)
		if err != nil {
			return nil, err
		}
		if len(chain) > 0 && chain[0].Equal(cert) {
			continue
		}
		chain = append(chain, cert)
	}
	return chain, nil
}

// CertificateStore is a set of trusted certificates: a Ctx's own, from
// [Ctx.GetCertificateStore], or one of [NewCertificateStore], which
// [Ctx.SetCertificateStore] shares between Ctxs. OpenSSL locks the store
// itself, so certificates may be added while handshakes use it.
type CertificateStore struct {
	// Exactly one of the two is set.
	sslCtx *Ctx          // constant; the store is whichever its SSL_CTX has
	store  *C.X509_STORE // constant; from NewCertificateStore, one reference held
}

// NewCertificateStore returns an empty store of trusted certificates that
// belongs to no Ctx: fill it with [CertificateStore.AddCertificate] or
// [CertificateStore.LoadCertificatesFromPEM] and give it to Ctxs with
// [Ctx.SetCertificateStore]. It is freed when garbage collected and no Ctx
// uses it. It fails only when OpenSSL cannot allocate one
// (corresponds to X509_STORE_new).
func NewCertificateStore() (*CertificateStore, error) {
	var r C.go_ossl_result
	store := C.go_ossl_store_new(&r)
	if store == nil {
		return nil, callError("new certificate store", &r)
	}
	s := &CertificateStore{store: store}
	runtime.AddCleanup(s, func(store *C.X509_STORE) { C.X509_STORE_free(store) }, store)
	return s, nil
}

// GetCertificateStore returns the store of the CAs the Ctx trusts, which
// [LoadVerifyLocations] and [CertificateStore.AddCertificate] fill: after
// [Ctx.SetCertificateStore], the store set there
// (corresponds to SSL_CTX_get_cert_store).
func (c *Ctx) GetCertificateStore() *CertificateStore {
	return &CertificateStore{sslCtx: c}
}

// SetCertificateStore makes the Ctx trust the certificates of store
// instead of those it trusted before. The store is shared, not copied: a
// certificate added to it later is trusted by every Ctx that uses it, and
// [Ctx.LoadVerifyLocations] on any of them loads into it. Handshakes that
// start afterwards verify with store; one running meanwhile verifies with
// either. The replaced store is kept until the Ctx is freed. A nil store
// is an *Error (corresponds to SSL_CTX_set1_cert_store).
func (c *Ctx) SetCertificateStore(store *CertificateStore) error {
	const op = "set certificate store"
	if store == nil {
		return &Error{Op: op, Err: errors.New("openssl: nil certificate store")}
	}
	x := store.ref()
	defer C.X509_STORE_free(x)
	c.mu.Lock()
	defer c.mu.Unlock()
	// A handshake reads the SSL_CTX's store when it verifies, without
	// taking a reference or c.mu: the store replaced here stays alive as
	// long as the Ctx, which each Conn keeps alive.
	old := C.SSL_CTX_get_cert_store(c.sslCtx)
	C.X509_STORE_up_ref(old)
	runtime.AddCleanup(c, func(old *C.X509_STORE) { C.X509_STORE_free(old) }, old)
	C.SSL_CTX_set1_cert_store(c.sslCtx, x) // takes its own reference
	return nil
}

// ref returns the store with a reference for the caller. A Ctx's store is
// read under that Ctx's lock, which is released before the caller takes
// its own Ctx's: two Ctxs setting each other's store cannot deadlock.
func (s *CertificateStore) ref() *C.X509_STORE {
	if s.store != nil {
		C.X509_STORE_up_ref(s.store)
		runtime.KeepAlive(s)
		return s.store
	}
	s.sslCtx.mu.RLock()
	defer s.sslCtx.mu.RUnlock()
	defer runtime.KeepAlive(s.sslCtx)
	x := C.SSL_CTX_get_cert_store(s.sslCtx.sslCtx)
	C.X509_STORE_up_ref(x)
	return x
}

// AddCertificate trusts cert, as LoadVerifyLocations trusts the
// certificates of a file. Connections made afterwards see it; a
// certificate already in the store is not an error. A nil cert is an *Error
// (corresponds to X509_STORE_add_cert).
func (s *CertificateStore) AddCertificate(cert *Certificate) error {
	const op = "add certificate"
	if cert == nil {
		return &Error{Op: op, Err: errors.New("openssl: nil certificate")}
	}
	// The store locks itself; no Ctx lock is needed to add to it.
	x := s.ref()
	defer C.X509_STORE_free(x)
	var r C.go_ossl_result
	C.go_ossl_store_add_cert(x, cert.x, &r)
	runtime.KeepAlive(cert)
	if r.ret != 1 {
		return callError(op, &r)
	}
	return nil
}

// LoadCertificatesFromPEM trusts every certificate of data, PEM with one
// or more CERTIFICATE blocks such as a CA bundle; blocks of other types
// are skipped. All are parsed before any is added, so data without a
// CERTIFICATE block, or with one that does not parse, is an *Error and
// leaves the store as it was (corresponds to PEM_read_bio_X509 and
// X509_STORE_add_cert).
func (s *CertificateStore) LoadCertificatesFromPEM(data []byte) error {
	blocks := certificateBlocks(data)
	if len(blocks) == 0 {
		return &Error{Op: "load certificate", Err: errors.New("openssl: no PEM CERTIFICATE block")}
	}
	certs := make([]*Certificate, len(blocks))
	for i, block := range blocks {
		cert, err := LoadCertificateFromPEM(block)
		if err != nil {
			return fmt.Errorf("certificate %d of %d: %w", i+1, len(blocks), err)
		}
		certs[i] = cert
	}
	for _, cert := range certs {
		if err := s.AddCertificate(cert); err != nil {
			return err
		}
	}
	return nil
}
