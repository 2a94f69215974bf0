package openssl

/*
#include "shim.h"
*/
import "C"

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
)

// How Go callbacks work. OpenSSL calls a C trampoline (shim.c) during an SSL
// operation; the trampoline finds the Conn's cgo.Handle in the SSL's ex data
// and calls one of the exported functions below. The SSL operation runs in
// callSSL with the Conn's sslMu held by the calling goroutine, so a callback
// may use what sslMu protects but must never lock it. A callback's panic is
// recovered here and fails the handshake with an error saying so.

// ctxHooks are the Go callbacks of a Ctx. Handshakes read them while the
// Ctx's setters replace them, so each is an atomic pointer read without a
// lock: a callback may itself call a setter. The setters install or remove
// the C trampoline with Ctx.mu held.
type ctxHooks struct {
	verify     atomic.Pointer[VerifyCallback]
	peerChain  atomic.Pointer[func(chain []*x509.Certificate) error]
	servername atomic.Pointer[TLSExtServernameCallback]
	keyLog     atomic.Pointer[keyLogger]
	sessions   atomic.Pointer[sessionCache]
}

// connHooks is what a Conn's callbacks need.
type connHooks struct {
	handle cgo.Handle // constant; in the SSL's ex data; deleted by freeSSL
	// err is the first error or panic of a callback during the current
	// handshake; the handshake fails with it. Protected by sslMu.
	err error
	// switched is the Ctx an SNI callback moved the connection to, nil if
	// none: the Conn keeps it alive, and later callbacks use its hooks.
	// Protected by sslMu.
	switched *Ctx
	// sessionKey is the client session cache's key, "" for no caching.
	// Protected by sslMu.
	sessionKey string
	// peerName is the name setPeerName made the handshake verify, for
	// the error of a mismatch. Protected by sslMu.
	peerName string
	// sessionSet: SetSession gave an explicit session, which the cache
	// must not replace. Protected by sslMu.
	sessionSet bool
}

// setHook stores v (nil removes the hook) and, for a hook, installs its
// trampoline on the SSL_CTX, with c.mu held. A trampoline stays installed
// once it is (see shim.h): with a nil hook it does what OpenSSL does
// without a callback.
func setHook[T any](c *Ctx, hook *atomic.Pointer[T], v *T, install func(sslCtx *C.SSL_CTX)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	hook.Store(v)
	if v != nil {
		install(c.sslCtx)
	}
}

// ptrOrNil returns &v, or nil when isNil (a nil function or writer).
func ptrOrNil[T any](v T, isNil bool) *T {
	if isNil {
		return nil
	}
	return &v
}

// ctxValue runs a C accessor of the SSL_CTX with c.mu held, for writing
// when set is true, and returns its result.
func (c *Ctx) ctxValue(set bool, f func(sslCtx *C.SSL_CTX) C.long) int64 {
	if set {
		c.mu.Lock()
		defer c.mu.Unlock()
	} else {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	defer runtime.KeepAlive(c)
	return int64(f(c.sslCtx))
}

// sslCall runs f on the SSL with sslMu held, before the handshake, and
// turns a failure into an *Error for op.
func (c *Conn) sslCall(op string, f func(ssl *C.SSL, r *C.go_ossl_result)) error {
	if c.handshakeDone.Load() {
		return &Error{Op: op, Err: errAfterHandshake}
	}
	var r C.go_ossl_result
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return &Error{Op: op, Err: net.ErrClosed}
	}
	if f(c.ssl, &r); r.ret != 1 {
		return callError(op, &r)
	}
	return nil
}

// attachHandle gives the new SSL the Conn's handle, for the trampolines.
func (c *Conn) attachHandle() error {
	c.hooks.handle = cgo.NewHandle(c)
	if C.go_ossl_set_conn_handle(c.ssl, C.uintptr_t(c.hooks.handle)) != 1 {
		c.hooks.handle.Delete()
		c.hooks.handle = 0
		return &Error{Op: "new conn", Err: errCallbackSlot}
	}
	return nil
}

var (
	errCallbackSlot   = errors.New("openssl: no SSL ex-data slot for the connection's callbacks")
	errAfterHandshake = errors.New("openssl: must be called before the handshake")
)

// connOf returns the Conn of a trampoline's handle.
func connOf(h C.uintptr_t) *Conn {
	return cgo.Handle(h).Value().(*Conn)
}

// hookCtx is the Ctx whose hooks apply to the connection now. sslMu held.
func (c *Conn) hookCtx() *Ctx {
	if c.hooks.switched != nil {
		return c.hooks.switched
	}
	return c.sslCtx
}

// guard runs a user callback named what and keeps its error, or its panic
// as an error, as the Conn's callback error. sslMu held (by the goroutine
// running the SSL operation).
func (c *Conn) guard(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("openssl: %s callback panicked: %v", what, p)
		}
		if err != nil && c.hooks.err == nil {
			c.hooks.err = err
		}
	}()
	return f()
}

// takeCallbackErr returns and clears the callback error.
func (c *Conn) takeCallbackErr() error {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	err := c.hooks.err
	c.hooks.err = nil
	return err
}

//export goOsslVerify
func goOsslVerify(h C.uintptr_t, ok C.int, store *C.X509_STORE_CTX) C.int {
	c := connOf(h)
	cb := c.hookCtx().hooks.verify.Load()
	if cb == nil {
		return ok
	}
	sc := &CertificateStoreCtx{store: store}
	defer sc.invalidate()
	var accept bool
	if err := c.guard("verify", func() error {
		accept = (*cb)(ok == 1, sc)
		return nil
	}); err != nil {
		C.X509_STORE_CTX_set_error(store, C.X509_V_ERR_APPLICATION_VERIFICATION)
		return 0
	}
	if accept {
		return 1
	}
	if ok == 1 {
		// The callback rejected a certificate OpenSSL accepted.
		C.X509_STORE_CTX_set_error(store, C.X509_V_ERR_APPLICATION_VERIFICATION)
	}
	return 0
}

//export goOsslCertVerify
func goOsslCertVerify(h C.uintptr_t, ok C.int, store *C.X509_STORE_CTX) C.int {
	c := connOf(h)
	hook := c.hookCtx().hooks.peerChain.Load()
	if hook == nil {
		return 1
	}
	if ok != 1 && C.SSL_get_verify_mode(c.ssl)&C.SSL_VERIFY_PEER != 0 {
		return 1 // OpenSSL's verdict stands; the hook runs on what passed
	}
	chain, err := storeChain(store)
	if err == nil {
		err = c.guard("verify peer certificate", func() error { return (*hook)(chain) })
	}
	if err != nil {
		if c.hooks.err == nil {
			c.hooks.err = err
		}
		return 0
	}
	return 1
}

//export goOsslServername
func goOsslServername(h C.uintptr_t, ssl *C.SSL, alert *C.int) C.int {
	c := connOf(h)
	cb := c.sslCtx.hooks.servername.Load()
	if cb == nil {
		return C.SSL_TLSEXT_ERR_NOACK
	}
	s := &SSL{ssl: ssl, conn: c}
	defer func() { s.ssl, s.conn = nil, nil }()
	result := SSLTLSExtErrAlertFatal
	c.guard("server name", func() error {
		result = (*cb)(s)
		return nil
	})
	return C.int(result)
}

//export goOsslKeyLog
func goOsslKeyLog(h C.uintptr_t, line *C.char) {
	c := connOf(h)
	kl := c.hookCtx().hooks.keyLog.Load()
	if kl == nil {
		return
	}
	text := C.GoString(line)
	c.guard("key log", func() error { return kl.write(text) })
}

//export goOsslNewSession
func goOsslNewSession(h C.uintptr_t, sess *C.SSL_SESSION) C.int {
	c := connOf(h)
	cache := c.sslCtx.hooks.sessions.Load()
	if cache == nil || c.hooks.sessionKey == "" || !cache.put(c.hooks.sessionKey, sess) {
		return 0
	}
	return 1
}
