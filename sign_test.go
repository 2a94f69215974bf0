package openssl_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// signCase is a key type with a digest, and how Go signs and verifies the
// same signature scheme.
type signCase struct {
	name     string
	generate func() (openssl.PrivateKey, error)
	method   openssl.Method
	hash     crypto.Hash // 0: the message itself (EdDSA)
}

func signCases() []signCase {
	rsa2048 := func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(2048) }
	return []signCase{
		{"RSA SHA-1", rsa2048, openssl.SHA1_Method, crypto.SHA1},
		{"RSA SHA-256", rsa2048, openssl.SHA256_Method, crypto.SHA256},
		{"RSA SHA-384", rsa2048, openssl.SHA384_Method, crypto.SHA384},
		{"RSA SHA-512", rsa2048, openssl.SHA512_Method, crypto.SHA512},
		{"P-256 SHA-256", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Prime256v1) }, openssl.SHA256_Method, crypto.SHA256},
		{"P-384 SHA-384", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Secp384r1) }, openssl.SHA384_Method, crypto.SHA384},
		{"P-521 SHA-512", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Secp521r1) }, openssl.SHA512_Method, crypto.SHA512},
		{"Ed25519", openssl.GenerateED25519Key, nil, 0},
	}
}

// goKeys returns key as crypto/x509 reads it: private and public.
func goKeys(t testing.TB, key openssl.PrivateKey) (crypto.Signer, crypto.PublicKey) {
	t.Helper()
	der, err := key.MarshalPKCS8PrivateKeyDER()
	require.NoError(t, err)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	require.NoError(t, err)
	signer := priv.(crypto.Signer)
	return signer, signer.Public()
}

// goVerify checks sig over msg as Go's package for the key type does.
func goVerify(pub crypto.PublicKey, hash crypto.Hash, msg, sig []byte) error {
	var digest []byte
	if hash != 0 {
		h := hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, hash, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ecdsa: signature does not verify")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("ed25519: signature does not verify")
		}
		return nil
	}
	return errors.New("unexpected key type")
}

// goSign signs msg as Go does for the scheme SignPKCS1v15 makes.
func goSign(t testing.TB, priv crypto.Signer, hash crypto.Hash, msg []byte) []byte {
	t.Helper()
	digest, opts := msg, crypto.SignerOpts(crypto.Hash(0))
	if hash != 0 {
		h := hash.New()
		h.Write(msg)
		digest, opts = h.Sum(nil), hash
	}
	var sig []byte
	var err error
	if ec, ok := priv.(*ecdsa.PrivateKey); ok {
		sig, err = ecdsa.SignASN1(rand.Reader, ec, digest)
	} else {
		sig, err = priv.Sign(rand.Reader, digest, opts) // PKCS #1 v1.5 for RSA
	}
	require.NoError(t, err)
	return sig
}

// requireVerification asserts err is a failed verification: an *Error
// wrapping ErrVerification.
func requireVerification(t testing.TB, err error) {
	t.Helper()
	e := asError(t, err)
	require.Equal(t, "verify", e.Op)
	require.ErrorIs(t, err, openssl.ErrVerification)
}

// TestSignVerifyCrossCheck: our signatures verify with Go's crypto and Go's
// with ours, for each key type; a changed message or signature does not.
func TestSignVerifyCrossCheck(t *testing.T) {
	for _, tc := range signCases() {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.generate()
			require.NoError(t, err)
			goPriv, goPub := goKeys(t, key)
			for _, msg := range [][]byte{[]byte("signed by OpenSSL, checked by Go"), {}, randomBytes(7, 100_000)} {
				sig, err := key.SignPKCS1v15(tc.method, msg)
				require.NoError(t, err)
				require.NoError(t, goVerify(goPub, tc.hash, msg, sig), "Go verifies ours")
				require.NoError(t, key.VerifyPKCS1v15(tc.method, msg, sig), "we verify ours")

				goSig := goSign(t, goPriv, tc.hash, msg)
				require.NoError(t, key.VerifyPKCS1v15(tc.method, msg, goSig), "we verify Go's")

				tampered := append([]byte("x"), msg...)
				require.Error(t, goVerify(goPub, tc.hash, tampered, sig))
				requireVerification(t, key.VerifyPKCS1v15(tc.method, tampered, sig))
				requireVerification(t, key.VerifyPKCS1v15(tc.method, tampered, goSig))
				for _, i := range []int{0, len(sig) / 2, len(sig) - 1} {
					bad := append([]byte(nil), sig...)
					bad[i] ^= 0x01
					requireVerification(t, key.VerifyPKCS1v15(tc.method, msg, bad))
				}
				requireVerification(t, key.VerifyPKCS1v15(tc.method, msg, sig[:len(sig)-1]))
				requireVerification(t, key.VerifyPKCS1v15(tc.method, msg, nil))
			}
		})
	}
}

// TestVerifyWithPublicKeyOnly: a public key loaded alone (PKIX) verifies
// what its private key signed, and another key's signature fails.
func TestVerifyWithPublicKeyOnly(t *testing.T) {
	key, err := openssl.GenerateECKey(openssl.Prime256v1)
	require.NoError(t, err)
	other, err := openssl.GenerateECKey(openssl.Prime256v1)
	require.NoError(t, err)
	pubPEM, err := key.MarshalPKIXPublicKeyPEM()
	require.NoError(t, err)
	pub, err := openssl.LoadPublicKeyFromPEM(pubPEM)
	require.NoError(t, err)
	msg := []byte("message")
	sig, err := key.SignPKCS1v15(openssl.SHA256_Method, msg)
	require.NoError(t, err)
	require.NoError(t, pub.VerifyPKCS1v15(openssl.SHA256_Method, msg, sig))
	otherSig, err := other.SignPKCS1v15(openssl.SHA256_Method, msg)
	require.NoError(t, err)
	requireVerification(t, pub.VerifyPKCS1v15(openssl.SHA256_Method, msg, otherSig))
	// The digest is part of what is checked.
	requireVerification(t, pub.VerifyPKCS1v15(openssl.SHA384_Method, msg, sig))
}

// TestSignBadArguments: a method that does not suit the key, or a key that
// cannot sign, is an *Error that is not ErrVerification.
func TestSignBadArguments(t *testing.T) {
	rsaKey, err := openssl.GenerateRSAKey(2048)
	require.NoError(t, err)
	edKey, err := openssl.GenerateED25519Key()
	require.NoError(t, err)
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	xDER, err := x509.MarshalPKCS8PrivateKey(x)
	require.NoError(t, err)
	xKey, err := openssl.LoadPrivateKeyFromDER(xDER)
	require.NoError(t, err)
	require.Equal(t, openssl.KeyTypeX25519, xKey.KeyType())

	for _, tc := range []struct {
		name   string
		key    openssl.PrivateKey
		method openssl.Method
		text   string // in the error
	}{
		{"RSA without digest", rsaKey, nil, "no digest method"},
		{"Ed25519 with digest", edKey, openssl.SHA256_Method, "method must be nil"},
		{"X25519", xKey, openssl.SHA256_Method, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := tc.key.SignPKCS1v15(tc.method, []byte("data"))
			require.Nil(t, sig)
			e := asError(t, err)
			require.Equal(t, "sign", e.Op)
			require.ErrorContains(t, err, tc.text)
			if tc.text == "" {
				require.NotEmpty(t, e.Queue, "OpenSSL's reason: %v", err)
			}

			err = tc.key.VerifyPKCS1v15(tc.method, []byte("data"), []byte("signature"))
			e = asError(t, err)
			require.Equal(t, "verify", e.Op)
			require.NotErrorIs(t, err, openssl.ErrVerification)
			require.ErrorContains(t, err, tc.text)
		})
	}
}

// genpkey makes a key with openssl genpkey, for the types Go cannot make.
func genpkey(t testing.TB, args ...string) openssl.PrivateKey {
	t.Helper()
	out, err := exec.Command("openssl", append([]string{"genpkey"}, args...)...).Output()
	require.NoError(t, err)
	key, err := openssl.LoadPrivateKeyFromPEM(out)
	require.NoError(t, err)
	return key
}

// TestSignOpenSSLOnlyKeys: Ed448 signs and verifies with a nil method, as
// Ed25519; an RSA-PSS key is refused, since it cannot make PKCS #1 v1.5
// signatures.
func TestSignOpenSSLOnlyKeys(t *testing.T) {
	ed448 := genpkey(t, "-algorithm", "ED448")
	require.Equal(t, openssl.KeyTypeED448, ed448.KeyType())
	msg := []byte("Ed448")
	sig, err := ed448.SignPKCS1v15(nil, msg)
	require.NoError(t, err)
	require.Len(t, sig, 114)
	require.NoError(t, ed448.VerifyPKCS1v15(nil, msg, sig))
	requireVerification(t, ed448.VerifyPKCS1v15(nil, []byte("Ed449"), sig))
	_, err = ed448.SignPKCS1v15(openssl.SHA512_Method, msg)
	require.ErrorContains(t, err, "method must be nil")

	pss := genpkey(t, "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048")
	require.Equal(t, openssl.KeyTypeRSAPSS, pss.KeyType())
	sig, err = pss.SignPKCS1v15(openssl.SHA256_Method, msg)
	require.Nil(t, sig)
	require.Equal(t, "sign", asError(t, err).Op)
	require.ErrorContains(t, err, "PSS signatures only")
}
