package openssl

// Signatures with a PrivateKey and their check with a PublicKey, in
// spacemonkeygo/openssl's form: SignPKCS1v15 and VerifyPKCS1v15 with a
// Method naming the digest.

/*
#include <stdlib.h>
#include <openssl/evp.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// Method is the message digest of [PrivateKey.SignPKCS1v15] and
// [PublicKey.VerifyPKCS1v15]: one of the Method variables, or nil for
// Ed25519 and Ed448 keys, which sign the message itself. OpenSSL fetches
// the digest by name for each call, so FIPS mode applies to it.
type Method *digestMethod

// digestMethod names a digest as OpenSSL fetches it.
type digestMethod struct {
	name string // constant
}

// The digests of SignPKCS1v15 and VerifyPKCS1v15 (spacemonkeygo's names).
// SHA-1 is for checking old signatures: OpenSSL's FIPS provider refuses
// it for new ones.
var (
	SHA1_Method   Method = &digestMethod{"SHA1"}
	SHA256_Method Method = &digestMethod{"SHA2-256"}
	SHA384_Method Method = &digestMethod{"SHA2-384"}
	SHA512_Method Method = &digestMethod{"SHA2-512"}
)

// SignPKCS1v15 implements [PrivateKey].
func (k *privateKey) SignPKCS1v15(method Method, data []byte) ([]byte, error) {
	const op = "sign"
	md, err := k.digestName(op, method)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(md))
	sig := make([]byte, k.Size())
	n := C.size_t(len(sig))
	var r C.go_ossl_result
	C.go_ossl_pkey_sign(k.k, md, bytesArg(data), C.size_t(len(data)), bytesArg(sig), &n, &r)
	runtime.KeepAlive(k)
	if r.ret != 1 {
		return nil, callError(op, &r)
	}
	return sig[:n], nil
}

// VerifyPKCS1v15 implements [PublicKey].
func (k *publicKey) VerifyPKCS1v15(method Method, data, sig []byte) error {
	const op = "verify"
	md, err := k.digestName(op, method)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(md))
	var r C.go_ossl_result
	C.go_ossl_pkey_verify(k.k, md, bytesArg(data), C.size_t(len(data)), bytesArg(sig), C.size_t(len(sig)), &r)
	runtime.KeepAlive(k)
	switch r.ret {
	case 1:
		return nil
	case 0:
		return &Error{Op: op, Err: ErrVerification, Queue: takeQueue(&r)}
	}
	return callError(op, &r)
}

// digestName checks method against the key's type and returns its name
// for OpenSSL, to be freed by the caller: NULL (free does nothing with it)
// for the key types that sign without a digest.
func (k *publicKey) digestName(op string, method Method) (*C.char, error) {
	switch k.BaseType() {
	case KeyTypeED25519, KeyTypeED448:
		if method != nil {
			return nil, &Error{Op: op, Err: errors.New("openssl: Ed25519 and Ed448 keys sign the message itself: the method must be nil")}
		}
		return nil, nil
	case KeyTypeRSAPSS:
		return nil, &Error{Op: op, Err: errors.New("openssl: an RSA-PSS key makes PSS signatures only, not PKCS #1 v1.5")}
	}
	if method == nil {
		return nil, &Error{Op: op, Err: errors.New("openssl: no digest method (nil is for Ed25519 and Ed448 keys only)")}
	}
	return C.CString(method.name), nil
}

// zeroByte gives an empty slice an address: OpenSSL reads no byte of it,
// but some of its checks take a NULL buffer for a missing one.
var zeroByte [1]byte

// bytesArg is b's address for a C call that reads or writes len(b) bytes
// during the call only.
func bytesArg(b []byte) *C.uchar {
	if len(b) == 0 {
		return (*C.uchar)(unsafe.Pointer(&zeroByte[0]))
	}
	return (*C.uchar)(unsafe.Pointer(&b[0]))
}
