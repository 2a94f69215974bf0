package openssl

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// Ctx is a TLS configuration: one OpenSSL SSL_CTX. It is safe to share
// between goroutines, and connections made from it keep what they need of it
// alive after it is unreachable. Changes affect connections made afterwards.
// The SSL_CTX is freed when the Ctx is garbage collected.
type Ctx struct {
	sslCtx *C.SSL_CTX // constant

	// mu guards the fields below. Every change to sslCtx holds it for
	// writing; making an SSL from sslCtx (SSL_new copies part of its
	// settings) holds it for reading, so that connections are made in
	// parallel and never see a setting half changed.
	mu          sync.RWMutex
	minVersion  uint16      // protected by mu
	maxVersion  uint16      // protected by mu
	closePolicy ClosePolicy // protected by mu
	verifyMode  VerifyMode  // protected by mu

	hooks ctxHooks // Go callbacks; atomic, set with mu held (callback.go)
}

// NewCtx returns a Ctx for TLS 1.2 and TLS 1.3 clients and servers, with
// OpenSSL's default ciphers, no certificate, no trusted roots and
// [VerifyNone]. It fails only when OpenSSL cannot allocate one.
func NewCtx() (*Ctx, error) {
	var r C.go_ossl_result
	sslCtx := C.go_ossl_ctx_new(&r)
	if sslCtx == nil {
		return nil, callError("new ctx", &r)
	}
	liveCtx.Add(1)
	c := &Ctx{sslCtx: sslCtx}
	runtime.AddCleanup(c, freeCtx, sslCtx)
	if err := c.SetMinProtoVersion(tls.VersionTLS12); err != nil {
		return nil, err
	}
	if err := c.SetSessionId(defaultSessionId); err != nil {
		return nil, err
	}
	return c, nil
}

func freeCtx(sslCtx *C.SSL_CTX) {
	C.go_ossl_ctx_free(sslCtx)
	liveCtx.Add(-1)
}

// lockedCall runs f on the SSL_CTX with c.mu held and turns a failure into
// an Error for op.
func (c *Ctx) lockedCall(op string, f func(sslCtx *C.SSL_CTX, r *C.go_ossl_result)) error {
	var r C.go_ossl_result
	c.mu.Lock()
	f(c.sslCtx, &r)
	c.mu.Unlock()
	runtime.KeepAlive(c)
	if r.ret != 1 {
		return callError(op, &r)
	}
	return nil
}

// VerifyMode says whether and how peers' certificates are verified.
type VerifyMode int

const (
	// VerifyNone: a client checks the server's certificate but goes on
	// whatever the result (see ConnectionState and Dial); a server asks no
	// certificate of the client.
	VerifyNone VerifyMode = C.SSL_VERIFY_NONE
	// VerifyPeer: a client aborts the handshake if the server's certificate
	// does not verify; a server asks the client for one and aborts if a
	// certificate is sent that does not verify.
	VerifyPeer VerifyMode = C.SSL_VERIFY_PEER
	// VerifyFailIfNoPeerCert, with VerifyPeer on a server: a client that
	// sends no certificate fails the handshake (mutual TLS).
	VerifyFailIfNoPeerCert VerifyMode = C.SSL_VERIFY_FAIL_IF_NO_PEER_CERT
	// VerifyClientOnce, with VerifyPeer on a server: do not ask again on
	// renegotiation or post-handshake authentication.
	VerifyClientOnce VerifyMode = C.SSL_VERIFY_CLIENT_ONCE
)

// SetVerifyMode sets how peer certificates are verified, keeping the
// verify callback of [Ctx.SetVerify] (corresponds to SSL_CTX_set_verify).
func (c *Ctx) SetVerifyMode(mode VerifyMode) {
	c.mu.Lock()
	c.verifyMode = mode
	C.go_ossl_ctx_set_verify(c.sslCtx, C.int(mode), boolInt(c.hooks.verify.Load() != nil))
	c.mu.Unlock()
	runtime.KeepAlive(c)
}

// VerifyMode returns the mode SetVerifyMode set, VerifyNone by default.
func (c *Ctx) VerifyMode() VerifyMode {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.verifyMode
}

// LoadVerifyLocations trusts the CA certificates in caFile (PEM, may hold
// several) and in the hashed directory caDir; either may be "". An unreadable
// file or directory is an *Error naming OpenSSL's reason
// (corresponds to SSL_CTX_load_verify_locations).
func (c *Ctx) LoadVerifyLocations(caFile, caDir string) error {
	if caFile == "" && caDir == "" {
		return &Error{Op: "load verify locations", Err: errors.New("openssl: neither a CA file nor a CA directory given")}
	}
	if caDir != "" {
		// OpenSSL looks into the directory only during verification, so a
		// missing one would go unnoticed here.
		if fi, err := os.Stat(caDir); err != nil {
			return &Error{Op: "load verify locations", Err: err}
		} else if !fi.IsDir() {
			return &Error{Op: "load verify locations", Err: fmt.Errorf("openssl: %s is not a directory", caDir)}
		}
	}
	var file, dir *C.char
	if caFile != "" {
		file = C.CString(caFile)
		defer C.free(unsafe.Pointer(file))
	}
	if caDir != "" {
		dir = C.CString(caDir)
		defer C.free(unsafe.Pointer(dir))
	}
	return c.lockedCall("load verify locations", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_load_verify_locations(sslCtx, file, dir, r)
	})
}

// SetDefaultVerifyPaths trusts the system's CA certificates, as configured in
// the OpenSSL build (corresponds to SSL_CTX_set_default_verify_paths).
func (c *Ctx) SetDefaultVerifyPaths() error {
	return c.lockedCall("set default verify paths", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_default_verify_paths(sslCtx, r)
	})
}

// UseCertificate sets the certificate the Ctx presents
// (corresponds to SSL_CTX_use_certificate).
func (c *Ctx) UseCertificate(cert *Certificate) error {
	if cert == nil {
		return &Error{Op: "use certificate", Err: errors.New("openssl: nil certificate")}
	}
	err := c.lockedCall("use certificate", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_use_certificate(sslCtx, cert.x, r)
	})
	runtime.KeepAlive(cert)
	return err
}

// AddChainCertificate appends an intermediate certificate sent after the
// leaf (corresponds to SSL_CTX_add1_chain_cert).
func (c *Ctx) AddChainCertificate(cert *Certificate) error {
	if cert == nil {
		return &Error{Op: "add chain certificate", Err: errors.New("openssl: nil certificate")}
	}
	err := c.lockedCall("add chain certificate", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_add_chain_certificate(sslCtx, cert.x, r)
	})
	runtime.KeepAlive(cert)
	return err
}

// UsePrivateKey sets the private key of the certificate set by
// UseCertificate. A key that does not match that certificate is an *Error
// ("key values mismatch") and leaves the Ctx without a key
// (corresponds to SSL_CTX_use_PrivateKey).
func (c *Ctx) UsePrivateKey(key PrivateKey) error {
	if key == nil {
		return &Error{Op: "use private key", Err: errors.New("openssl: nil private key")}
	}
	err := c.lockedCall("use private key", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_use_private_key(sslCtx, key.evpPKey(), r)
	})
	runtime.KeepAlive(key)
	return err
}

// SetMinProtoVersion sets the lowest TLS version, tls.VersionTLS12 or
// tls.VersionTLS13 (the default is TLS 1.2). An unsupported version, or one
// above the maximum, is an error and changes nothing
// (corresponds to SSL_CTX_set_min_proto_version).
func (c *Ctx) SetMinProtoVersion(version uint16) error {
	c.mu.RLock()
	max := c.maxVersion
	c.mu.RUnlock()
	return c.setProtoVersions("set min proto version", version, max)
}

// SetMaxProtoVersion sets the highest TLS version, tls.VersionTLS12 or
// tls.VersionTLS13 (default: the highest OpenSSL supports). An unsupported
// version, or one below the minimum, is an error and changes nothing
// (corresponds to SSL_CTX_set_max_proto_version).
func (c *Ctx) SetMaxProtoVersion(version uint16) error {
	c.mu.RLock()
	min := c.minVersion
	c.mu.RUnlock()
	return c.setProtoVersions("set max proto version", min, version)
}

func (c *Ctx) setProtoVersions(op string, min, max uint16) error {
	for _, v := range []uint16{min, max} {
		if v != 0 && v != tls.VersionTLS12 && v != tls.VersionTLS13 {
			return &Error{Op: op, Err: fmt.Errorf("openssl: unsupported TLS version %#04x (TLS 1.2 and 1.3 are)", v)}
		}
	}
	if min != 0 && max != 0 && min > max {
		return &Error{Op: op, Err: fmt.Errorf("openssl: minimum TLS version %s above maximum %s", tls.VersionName(min), tls.VersionName(max))}
	}
	err := c.lockedCall(op, func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_proto_versions(sslCtx, C.int(min), C.int(max), r)
	})
	if err == nil {
		c.mu.Lock()
		c.minVersion, c.maxVersion = min, max
		c.mu.Unlock()
	}
	return err
}

// SetCipherList sets the TLS 1.2 cipher list in OpenSSL's syntax, such as
// "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256". A list that
// selects no cipher is an *Error ("no cipher match")
// (corresponds to SSL_CTX_set_cipher_list).
func (c *Ctx) SetCipherList(list string) error {
	return c.setString("set cipher list", list, func(sslCtx *C.SSL_CTX, s *C.char, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_cipher_list(sslCtx, s, r)
	})
}

// SetCipherSuites sets the TLS 1.3 cipher suites, such as
// "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256". A list with no
// known suite is an *Error; unknown names beside known ones are ignored, as
// OpenSSL does (corresponds to SSL_CTX_set_ciphersuites).
func (c *Ctx) SetCipherSuites(suites string) error {
	return c.setString("set cipher suites", suites, func(sslCtx *C.SSL_CTX, s *C.char, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_ciphersuites(sslCtx, s, r)
	})
}

// SetGroups sets the key-exchange groups in preference order, such as
// "X25519:P-256". A list naming a group OpenSSL does not know, or cannot
// use (X25519 in FIPS mode, for one), is an *Error that quotes the list and
// changes nothing (corresponds to SSL_CTX_set1_groups_list).
func (c *Ctx) SetGroups(groups string) error {
	err := c.setString("set groups", groups, func(sslCtx *C.SSL_CTX, s *C.char, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_groups(sslCtx, s, r)
	})
	if e, ok := err.(*Error); ok {
		// OpenSSL 3.0 says only "passed invalid argument", and 3.5
		// leaves the error queue empty.
		e.Err = fmt.Errorf("openssl: unknown or unavailable group in %q", groups)
	}
	return err
}

func (c *Ctx) setString(op, s string, f func(*C.SSL_CTX, *C.char, *C.go_ossl_result)) error {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return c.lockedCall(op, func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) { f(sslCtx, cs, r) })
}

// SetNextProtos sets the ALPN protocols, most preferred first: a client
// offers them, a server picks its most preferred one the client offers and
// fails the handshake (no_application_protocol) when there is none. Each
// name is 1 to 255 bytes (corresponds to SSL_CTX_set_alpn_protos and
// SSL_CTX_set_alpn_select_cb).
func (c *Ctx) SetNextProtos(protos []string) error {
	var wire []byte
	for _, p := range protos {
		if len(p) == 0 || len(p) > 255 {
			return &Error{Op: "set next protos", Err: fmt.Errorf("openssl: ALPN protocol name %q must be 1 to 255 bytes", p)}
		}
		wire = append(wire, byte(len(p)))
		wire = append(wire, p...)
	}
	if len(wire) == 0 {
		return &Error{Op: "set next protos", Err: errors.New("openssl: no ALPN protocols")}
	}
	cw := C.CBytes(wire)
	defer C.free(cw)
	return c.lockedCall("set next protos", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_alpn(sslCtx, (*C.uchar)(cw), C.uint(len(wire)), r)
	})
}

// Options are SSL_CTX option bits.
type Options uint64

const (
	// IgnoreUnexpectedEOF switches truncation detection off: a peer that
	// closes TCP without close_notify looks like one that sent it, so Read
	// returns io.EOF instead of ErrTruncated. Only for protocols that detect
	// truncation themselves (a length prefix, HTTP's Content-Length).
	IgnoreUnexpectedEOF Options = C.SSL_OP_IGNORE_UNEXPECTED_EOF
	// NoRenegotiation refuses TLS 1.2 renegotiation.
	NoRenegotiation Options = C.SSL_OP_NO_RENEGOTIATION
	// CipherServerPreference makes a server choose by its own order.
	CipherServerPreference Options = C.SSL_OP_CIPHER_SERVER_PREFERENCE
	// NoTicket disables TLS session tickets.
	NoTicket Options = C.SSL_OP_NO_TICKET
)

// SetOptions adds options and returns all options now set
// (corresponds to SSL_CTX_set_options).
func (c *Ctx) SetOptions(o Options) Options {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	return Options(C.SSL_CTX_set_options(c.sslCtx, C.uint64_t(o)))
}

// ClearOptions removes options and returns all options still set
// (corresponds to SSL_CTX_clear_options).
func (c *Ctx) ClearOptions(o Options) Options {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	return Options(C.SSL_CTX_clear_options(c.sslCtx, C.uint64_t(o)))
}

// SetClosePolicy sets the ClosePolicy of connections made afterwards.
func (c *Ctx) SetClosePolicy(p ClosePolicy) {
	c.mu.Lock()
	c.closePolicy = p
	c.mu.Unlock()
}

func (c *Ctx) getClosePolicy() ClosePolicy {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closePolicy
}

// Version returns the version text of the libssl in use, such as
// "OpenSSL 3.0.19 27 Jan 2026" (corresponds to OpenSSL_version).
func Version() string {
	return C.GoString(C.OpenSSL_version(C.OPENSSL_VERSION))
}
