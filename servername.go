package openssl

/*
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// SSLTLSExtErr is what a [TLSExtServernameCallback] tells OpenSSL to do.
type SSLTLSExtErr int

const (
	// SSLTLSExtErrOK: go on with the handshake and acknowledge the name.
	SSLTLSExtErrOK SSLTLSExtErr = C.SSL_TLSEXT_ERR_OK
	// SSLTLSExtErrAlertWarning: go on, sending an unrecognized_name
	// warning (TLS 1.2 only; TLS 1.3 has no warning alerts).
	SSLTLSExtErrAlertWarning SSLTLSExtErr = C.SSL_TLSEXT_ERR_ALERT_WARNING
	// SSLTLSExtErrAlertFatal: fail the handshake with an unrecognized_name
	// alert.
	SSLTLSExtErrAlertFatal SSLTLSExtErr = C.SSL_TLSEXT_ERR_ALERT_FATAL
	// SSLTLSExtErrNoAck: go on without acknowledging the name.
	SSLTLSExtErrNoAck SSLTLSExtErr = C.SSL_TLSEXT_ERR_NOACK
)

// The spellings spacemonkeygo/openssl gives two of them.
const (
	SSLTLSEXTErrAlertFatal = SSLTLSExtErrAlertFatal
	SSLTLSEXTErrNoAck      = SSLTLSExtErrNoAck
)

// SSL is a server connection during its [TLSExtServernameCallback]. It is
// valid only during the callback; afterwards its methods do nothing.
type SSL struct {
	ssl  *C.SSL // nil after the callback
	conn *Conn  // nil after the callback
}

// GetServername returns the name the client sent (SNI), or ""
// (corresponds to SSL_get_servername).
func (s *SSL) GetServername() string {
	if s.ssl == nil {
		return ""
	}
	return cString(C.go_ossl_servername(s.ssl))
}

// SetSSLCtx moves the connection to sslCtx: its certificate, key, verify
// mode, verify callback and other callbacks apply to the rest of the
// handshake. The connection keeps sslCtx alive (corresponds to
// SSL_set_SSL_CTX).
func (s *SSL) SetSSLCtx(sslCtx *Ctx) {
	if s.ssl == nil || sslCtx == nil {
		return
	}
	sslCtx.mu.RLock()
	C.go_ossl_switch_ctx(s.ssl, sslCtx.sslCtx)
	sslCtx.mu.RUnlock()
	runtime.KeepAlive(sslCtx)
	s.conn.hooks.switched = sslCtx
}

// TLSExtServernameCallback is called on a server when the client's hello
// arrives, whether or not it names a server. It may switch the connection
// to another Ctx with [SSL.SetSSLCtx]. A panic fails the handshake with an
// error saying so.
type TLSExtServernameCallback func(ssl *SSL) SSLTLSExtErr

// SetTLSExtServernameCallback sets the server name callback; nil removes
// it. It replaces a function set by [Ctx.SetServerNameCallback]
// (corresponds to SSL_CTX_set_tlsext_servername_callback).
func (c *Ctx) SetTLSExtServernameCallback(cb TLSExtServernameCallback) {
	setHook(c, &c.hooks.servername, ptrOrNil(cb, cb == nil), func(sslCtx *C.SSL_CTX) {
		C.go_ossl_ctx_set_servername_hook(sslCtx)
	})
}

// SetServerNameCallback chooses a server's Ctx, hence its certificate, by
// the name the client asks for, as crypto/tls's GetCertificate does. choose
// gets the client's SNI ("" when it sent none) and returns:
//   - a Ctx: the handshake goes on with its certificate, key, verify mode
//     and callbacks;
//   - nil and no error: the handshake goes on with this Ctx;
//   - an error: the handshake fails with an unrecognized_name alert, and
//     its *Error wraps the error.
//
// It replaces a callback set by [Ctx.SetTLSExtServernameCallback]; nil
// removes it (corresponds to SSL_CTX_set_tlsext_servername_callback and
// SSL_set_SSL_CTX).
func (c *Ctx) SetServerNameCallback(choose func(serverName string) (*Ctx, error)) {
	if choose == nil {
		c.SetTLSExtServernameCallback(nil)
		return
	}
	c.SetTLSExtServernameCallback(func(ssl *SSL) SSLTLSExtErr {
		name := ssl.GetServername()
		next, err := choose(name)
		if err != nil {
			if ssl.conn.hooks.err == nil {
				ssl.conn.hooks.err = fmt.Errorf("openssl: no certificate for server name %q: %w", name, err)
			}
			return SSLTLSExtErrAlertFatal
		}
		if next != nil {
			ssl.SetSSLCtx(next)
		}
		return SSLTLSExtErrOK
	})
}
