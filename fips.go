package openssl

/*
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"sync"
)

// ErrFIPSUnavailable: SetFIPS(true) found no usable FIPS provider. The
// *Error that wraps it carries OpenSSL's reasons, such as the fips.so it
// could not open or the self-test that failed.
var ErrFIPSUnavailable = errors.New("openssl: FIPS provider not available")

// fipsMu serialises SetFIPS: its check and its change of the default
// property query are one step.
var fipsMu sync.Mutex

// FIPS reports whether OpenSSL runs in FIPS mode: "fips=yes" is part of
// the default property query of the default library context, and a
// provider answers it (SHA2-256 can be fetched with it). SetFIPS(true)
// turns it on; so does an OpenSSL configuration file (OPENSSL_CONF) with
// "default_properties = fips=yes"
// (corresponds to EVP_default_properties_is_fips_enabled).
func FIPS() bool {
	return C.go_ossl_fips_enabled() == 1
}

// SetFIPS turns FIPS mode on or off for the whole process, with the
// meaning golang-fips/openssl gives it. Turning on what is already on, or
// off what is off, changes nothing and returns nil.
//
//   - SetFIPS(true) loads and activates OpenSSL's "fips" provider and the
//     "base" provider (once per process; they stay loaded), then makes
//     "fips=yes" the default property query: every algorithm OpenSSL
//     fetches afterwards, for ciphers, key exchange, signatures and
//     hashes, comes from the FIPS provider, and a handshake with a peer
//     that offers nothing approved fails (ChaCha20-Poly1305 and X25519
//     are not offered, for one). When the provider cannot be loaded it
//     returns an *Error wrapping ErrFIPSUnavailable with OpenSSL's reasons
//     and changes nothing. OpenSSL finds the provider through its
//     configuration: fips.so in its modules directory (or OPENSSL_MODULES),
//     and a configuration file (OPENSSL_CONF) that includes the
//     fipsmodule.cnf written by "openssl fipsinstall". Debian's and
//     Ubuntu's OpenSSL packages have no FIPS provider.
//   - SetFIPS(false) removes "fips=yes" from the default property query;
//     the default provider's algorithms are used again.
//
// An SSL_CTX fetches its ciphers and digests when it is made, so a Ctx
// made before SetFIPS keeps the algorithms of the earlier mode: call
// SetFIPS before NewCtx, typically at program start
// (corresponds to OSSL_PROVIDER_try_load and
// EVP_default_properties_enable_fips).
func SetFIPS(enabled bool) error {
	const op = "set FIPS"
	fipsMu.Lock()
	defer fipsMu.Unlock()
	var r C.go_ossl_result
	if !enabled {
		// Also when FIPS() is false because a configuration file asked
		// for fips=yes that no provider answers.
		C.go_ossl_fips_enable(0, &r)
		if r.ret != 1 {
			return callError(op, &r)
		}
		return nil
	}
	if FIPS() {
		return nil
	}
	C.go_ossl_fips_load_providers(&r)
	if r.ret != 1 {
		return &Error{Op: op, Err: ErrFIPSUnavailable, Queue: takeQueue(&r)}
	}
	C.go_ossl_fips_enable(1, &r)
	if r.ret != 1 {
		return callError(op, &r)
	}
	if !FIPS() {
		// The provider loaded but answers no fips=yes query: undo.
		C.go_ossl_fips_enable(0, &r)
		return &Error{Op: op, Err: ErrFIPSUnavailable}
	}
	return nil
}

// negotiationReasons are libssl's reasons for a handshake that found no
// cipher, group or signature algorithm both sides accept, on our side or,
// by its alert, on the peer's.
var negotiationReasons = []C.int{
	C.SSL_R_NO_SHARED_CIPHER,
	C.SSL_R_NO_CIPHERS_AVAILABLE,
	C.SSL_R_NO_SHARED_GROUPS,
	C.SSL_R_NO_SUITABLE_KEY_SHARE,
	C.SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS,
	C.SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM,
	C.SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
	C.SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY,
}

// negotiationFailed reports whether a handshake error is one of
// negotiationReasons: the errors FIPS mode causes with a peer that offers
// nothing approved.
func (e *Error) negotiationFailed() bool {
	if e.Code != ErrorSSL {
		return false
	}
	for _, reason := range negotiationReasons {
		if e.hasReason(C.ERR_LIB_SSL, reason) {
			return true
		}
	}
	return false
}
