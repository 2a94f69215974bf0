package openssl

/*
#include <stdlib.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include "shim.h"
*/
import "C"

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"unsafe"
)

// SetServerName makes a client send name as SNI (unless it is an IP
// address) and fail the handshake when the server's certificate does not
// match it or does not verify against the Ctx's trusted CAs, even when
// the Ctx's mode is [VerifyNone]. The handshake's *Error then wraps an
// x509.HostnameError naming the certificate's names. It also picks the
// session of the Ctx's client session cache for name. Call it before the
// handshake.
//
// Which calls verify the server's name:
//   - [Dial], [DialContext], [DialSession] and [DialConfig] send SNI and
//     fail the handshake when the certificate does not verify or does not
//     match the name, unless flags say otherwise;
//   - SetServerName does the same for a Conn made by [Client];
//   - [Conn.SetTlsExtHostName] only sends SNI and verifies nothing;
//   - [Conn.VerifyHostname], after the handshake, checks the name and
//     nothing else (not the chain): the handshake has already succeeded;
//   - [Client] alone verifies only what the Ctx's verify mode says, and
//     never a name: under the default [VerifyNone] it accepts any
//     certificate.
//
// (corresponds to SSL_set_tlsext_host_name, SSL_set1_host or
// X509_VERIFY_PARAM_set1_ip_asc, and SSL_set_verify)
func (c *Conn) SetServerName(name string) error {
	if name == "" {
		return &Error{Op: "set server name", Err: errors.New("openssl: empty server name")}
	}
	key := name
	if net.ParseIP(name) != nil {
		key = c.RemoteAddr().String()
	}
	return c.setPeerName(name, key, 0)
}

// SetTlsExtHostName sends name as SNI and verifies nothing; see
// [Conn.SetServerName] for a call that verifies. Call it before the
// handshake (corresponds to SSL_set_tlsext_host_name).
func (c *Conn) SetTlsExtHostName(name string) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return c.sslCall("set tls ext host name", func(ssl *C.SSL, r *C.go_ossl_result) {
		C.go_ossl_set_sni(ssl, cname, r)
	})
}

// VerifyHostname checks, after the handshake, that the peer's certificate
// is valid for host, a DNS name or an IP address (IPv6 in brackets or
// not). It checks the name only, not the chain. A mismatch is an *Error
// wrapping ValidationError and an x509.HostnameError, whose text lists the
// names the certificate holds. Errors as [Conn.PeerCertificate]'s
// otherwise (corresponds to X509_check_host and X509_check_ip).
func (c *Conn) VerifyHostname(host string) error {
	chain, err := c.peerChain("verify hostname", 1)
	if err != nil {
		return err
	}
	leaf := chain[0]
	if err := leaf.VerifyHostname(host); !errors.Is(err, ValidationError) {
		return err
	}
	defer runtime.KeepAlive(leaf)
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	// Both spacemonkeygo's ValidationError and crypto/tls's error.
	return &Error{Op: "verify hostname", Err: fmt.Errorf("%w: %w", ValidationError, hostnameError(leaf.x, host))}
}

// hostnameError describes a mismatch as crypto/tls does: an
// x509.HostnameError, whose text lists the certificate's names.
func hostnameError(leaf *C.X509, host string) error {
	cert, err := parseX509(leaf)
	if err != nil {
		return err
	}
	return x509.HostnameError{Certificate: cert, Host: host}
}

// mismatchError is the HostnameError of a handshake that failed on the
// name set by setPeerName, or nil. sslMu held.
func (c *Conn) mismatchError(v VerifyResult) error {
	if c.ssl == nil || c.hooks.peerName == "" ||
		(v != C.X509_V_ERR_HOSTNAME_MISMATCH && v != C.X509_V_ERR_IP_ADDRESS_MISMATCH) {
		return nil
	}
	leaf := C.go_ossl_peer_leaf(c.ssl)
	if leaf == nil {
		return nil
	}
	defer C.X509_free(leaf)
	return hostnameError(leaf, c.hooks.peerName)
}
