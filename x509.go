package openssl

// Certificate calls in spacemonkeygo/openssl's form: names, PEM, the public
// key, the serial number and the host, email and IP checks.

/*
#include <stdlib.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "shim.h"
*/
import "C"

import (
	"encoding/pem"
	"errors"
	"net"
	"runtime"
	"unsafe"
)

// Name is a certificate's subject or issuer name. It keeps its certificate
// alive.
type Name struct {
	name *C.X509_NAME // constant; owned by cert
	cert *Certificate // constant
}

// GetSubjectName returns the certificate's subject name. The error is
// always nil; it is there for spacemonkeygo's signature
// (corresponds to X509_get_subject_name).
func (c *Certificate) GetSubjectName() (*Name, error) {
	return &Name{name: C.X509_get_subject_name(c.x), cert: c}, nil
}

// GetIssuerName returns the certificate's issuer name, as GetSubjectName
// (corresponds to X509_get_issuer_name).
func (c *Certificate) GetIssuerName() (*Name, error) {
	return &Name{name: C.X509_get_issuer_name(c.x), cert: c}, nil
}

// GetEntry returns the first value of attribute nid in the name, such as
// NID_commonName, as UTF-8 whatever its ASN.1 string type; ok is false when
// the name has none or it cannot be converted
// (corresponds to X509_NAME_get_index_by_NID and ASN1_STRING_to_UTF8).
func (n *Name) GetEntry(nid NID) (entry string, ok bool) {
	var out *C.uchar
	length := C.go_ossl_name_entry(n.name, C.int(nid), &out)
	runtime.KeepAlive(n)
	if length < 0 {
		return "", false
	}
	defer C.go_ossl_free(unsafe.Pointer(out))
	return C.GoStringN((*C.char)(unsafe.Pointer(out)), length), true
}

// MarshalPEM returns the certificate as a PEM "CERTIFICATE" block
// (corresponds to i2d_X509).
func (c *Certificate) MarshalPEM() ([]byte, error) {
	der, err := c.MarshalDER()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// MarshalDER returns the certificate in DER (corresponds to i2d_X509).
func (c *Certificate) MarshalDER() ([]byte, error) {
	defer runtime.KeepAlive(c)
	return certDER(c.x)
}

// PublicKey returns the certificate's public key
// (corresponds to X509_get_pubkey).
func (c *Certificate) PublicKey() (PublicKey, error) {
	var r C.go_ossl_result
	k := C.go_ossl_x509_pubkey(c.x, &r)
	runtime.KeepAlive(c)
	if k == nil {
		return nil, callError("certificate public key", &r)
	}
	return newPublicKey(k), nil
}

// GetSerialNumberHex returns the serial number in upper-case hexadecimal,
// whole bytes, such as "0A2B" ("" if OpenSSL cannot convert it)
// (corresponds to BN_bn2hex).
func (c *Certificate) GetSerialNumberHex() string {
	hex := C.go_ossl_x509_serial_hex(c.x)
	runtime.KeepAlive(c)
	if hex == nil {
		return ""
	}
	defer C.go_ossl_free(unsafe.Pointer(hex))
	return C.GoString(hex)
}

// ValidationError is wrapped by the *Error of CheckHost, CheckEmail,
// CheckIP and VerifyHostname when the certificate does not match: test it
// with errors.Is.
var ValidationError = errors.New("openssl: certificate does not match")

// CheckFlags change how CheckHost, CheckEmail and CheckIP match.
type CheckFlags int

const (
	// AlwaysCheckSubject: look at the subject's common name even when the
	// certificate has DNS names.
	AlwaysCheckSubject CheckFlags = C.X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT
	// NeverCheckSubject: never look at the subject's common name.
	NeverCheckSubject CheckFlags = C.X509_CHECK_FLAG_NEVER_CHECK_SUBJECT
	// NoWildcards: "*.example.com" matches nothing.
	NoWildcards CheckFlags = C.X509_CHECK_FLAG_NO_WILDCARDS
	// NoPartialWildcards: "w*.example.com" matches nothing.
	NoPartialWildcards CheckFlags = C.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS
)

// checkWhat selects the X509_check_ function of go_ossl_x509_check.
const (
	checkHost = iota
	checkEmail
	checkIP
)

// CheckHost returns nil when the certificate is valid for the DNS name host
// (wildcards included, unless flags say otherwise), an *Error wrapping
// ValidationError when it is not. It does not look at IP addresses: see
// VerifyHostname (corresponds to X509_check_host).
func (c *Certificate) CheckHost(host string, flags CheckFlags) error {
	return c.check("check host", checkHost, []byte(host), flags)
}

// CheckEmail is CheckHost for an email address
// (corresponds to X509_check_email).
func (c *Certificate) CheckEmail(email string, flags CheckFlags) error {
	return c.check("check email", checkEmail, []byte(email), flags)
}

// CheckIP is CheckHost for an IP address (corresponds to X509_check_ip).
func (c *Certificate) CheckIP(ip net.IP, flags CheckFlags) error {
	if ip4 := ip.To4(); ip4 != nil {
		// The certificate holds IPv4 addresses in 4 bytes.
		ip = ip4
	}
	if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
		return &Error{Op: "check ip", Err: errors.New("openssl: not an IP address")}
	}
	return c.check("check ip", checkIP, ip, flags)
}

// VerifyHostname is CheckIP for a host that parses as an IP address (also
// in brackets, "[::1]"), CheckHost for any other.
func (c *Certificate) VerifyHostname(host string) error {
	h := host
	if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return c.CheckIP(ip, 0)
	}
	return c.CheckHost(host, 0)
}

func (c *Certificate) check(op string, what C.int, value []byte, flags CheckFlags) error {
	if len(value) == 0 {
		return &Error{Op: op, Err: errors.New("openssl: empty name")}
	}
	cvalue := C.CBytes(value)
	defer C.free(cvalue)
	var r C.go_ossl_result
	C.go_ossl_x509_check(c.x, what, (*C.char)(cvalue), C.size_t(len(value)), C.uint(flags), &r)
	runtime.KeepAlive(c)
	switch {
	case r.ret > 0:
		return nil
	case r.ret == 0:
		return &Error{Op: op, Err: ValidationError}
	case r.ret == -2:
		return &Error{Op: op, Err: errors.New("openssl: malformed name (such as one with a NUL byte)")}
	}
	return callError(op, &r)
}
