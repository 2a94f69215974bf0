package openssl_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// goCA is a certificate authority made by crypto/x509, to sign
// certificates for keys made by OpenSSL.
type goCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newGoCA(t testing.TB) *goCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "compat test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &goCA{cert: cert, key: key, pool: pool}
}

// issue signs a leaf certificate for pub from tmpl, filling in what every
// leaf needs, and returns it in PEM.
func (ca *goCA) issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// handshakeGo connects our Conn on sslCtx in role and a crypto/tls peer
// with cfg (nil: tlstest.PeerConfig), and runs both handshakes.
func handshakeGo(t testing.TB, role tlstest.Role, sslCtx *openssl.Ctx, cfg *tls.Config) (p *tlstest.Pair, ourErr, peerErr error) {
	t.Helper()
	p = tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Role: role}, Ctx: sslCtx, Config: cfg})
	ourErr, peerErr = p.Handshake()
	return p, ourErr, peerErr
}

func TestGenerateKeyServesCryptoTLS(t *testing.T) {
	ca := newGoCA(t)
	for _, tc := range []struct {
		name     string
		generate func() (openssl.PrivateKey, error)
		keyType  openssl.NID
		pemType  string // of MarshalPKCS1PrivateKeyPEM
	}{
		{"RSA 2048", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(2048) }, openssl.KeyTypeRSA, "RSA PRIVATE KEY"},
		{"P-256", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Prime256v1) }, openssl.KeyTypeEC, "EC PRIVATE KEY"},
		{"P-384", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Secp384r1) }, openssl.KeyTypeEC, "EC PRIVATE KEY"},
		{"P-521", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Secp521r1) }, openssl.KeyTypeEC, "EC PRIVATE KEY"},
		{"Ed25519", openssl.GenerateED25519Key, openssl.KeyTypeED25519, "PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.generate()
			require.NoError(t, err)
			require.Equal(t, tc.keyType, key.KeyType())
			require.Equal(t, tc.keyType, key.BaseType())

			// The public half, read by crypto/x509, gets a certificate
			// signed in Go; our server proves it holds the private half.
			pubDER, err := key.MarshalPKIXPublicKeyDER()
			require.NoError(t, err)
			pub, err := x509.ParsePKIXPublicKey(pubDER)
			require.NoError(t, err)
			certPEM := ca.issue(t, &x509.Certificate{DNSNames: []string{"localhost"}}, pub)
			cert, err := openssl.LoadCertificateFromPEM(certPEM)
			require.NoError(t, err)
			sslCtx, err := openssl.NewCtx()
			require.NoError(t, err)
			require.NoError(t, sslCtx.UseCertificate(cert))
			require.NoError(t, sslCtx.UsePrivateKey(key))
			p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
			require.NoError(t, ourErr)
			require.NoError(t, peerErr)
			p.Exchange(t)

			// PKCS#8 as crypto/x509 reads it: the same key.
			p8, err := key.MarshalPKCS8PrivateKeyDER()
			require.NoError(t, err)
			goKey, err := x509.ParsePKCS8PrivateKey(p8)
			require.NoError(t, err)
			require.True(t, goKey.(interface{ Public() crypto.PublicKey }).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))

			// Every encoding loads back as the same key.
			p1, err := key.MarshalPKCS1PrivateKeyPEM()
			require.NoError(t, err)
			block, _ := pem.Decode(p1)
			require.Equal(t, tc.pemType, block.Type)
			p8PEM, err := key.MarshalPKCS8PrivateKeyPEM()
			require.NoError(t, err)
			p1DER, err := key.MarshalPKCS1PrivateKeyDER()
			require.NoError(t, err)
			require.Equal(t, block.Bytes, p1DER)
			pubPEM, err := key.MarshalPKIXPublicKeyPEM()
			require.NoError(t, err)
			for _, load := range []func() (openssl.PublicKey, error){
				func() (openssl.PublicKey, error) { return openssl.LoadPrivateKeyFromPEM(p1) },
				func() (openssl.PublicKey, error) { return openssl.LoadPrivateKeyFromPEM(p8PEM) },
				func() (openssl.PublicKey, error) { return openssl.LoadPrivateKeyFromDER(p8) },
				func() (openssl.PublicKey, error) { return openssl.LoadPrivateKeyFromDER(p1DER) },
				func() (openssl.PublicKey, error) { return openssl.LoadPublicKeyFromPEM(pubPEM) },
				func() (openssl.PublicKey, error) { return openssl.LoadPublicKeyFromDER(pubDER) },
			} {
				loaded, err := load()
				require.NoError(t, err)
				der, err := loaded.MarshalPKIXPublicKeyDER()
				require.NoError(t, err)
				require.Equal(t, pubDER, der)
				require.True(t, key.Equal(loaded))
				require.True(t, loaded.Equal(key))
			}
			certKey, err := cert.PublicKey()
			require.NoError(t, err)
			require.True(t, key.Equal(certKey))
			require.True(t, certKey.Equal(key))

			// Size is the longest signature, as Go reckons it.
			require.Equal(t, maxSignatureSize(t, pub), key.Size())
			require.Equal(t, key.Size(), certKey.Size())
			sig, err := key.SignPKCS1v15(signMethod(tc.keyType), []byte("data"))
			require.NoError(t, err)
			require.LessOrEqual(t, len(sig), key.Size())
		})
	}
}

// maxSignatureSize is the longest signature pub's scheme makes, worked out
// in Go: the modulus for RSA, 64 bytes for Ed25519, and for ECDSA the DER
// SEQUENCE of two INTEGERs as long as the group order N (r and s are below
// N), as OpenSSL's ECDSA_size counts it.
func maxSignatureSize(t testing.TB, pub crypto.PublicKey) int {
	t.Helper()
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return pub.Size()
	case ed25519.PublicKey:
		return ed25519.SignatureSize
	case *ecdsa.PublicKey:
		n := pub.Curve.Params().N
		der, err := asn1.Marshal(struct{ R, S *big.Int }{n, n})
		require.NoError(t, err)
		return len(der)
	}
	t.Fatalf("unexpected key type %T", pub)
	return 0
}

// signMethod is the digest SignPKCS1v15 takes for a key type: none for
// EdDSA.
func signMethod(keyType openssl.NID) openssl.Method {
	if keyType == openssl.KeyTypeED25519 {
		return nil
	}
	return openssl.SHA256_Method
}

// TestPublicKeyNotEqual: keys of the same type with other components, keys
// of other types and nil are not Equal, either way round.
func TestPublicKeyNotEqual(t *testing.T) {
	generate := map[string]func() (openssl.PrivateKey, error){
		"RSA 2048": func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(2048) },
		"P-256":    func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Prime256v1) },
		"P-384":    func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(openssl.Secp384r1) },
		"Ed25519":  openssl.GenerateED25519Key,
	}
	keys := map[string][2]openssl.PrivateKey{}
	for name, gen := range generate {
		a, err := gen()
		require.NoError(t, err)
		b, err := gen()
		require.NoError(t, err)
		keys[name] = [2]openssl.PrivateKey{a, b}
	}
	for name, pair := range keys {
		require.False(t, pair[0].Equal(pair[1]), "%s: two generated keys", name)
		require.False(t, pair[1].Equal(pair[0]), "%s: two generated keys", name)
		require.False(t, pair[0].Equal(nil), "%s: nil", name)
		for other, otherPair := range keys {
			if other != name {
				require.False(t, pair[0].Equal(otherPair[0]), "%s and %s", name, other)
			}
		}
	}
}

func TestPublicKeyIsNotPrivate(t *testing.T) {
	pub, err := openssl.LoadPublicKeyFromDER(mustMarshalPKIX(t, pki.Leaf.PublicKey))
	require.NoError(t, err)
	_, isPrivate := pub.(openssl.PrivateKey)
	require.False(t, isPrivate)
}

func mustMarshalPKIX(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return der
}

func TestGenerateKeyBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name     string
		generate func() (openssl.PrivateKey, error)
	}{
		{"RSA 0 bits", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(0) }},
		{"RSA 100 bits", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(100) }},
		{"no curve", func() (openssl.PrivateKey, error) { return openssl.GenerateECKey(0) }},
		{"not a curve", func() (openssl.PrivateKey, error) {
			return openssl.GenerateECKey(openssl.EllipticCurve(openssl.NID_commonName))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.generate()
			require.Nil(t, key)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, "generate key", e.Op)
		})
	}
}

// TestGenerateRSAKeyWithExponent: the key has the exponent asked for, as
// crypto/x509 reads it, and its signatures verify with crypto/rsa.
func TestGenerateRSAKeyWithExponent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		generate func() (openssl.PrivateKey, error)
		exponent int
	}{
		{"3", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKeyWithExponent(2048, 3) }, 3},
		{"17", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKeyWithExponent(2048, 17) }, 17},
		{"65537", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKeyWithExponent(3072, 65537) }, 65537},
		{"GenerateRSAKey", func() (openssl.PrivateKey, error) { return openssl.GenerateRSAKey(2048) }, 65537},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.generate()
			require.NoError(t, err)
			require.Equal(t, openssl.KeyTypeRSA, key.KeyType())
			der, err := key.MarshalPKCS1PrivateKeyDER()
			require.NoError(t, err)
			goKey, err := x509.ParsePKCS1PrivateKey(der)
			require.NoError(t, err)
			require.Equal(t, tc.exponent, goKey.E)
			require.NoError(t, goKey.Validate())

			msg := []byte("exponent")
			sig, err := key.SignPKCS1v15(openssl.SHA256_Method, msg)
			require.NoError(t, err)
			require.NoError(t, goVerify(&goKey.PublicKey, crypto.SHA256, msg, sig))
		})
	}
}

// TestGenerateRSAKeyWithExponentBad: an exponent that is even or below 3,
// or a size OpenSSL refuses, is an *Error that says why.
func TestGenerateRSAKeyWithExponentBad(t *testing.T) {
	for _, tc := range []struct {
		bits, exponent int
		text           string
	}{
		{2048, 1, "RSA public exponent 1: it must be odd and at least 3"},
		{2048, 2, "RSA public exponent 2: it must be odd and at least 3"},
		{2048, 65536, "RSA public exponent 65536: it must be odd and at least 3"},
		{2048, 0, "RSA public exponent 0"},
		{2048, -65537, "RSA public exponent -65537"},
		{0, 65537, "RSA key size 0"},
		{100, 65537, "key size too small"},
	} {
		key, err := openssl.GenerateRSAKeyWithExponent(tc.bits, tc.exponent)
		require.Nil(t, key)
		e := asError(t, err)
		require.Equal(t, "generate key", e.Op)
		require.ErrorContains(t, err, tc.text)
	}
}

// encryptPKCS8 encrypts keyPEM with openssl pkcs8, as users do.
func encryptPKCS8(t testing.TB, keyPEM []byte, password string) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(in, keyPEM, 0o600))
	out, err := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc",
		"-in", in, "-passout", "pass:"+password).Output()
	require.NoError(t, err)
	return out
}

func TestLoadPrivateKeyFromPEMWithPassword(t *testing.T) {
	block, _ := pem.Decode(pki.KeyPEM)
	//lint:ignore SA1019 the legacy encrypted PEM form is what the test needs.
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", block.Bytes, []byte("s3cret"), x509.PEMCipherAES256) //nolint:staticcheck
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		pem      []byte
		password string
		reason   string // "" when the key loads
	}{
		{"PKCS#8 aes-256-cbc", encryptPKCS8(t, pki.KeyPEM, "s3cret"), "s3cret", ""},
		{"PKCS#8 wrong password", encryptPKCS8(t, pki.KeyPEM, "s3cret"), "S3cret", "bad decrypt"},
		{"PKCS#8 empty password", encryptPKCS8(t, pki.KeyPEM, "s3cret"), "", "bad decrypt"},
		{"legacy PEM encryption", pem.EncodeToMemory(legacy), "s3cret", ""},
		{"legacy wrong password", pem.EncodeToMemory(legacy), "wrong", "bad decrypt"},
		{"not encrypted", pki.KeyPEM, "unused", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := openssl.LoadPrivateKeyFromPEMWithPassword(tc.pem, tc.password)
			if tc.reason != "" {
				require.Nil(t, key)
				var e *openssl.Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, "load private key", e.Op)
				require.Contains(t, err.Error(), tc.reason)
				return
			}
			require.NoError(t, err)
			sslCtx, err := openssl.NewCtx()
			require.NoError(t, err)
			useCertificate(t, sslCtx, pki, key)
		})
	}
}

func TestLoadPublicKeyBadInput(t *testing.T) {
	_, err := openssl.LoadPublicKeyFromPEM(pki.CertPEM)
	var e *openssl.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "load public key", e.Op)
	require.NotEmpty(t, e.Queue)
	_, err = openssl.LoadPublicKeyFromDER([]byte("not DER"))
	require.ErrorAs(t, err, &e)
	require.Equal(t, "load public key", e.Op)
	require.NotEmpty(t, e.Queue)
	_, err = openssl.LoadPrivateKeyFromDER(nil)
	require.ErrorAs(t, err, &e)
	require.Equal(t, "load private key", e.Op)
	require.EqualError(t, err, "openssl: load private key: empty DER input")
}

// The key types crypto/x509 makes load with their KeyType.
func TestKeyTypeOfGoKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		key  crypto.Signer
		want openssl.NID
	}{
		{rsaKey, openssl.KeyTypeRSA},
		{edKey, openssl.KeyTypeED25519},
	} {
		der, err := x509.MarshalPKCS8PrivateKey(tc.key)
		require.NoError(t, err)
		key, err := openssl.LoadPrivateKeyFromDER(der)
		require.NoError(t, err)
		require.Equal(t, tc.want, key.KeyType())
	}
}

// FuzzLoadKey: the other key loaders, as FuzzLoadPrivateKeyFromPEM: any
// input gives a key or an *openssl.Error, never a panic, a crash or a
// password prompt; a loaded key encodes and loads back as the same key.
func FuzzLoadKey(f *testing.F) {
	block, _ := pem.Decode(pki.KeyPEM)
	pubDER := mustMarshalPKIX(f, pki.Leaf.PublicKey)
	f.Add(pki.KeyPEM)
	f.Add(block.Bytes)
	f.Add(pubDER)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	// No encrypted seed: the mutator soon raises its PBKDF2 iteration
	// count, which the file sets, and each input then runs for minutes.
	loaders := []struct {
		name string
		load func([]byte) (openssl.PublicKey, error)
	}{
		{"LoadPrivateKeyFromPEMWithPassword", func(b []byte) (openssl.PublicKey, error) {
			return openssl.LoadPrivateKeyFromPEMWithPassword(b, "fuzz")
		}},
		{"LoadPrivateKeyFromDER", func(b []byte) (openssl.PublicKey, error) { return openssl.LoadPrivateKeyFromDER(b) }},
		{"LoadPublicKeyFromPEM", openssl.LoadPublicKeyFromPEM},
		{"LoadPublicKeyFromDER", openssl.LoadPublicKeyFromDER},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range loaders {
			key, err := l.load(data)
			if err != nil {
				requireTyped(t, l.name, err)
				if key != nil {
					t.Fatalf("%s returned a key and an error: %v", l.name, err)
				}
				continue
			}
			der, err := key.MarshalPKIXPublicKeyDER()
			if err != nil {
				requireTyped(t, l.name+" then MarshalPKIXPublicKeyDER", err)
				continue
			}
			again, err := openssl.LoadPublicKeyFromDER(der)
			if err != nil {
				t.Fatalf("%s: the key's own encoding does not load: %v", l.name, err)
			}
			if der2, err := again.MarshalPKIXPublicKeyDER(); err != nil || !bytes.Equal(der, der2) {
				t.Fatalf("%s: the key changed on a round trip: %v", l.name, err)
			}
		}
	})
}
