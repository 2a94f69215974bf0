package openssl

/*
#include <stdlib.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// PublicKey is a public key held by OpenSSL: a certificate's
// ([Certificate.PublicKey]), one loaded by [LoadPublicKeyFromPEM], or the
// public half of a [PrivateKey]. It is freed when garbage collected. Only
// this package implements it.
type PublicKey interface {
	// MarshalPKIXPublicKeyPEM encodes the key as a PEM "PUBLIC KEY"
	// (SubjectPublicKeyInfo), which crypto/x509's ParsePKIXPublicKey reads.
	MarshalPKIXPublicKeyPEM() ([]byte, error)
	// MarshalPKIXPublicKeyDER is MarshalPKIXPublicKeyPEM without the PEM.
	MarshalPKIXPublicKeyDER() ([]byte, error)
	// KeyType is the key's algorithm, such as KeyTypeRSA or KeyTypeEC
	// (corresponds to EVP_PKEY_get_id).
	KeyType() NID
	// BaseType is KeyType, with aliases of one algorithm folded into one
	// (corresponds to EVP_PKEY_get_base_id).
	BaseType() NID
	// VerifyPKCS1v15 checks that sig is the key's signature of data
	// hashed with method, as [PrivateKey.SignPKCS1v15] makes it:
	// RSASSA-PKCS1-v1_5 for RSA, ECDSA in ASN.1 DER for EC, EdDSA over
	// data with a nil method for Ed25519 and Ed448. A signature that does
	// not match data, or is damaged, is an *Error wrapping
	// [ErrVerification]; a method that does not suit the key is an *Error
	// as for SignPKCS1v15 (corresponds to EVP_DigestVerifyInit_ex and
	// EVP_DigestVerify).
	VerifyPKCS1v15(method Method, data, sig []byte) error
	// Equal reports whether key is the same public key: the same type and
	// the same public components, so that a private key equals its public
	// half and its certificate's key. A nil key equals nothing
	// (corresponds to EVP_PKEY_eq).
	Equal(key PublicKey) bool
	// Size is the length in bytes of the longest signature the key makes:
	// the modulus for RSA, the longest ASN.1 DER encoding for ECDSA, 64
	// for Ed25519 (corresponds to EVP_PKEY_get_size).
	Size() int

	evpPKey() *C.EVP_PKEY
}

// PrivateKey is a private key held by OpenSSL, from [LoadPrivateKeyFromPEM]
// or a Generate function. It is freed when garbage collected; a Ctx that
// uses it takes its own reference. Only this package implements it.
type PrivateKey interface {
	PublicKey
	// MarshalPKCS1PrivateKeyPEM encodes the key in its type's own format
	// ("RSA PRIVATE KEY" PKCS#1, "EC PRIVATE KEY" SEC 1), or as PKCS#8
	// for types without one (Ed25519), unencrypted.
	MarshalPKCS1PrivateKeyPEM() ([]byte, error)
	// MarshalPKCS1PrivateKeyDER is MarshalPKCS1PrivateKeyPEM without the
	// PEM.
	MarshalPKCS1PrivateKeyDER() ([]byte, error)
	// MarshalPKCS8PrivateKeyPEM encodes the key as an unencrypted PKCS#8
	// "PRIVATE KEY", which crypto/x509's ParsePKCS8PrivateKey reads.
	MarshalPKCS8PrivateKeyPEM() ([]byte, error)
	// MarshalPKCS8PrivateKeyDER is MarshalPKCS8PrivateKeyPEM without the
	// PEM.
	MarshalPKCS8PrivateKeyDER() ([]byte, error)
	// SignPKCS1v15 signs data with the key, which hashes it with method
	// first. The signature is the key type's usual one, whatever the
	// name:
	//   - RSA: RSASSA-PKCS1-v1_5, as crypto/rsa's SignPKCS1v15 makes;
	//   - EC: ECDSA in ASN.1 DER, as crypto/ecdsa's SignASN1 makes (with
	//     a new random nonce each time, so two signatures of data differ);
	//   - Ed25519, Ed448: EdDSA over data itself, as crypto/ed25519's
	//     Sign; method must be nil. Empty data is signed, as Go does
	//     (spacemonkeygo refused it).
	//
	// A nil method for a key that needs one, a method for Ed25519 or
	// Ed448, an RSA-PSS key (which signs with PSS only) or a key type that
	// cannot sign (X25519) is an *Error (corresponds to
	// EVP_DigestSignInit_ex and EVP_DigestSign).
	SignPKCS1v15(method Method, data []byte) ([]byte, error)
}

// Key types, as KeyType returns them.
const (
	KeyTypeNone        = NID_undef
	KeyTypeRSA         = NID_rsaEncryption
	KeyTypeRSAPSS  NID = C.NID_rsassaPss
	KeyTypeEC          = NID_X9_62_id_ecPublicKey
	KeyTypeED25519 NID = C.NID_ED25519
	KeyTypeED448   NID = C.NID_ED448
	KeyTypeX25519  NID = C.NID_X25519
	KeyTypeX448    NID = C.NID_X448
)

// publicKey implements PublicKey.
type publicKey struct {
	k *C.EVP_PKEY // constant
}

// privateKey implements PrivateKey.
type privateKey struct {
	publicKey
}

// evpPKey returns the key's EVP_PKEY; nil for a nil k, so that Equal of a
// nil *publicKey or *privateKey inside the interface is false, not a panic.
func (k *publicKey) evpPKey() *C.EVP_PKEY {
	if k == nil {
		return nil
	}
	return k.k
}

func (k *publicKey) Equal(key PublicKey) bool {
	if key == nil {
		return false
	}
	defer runtime.KeepAlive(k)
	defer runtime.KeepAlive(key)
	return C.go_ossl_pkey_eq(k.k, key.evpPKey()) == 1
}

func (k *publicKey) Size() int {
	defer runtime.KeepAlive(k)
	return int(C.EVP_PKEY_get_size(k.k))
}

func (k *publicKey) KeyType() NID {
	defer runtime.KeepAlive(k)
	return NID(C.EVP_PKEY_get_id(k.k))
}

func (k *publicKey) BaseType() NID {
	defer runtime.KeepAlive(k)
	return NID(C.EVP_PKEY_get_base_id(k.k))
}

func (k *publicKey) MarshalPKIXPublicKeyPEM() ([]byte, error) {
	return k.encode("marshal public key", C.EVP_PKEY_PUBLIC_KEY, "PEM", "SubjectPublicKeyInfo")
}

func (k *publicKey) MarshalPKIXPublicKeyDER() ([]byte, error) {
	return k.encode("marshal public key", C.EVP_PKEY_PUBLIC_KEY, "DER", "SubjectPublicKeyInfo")
}

func (k *privateKey) MarshalPKCS1PrivateKeyPEM() ([]byte, error) {
	return k.encodeTypeSpecific("PEM")
}

func (k *privateKey) MarshalPKCS1PrivateKeyDER() ([]byte, error) {
	return k.encodeTypeSpecific("DER")
}

func (k *privateKey) MarshalPKCS8PrivateKeyPEM() ([]byte, error) {
	return k.encode("marshal private key", C.EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo")
}

func (k *privateKey) MarshalPKCS8PrivateKeyDER() ([]byte, error) {
	return k.encode("marshal private key", C.EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo")
}

// encodeTypeSpecific encodes in the key type's own structure, or PKCS#8
// when the type has none.
func (k *privateKey) encodeTypeSpecific(format string) ([]byte, error) {
	b, err := k.encode("marshal private key", C.EVP_PKEY_KEYPAIR, format, "type-specific")
	if err != nil {
		return k.encode("marshal private key", C.EVP_PKEY_KEYPAIR, format, "PrivateKeyInfo")
	}
	return b, nil
}

// encode runs OpenSSL's encoder on the key (corresponds to
// OSSL_ENCODER_to_data).
func (k *publicKey) encode(op string, selection C.int, format, structure string) ([]byte, error) {
	cformat, cstructure := C.CString(format), C.CString(structure)
	defer C.free(unsafe.Pointer(cformat))
	defer C.free(unsafe.Pointer(cstructure))
	var out *C.uchar
	var n C.size_t
	var r C.go_ossl_result
	C.go_ossl_pkey_encode(k.k, selection, cformat, cstructure, &out, &n, &r)
	runtime.KeepAlive(k)
	if r.ret != 1 {
		return nil, callError(op, &r)
	}
	defer func() {
		// The buffer may hold a private key.
		C.OPENSSL_cleanse(unsafe.Pointer(out), n)
		C.go_ossl_free(unsafe.Pointer(out))
	}()
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

// newPublicKey and newPrivateKey take over a reference to k; a nil k gives
// a nil interface.
func newPublicKey(k *C.EVP_PKEY) PublicKey {
	if k == nil {
		return nil
	}
	key := &publicKey{k: k}
	runtime.AddCleanup(key, func(k *C.EVP_PKEY) { C.EVP_PKEY_free(k) }, k)
	return key
}

func newPrivateKey(k *C.EVP_PKEY) PrivateKey {
	if k == nil {
		return nil
	}
	key := &privateKey{publicKey{k: k}}
	runtime.AddCleanup(key, func(k *C.EVP_PKEY) { C.EVP_PKEY_free(k) }, k)
	return key
}

// LoadPrivateKeyFromPEM parses the first private key in pem (PKCS#8,
// PKCS#1 or SEC 1). Encrypted keys are refused; input without a key is an
// *Error naming OpenSSL's reason (corresponds to PEM_read_bio_PrivateKey).
func LoadPrivateKeyFromPEM(pem []byte) (PrivateKey, error) {
	k, err := loadKey("load private key", pem, nil, false, false)
	return newPrivateKey(k), err
}

// LoadPrivateKeyFromPEMWithPassword is LoadPrivateKeyFromPEM for a key that
// may be encrypted with password (encrypted PKCS#8, or the legacy
// "Proc-Type: 4,ENCRYPTED" form). A wrong password is an *Error naming
// OpenSSL's reason, such as "bad decrypt"; an unencrypted key loads.
func LoadPrivateKeyFromPEMWithPassword(pem []byte, password string) (PrivateKey, error) {
	k, err := loadKey("load private key", pem, []byte(password), false, false)
	return newPrivateKey(k), err
}

// LoadPrivateKeyFromDER parses a private key in DER (PKCS#8, PKCS#1 or SEC
// 1, unencrypted) (corresponds to d2i_AutoPrivateKey).
func LoadPrivateKeyFromDER(der []byte) (PrivateKey, error) {
	k, err := loadKey("load private key", der, nil, true, false)
	return newPrivateKey(k), err
}

// LoadPublicKeyFromPEM parses the first PEM "PUBLIC KEY" (PKIX) in pem
// (corresponds to PEM_read_bio_PUBKEY).
func LoadPublicKeyFromPEM(pem []byte) (PublicKey, error) {
	k, err := loadKey("load public key", pem, nil, false, true)
	return newPublicKey(k), err
}

// LoadPublicKeyFromDER parses a PKIX public key in DER
// (corresponds to d2i_PUBKEY).
func LoadPublicKeyFromDER(der []byte) (PublicKey, error) {
	k, err := loadKey("load public key", der, nil, true, true)
	return newPublicKey(k), err
}

// loadKey parses data, PEM or DER, as a private or a public key; a non-nil
// password decrypts an encrypted PEM key.
func loadKey(op string, data, password []byte, der, public bool) (*C.EVP_PKEY, error) {
	if len(data) == 0 {
		format := "PEM"
		if der {
			format = "DER"
		}
		return nil, &Error{Op: op, Err: fmt.Errorf("openssl: empty %s input", format)}
	}
	var r C.go_ossl_result
	buf := cSecret(data)
	defer buf.free()
	var k *C.EVP_PKEY
	if der {
		k = C.go_ossl_pkey_from_der(buf.ptr, C.long(len(data)), boolInt(public), &r)
	} else {
		var pass *C.char
		if password != nil {
			p := cSecret(password)
			defer p.free()
			pass = (*C.char)(p.ptr)
		}
		k = C.go_ossl_pkey_from_pem(buf.ptr, C.int(len(data)), boolInt(public), pass, C.int(len(password)), &r)
	}
	if k == nil {
		return nil, callError(op, &r)
	}
	return k, nil
}

// secret is a copy of key material in C memory, wiped when freed.
type secret struct {
	ptr unsafe.Pointer
	n   int
}

// cSecret copies b; the copy is never NULL, even for an empty b (an empty
// password is one).
func cSecret(b []byte) secret {
	p := C.malloc(C.size_t(len(b) + 1))
	copy(unsafe.Slice((*byte)(p), len(b)+1), b)
	return secret{p, len(b)}
}

func (s secret) free() {
	C.OPENSSL_cleanse(s.ptr, C.size_t(s.n))
	C.free(s.ptr)
}

// GenerateRSAKey makes an RSA key of bits (2048 or more for TLS at
// OpenSSL 3's default security level) with exponent 65537, as
// [GenerateRSAKeyWithExponent] does (spacemonkeygo's used 3)
// (corresponds to EVP_PKEY_keygen).
func GenerateRSAKey(bits int) (PrivateKey, error) {
	return GenerateRSAKeyWithExponent(bits, 65537)
}

// GenerateRSAKeyWithExponent makes an RSA key of bits with public exponent
// exponent, which must be odd and at least 3 (65537 is the usual one; 3 is
// faster to verify with). A size of 0 bits or less, an even exponent or
// one below 3 is an *Error saying so; a size OpenSSL refuses (below 512
// bits) is an *Error naming its reason (corresponds to EVP_PKEY_keygen with
// OSSL_PKEY_PARAM_RSA_BITS and OSSL_PKEY_PARAM_RSA_E).
func GenerateRSAKeyWithExponent(bits int, exponent int) (PrivateKey, error) {
	if bits <= 0 {
		return nil, &Error{Op: "generate key", Err: fmt.Errorf("openssl: RSA key size %d", bits)}
	}
	if exponent < 3 || exponent%2 == 0 {
		return nil, &Error{Op: "generate key", Err: fmt.Errorf("openssl: RSA public exponent %d: it must be odd and at least 3", exponent)}
	}
	var r C.go_ossl_result
	k := C.go_ossl_rsa_generate(C.size_t(bits), C.ulong(exponent), &r)
	if k == nil {
		return nil, callError("generate key", &r)
	}
	return newPrivateKey(k), nil
}

// GenerateECKey makes an ECDSA key on curve
// (corresponds to EVP_PKEY_Q_keygen).
func GenerateECKey(curve EllipticCurve) (PrivateKey, error) {
	if curve == C.NID_undef {
		return nil, &Error{Op: "generate key", Err: errors.New("openssl: no curve")}
	}
	return generateKey("EC", C.int(curve))
}

// GenerateED25519Key makes an Ed25519 key
// (corresponds to EVP_PKEY_Q_keygen).
func GenerateED25519Key() (PrivateKey, error) {
	return generateKey("ED25519", C.NID_undef)
}

func generateKey(keyType string, ecNID C.int) (PrivateKey, error) {
	ctype := C.CString(keyType)
	defer C.free(unsafe.Pointer(ctype))
	var r C.go_ossl_result
	k := C.go_ossl_pkey_generate(ctype, ecNID, &r)
	if k == nil {
		return nil, callError("generate key", &r)
	}
	return newPrivateKey(k), nil
}
