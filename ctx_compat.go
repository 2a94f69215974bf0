package openssl

// Ctx calls in spacemonkeygo/openssl's form: constructors by file and by
// version, the elliptic curve, modes and the option getter.

/*
#include <openssl/obj_mac.h>
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"runtime"
)

// NewCtxFromFiles returns a [NewCtx] Ctx serving the certificate chain in
// certFile (PEM: the leaf, then any intermediates sent after it; blocks
// other than CERTIFICATE are skipped) with the private key in keyFile,
// which must match the leaf. A file that cannot be read, one without a
// certificate or key, or a key that does not match is an *Error, wrapped
// with the file's name.
func NewCtxFromFiles(certFile, keyFile string) (*Ctx, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, &Error{Op: "load certificate", Err: err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, &Error{Op: "load private key", Err: err}
	}
	chain := certificateBlocks(certPEM)
	if len(chain) == 0 {
		return nil, &Error{Op: "load certificate", Err: fmt.Errorf("openssl: no PEM CERTIFICATE block in %s", certFile)}
	}
	sslCtx, err := NewCtx()
	if err != nil {
		return nil, err
	}
	for i, block := range chain {
		cert, err := LoadCertificateFromPEM(block)
		if err == nil && i == 0 {
			err = sslCtx.UseCertificate(cert)
		} else if err == nil {
			err = sslCtx.AddChainCertificate(cert)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	key, err := LoadPrivateKeyFromPEM(keyPEM)
	if err == nil {
		err = sslCtx.UsePrivateKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return sslCtx, nil
}

// SplitPEM returns each PEM block of data, in order, re-encoded on its own
// (headers such as those of an encrypted key are kept). Text between blocks
// is dropped.
func SplitPEM(data []byte) [][]byte {
	var blocks [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return blocks
		}
		blocks = append(blocks, pem.EncodeToMemory(block))
	}
}

// certificateBlocks returns the CERTIFICATE blocks of data, each
// re-encoded on its own, in order.
func certificateBlocks(data []byte) [][]byte {
	var blocks [][]byte
	for _, block := range SplitPEM(data) {
		if bytes.HasPrefix(block, []byte("-----BEGIN CERTIFICATE-----")) {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// SSLVersion names the protocol versions of [NewCtxWithVersion].
type SSLVersion int

// The versions of NewCtxWithVersion. The values are spacemonkeygo's.
const (
	// SSLv3, TLSv1 and TLSv1_1 are refused: this package speaks TLS 1.2
	// and 1.3 only (OpenSSL 3 disables the older versions below security
	// level 0, as they sign with MD5 and SHA-1).
	SSLv3   SSLVersion = 0x02
	TLSv1   SSLVersion = 0x03
	TLSv1_1 SSLVersion = 0x04
	// TLSv1_2 is TLS 1.2 only.
	TLSv1_2 SSLVersion = 0x05
	// AnyVersion is TLS 1.2 or 1.3, as NewCtx.
	AnyVersion SSLVersion = 0x06
	// TLSv1_3 is TLS 1.3 only.
	TLSv1_3 SSLVersion = 0x07
)

// NewCtxWithVersion returns a [NewCtx] Ctx limited to version. SSLv3, TLSv1,
// TLSv1_1 and unknown values are an *Error
// (corresponds to SSL_CTX_set_min_proto_version and
// SSL_CTX_set_max_proto_version).
func NewCtxWithVersion(version SSLVersion) (*Ctx, error) {
	var min, max uint16
	switch version {
	case AnyVersion:
	case TLSv1_2:
		min, max = tls.VersionTLS12, tls.VersionTLS12
	case TLSv1_3:
		min, max = tls.VersionTLS13, tls.VersionTLS13
	case SSLv3, TLSv1, TLSv1_1:
		return nil, &Error{Op: "new ctx", Err: errors.New("openssl: SSL 3.0, TLS 1.0 and TLS 1.1 are not supported (TLS 1.2 and 1.3 are)")}
	default:
		return nil, &Error{Op: "new ctx", Err: fmt.Errorf("openssl: unknown SSLVersion %d", int(version))}
	}
	sslCtx, err := NewCtx()
	if err != nil {
		return nil, err
	}
	if max != 0 {
		if err := sslCtx.setProtoVersions("new ctx", min, max); err != nil {
			return nil, err
		}
	}
	return sslCtx, nil
}

// EllipticCurve is a named elliptic curve, by OpenSSL's NID.
type EllipticCurve int

// The curves TLS uses for ECDHE and certificates.
const (
	Prime256v1 EllipticCurve = C.NID_X9_62_prime256v1 // P-256
	Secp384r1  EllipticCurve = C.NID_secp384r1        // P-384
	Secp521r1  EllipticCurve = C.NID_secp521r1        // P-521
)

// SetEllipticCurve makes curve the only group for the key exchange, in TLS
// 1.2 and TLS 1.3 alike: a TLS 1.3 client that offered a key share for
// another group is asked for one on curve (HelloRetryRequest). An unknown
// curve is an *Error. [Ctx.SetGroups] sets a list
// (corresponds to SSL_CTX_set1_groups_list).
func (c *Ctx) SetEllipticCurve(curve EllipticCurve) error {
	return c.lockedCall("set elliptic curve", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_curve(sslCtx, C.int(curve), r)
	})
}

// Options beside those of ctx.go, for code written for spacemonkeygo. The
// protocol ones change nothing: a Ctx never speaks below TLS 1.2, and
// OpenSSL 3 has no compression unless built with zlib.
const (
	NoSSLv2       Options = C.SSL_OP_NO_SSLv2 // zero in OpenSSL 3
	NoSSLv3       Options = C.SSL_OP_NO_SSLv3
	NoTLSv1       Options = C.SSL_OP_NO_TLSv1
	NoTLSv1_1     Options = C.SSL_OP_NO_TLSv1_1
	NoCompression Options = C.SSL_OP_NO_COMPRESSION
	// NoSessionResumptionOrRenegotiation: a TLS 1.2 renegotiation always
	// makes a new session.
	NoSessionResumptionOrRenegotiation Options = C.SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION
)

// GetOptions returns the options set (corresponds to SSL_CTX_get_options).
func (c *Ctx) GetOptions() Options {
	c.mu.RLock()
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	return Options(C.SSL_CTX_get_options(c.sslCtx))
}

// Modes are SSL_CTX mode bits.
type Modes int

const (
	// ReleaseBuffers frees a connection's buffers while it is idle: less
	// memory per idle connection, more allocation per record (16 KiB
	// writes measured 1.3x slower).
	ReleaseBuffers Modes = C.SSL_MODE_RELEASE_BUFFERS
	// NoAutoChain: a Ctx without AddChainCertificate sends the leaf
	// alone instead of building the chain from its trusted CAs.
	NoAutoChain Modes = C.SSL_MODE_NO_AUTO_CHAIN
	// EnablePartialWrite and AcceptMovingWriteBuffer are always set:
	// Write loops over partial writes and may retry from another address.
	// ClearMode leaves them set.
	EnablePartialWrite      Modes = C.SSL_MODE_ENABLE_PARTIAL_WRITE
	AcceptMovingWriteBuffer Modes = C.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
)

// settableModes are the modes SetMode and ClearMode change; others, such as
// SSL_MODE_ASYNC, would give results Conn does not expect.
const settableModes = ReleaseBuffers | NoAutoChain

// SetMode adds the modes among ReleaseBuffers and NoAutoChain, ignores any
// other bit, and returns all modes now set (corresponds to
// SSL_CTX_set_mode).
func (c *Ctx) SetMode(modes Modes) Modes {
	return c.changeMode(modes&settableModes, 0)
}

// ClearMode removes the modes among ReleaseBuffers and NoAutoChain and
// returns all modes still set (corresponds to SSL_CTX_clear_mode).
func (c *Ctx) ClearMode(modes Modes) Modes {
	return c.changeMode(0, modes&settableModes)
}

// GetMode returns the modes set (corresponds to SSL_CTX_get_mode).
func (c *Ctx) GetMode() Modes {
	return c.changeMode(0, 0)
}

func (c *Ctx) changeMode(set, clear Modes) Modes {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	return Modes(C.go_ossl_ctx_mode(c.sslCtx, C.long(set), C.long(clear)))
}
