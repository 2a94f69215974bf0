package openssl

/*
#include <stdlib.h>
#include <openssl/x509.h>
#include <openssl/evp.h>
#include "shim.h"
*/
import "C"

import (
	"crypto/x509"
	"errors"
	"runtime"
	"sync"
	"unsafe"
	"weak"
)

// Certificate is an X.509 certificate held by OpenSSL. It is freed when
// garbage collected; a Ctx that uses it takes its own reference.
type Certificate struct {
	x *C.X509 // constant
}

// LoadCertificateFromPEM parses the first certificate in pem. Input without
// a certificate, or a damaged one, is an *Error naming OpenSSL's reason
// (corresponds to PEM_read_bio_X509).
func LoadCertificateFromPEM(pem []byte) (*Certificate, error) {
	if len(pem) == 0 {
		return nil, &Error{Op: "load certificate", Err: errors.New("openssl: empty PEM input")}
	}
	var r C.go_ossl_result
	buf := C.CBytes(pem)
	defer C.free(buf)
	x := C.go_ossl_x509_from_pem(buf, C.int(len(pem)), &r)
	if x == nil {
		return nil, callError("load certificate", &r)
	}
	return newCertificate(x), nil
}

// newCertificate takes over a reference to x.
func newCertificate(x *C.X509) *Certificate {
	cert := &Certificate{x: x}
	runtime.AddCleanup(cert, func(x *C.X509) { C.X509_free(x) }, x)
	return cert
}

// X509 returns the certificate parsed by crypto/x509. The result may be
// shared with other callers and connections (see parseX509): do not modify
// it.
func (c *Certificate) X509() (*x509.Certificate, error) {
	defer runtime.KeepAlive(c)
	return parseX509(c.x)
}

// parseX509 converts an OpenSSL certificate to crypto/x509's form. It
// parses each distinct certificate once while a parsed copy is in use, as
// crypto/tls's certificate cache does: every connection to the same server
// (and every resumed one, whose chain comes from the session) gets the same
// *x509.Certificate, where parsing an ECDSA certificate cost about 30 µs of
// a resumed handshake's 1.5 ms.
func parseX509(x *C.X509) (*x509.Certificate, error) {
	der, err := certDER(x)
	if err != nil {
		return nil, err
	}
	return parsedCerts.parse(der)
}

// certCache maps a certificate's DER to its parsed form, held weakly: an
// entry lives as long as some caller keeps the certificate, and its
// cleanup removes it afterwards.
type certCache struct {
	m sync.Map // string(DER) → weak.Pointer[x509.Certificate]
}

var parsedCerts certCache

func (cc *certCache) parse(der []byte) (*x509.Certificate, error) {
	if v, ok := cc.m.Load(string(der)); ok {
		if cert := v.(weak.Pointer[x509.Certificate]).Value(); cert != nil {
			return cert, nil
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	key, wp := string(der), weak.Make(cert)
	for {
		// A parse that ran meanwhile may have stored a copy first: while
		// it lives, that one is the certificate, so that every caller
		// gets the same pointer.
		old, loaded := cc.m.LoadOrStore(key, wp)
		if loaded {
			if live := old.(weak.Pointer[x509.Certificate]).Value(); live != nil {
				return live, nil
			}
			if !cc.m.CompareAndSwap(key, old, wp) {
				continue
			}
		}
		// CompareAndDelete: a later parse may have replaced the entry.
		runtime.AddCleanup(cert, func(key string) { cc.m.CompareAndDelete(key, wp) }, key)
		return cert, nil
	}
}

// has reports whether der has an entry, for tests.
func (cc *certCache) has(der []byte) bool {
	_, ok := cc.m.Load(string(der))
	return ok
}

// certDER encodes x in DER.
func certDER(x *C.X509) ([]byte, error) {
	var der *C.uchar
	n := C.go_ossl_x509_der(x, &der)
	if n <= 0 {
		return nil, &Error{Op: "encode certificate", Err: errors.New("openssl: i2d_X509 failed")}
	}
	defer C.go_ossl_free(unsafe.Pointer(der))
	return C.GoBytes(unsafe.Pointer(der), n), nil
}
