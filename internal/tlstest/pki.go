package tlstest

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

var defaultPKI = sync.OnceValues(func() (*testcert.Bundle, error) { return testcert.New() })

// DefaultPKI returns the process's test certificates: a CA and a leaf for
// "localhost" and 127.0.0.1, generated at the first call. The bundle is
// shared and must not be modified (its file fields stay empty: use
// [WriteFiles] for peers that read files). It panics if key generation
// fails, which only a broken random source makes happen.
func DefaultPKI() *testcert.Bundle {
	b, err := defaultPKI()
	if err != nil {
		panic(fmt.Sprintf("tlstest: generating the test PKI: %v", err))
	}
	return b
}

// Files are the PEM files of a bundle, as written by [WriteFiles].
type Files struct {
	CA, Cert, Key string
}

// WriteFiles writes b's CA certificate, leaf certificate and leaf key into
// dir and returns their paths. Unlike testcert.Bundle.WriteFiles it leaves
// b unchanged, so that a shared bundle can be written by many tests.
func WriteFiles(b *testcert.Bundle, dir string) (Files, error) {
	f := Files{
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, "cert.pem"),
		Key:  filepath.Join(dir, "key.pem"),
	}
	for _, w := range []struct {
		path string
		pem  []byte
	}{{f.CA, b.CAPEM}, {f.Cert, b.CertPEM}, {f.Key, b.KeyPEM}} {
		if err := os.WriteFile(w.path, w.pem, 0o600); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// NewServerCtx returns a new Ctx that serves b's leaf certificate and key,
// followed by b's intermediate CA when b has one
// ([openssl.Ctx.AddChainCertificate]).
func NewServerCtx(b *testcert.Bundle) (*openssl.Ctx, error) {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		return nil, err
	}
	cert, err := openssl.LoadCertificateFromPEM(b.CertPEM)
	if err != nil {
		return nil, err
	}
	key, err := openssl.LoadPrivateKeyFromPEM(b.KeyPEM)
	if err != nil {
		return nil, err
	}
	if err := sslCtx.UseCertificate(cert); err != nil {
		return nil, err
	}
	if err := sslCtx.UsePrivateKey(key); err != nil {
		return nil, err
	}
	if b.Intermediate != nil {
		inter, err := openssl.LoadCertificateFromPEM(b.IntermediatePEM)
		if err != nil {
			return nil, err
		}
		if err := sslCtx.AddChainCertificate(inter); err != nil {
			return nil, err
		}
	}
	return sslCtx, nil
}

// NewClientCtx returns a new Ctx that trusts b's CA and verifies the peer
// ([openssl.VerifyPeer]). LoadVerifyLocations reads the CA from a file: it
// is written to a private temporary file, removed before NewClientCtx
// returns.
func NewClientCtx(b *testcert.Bundle) (*openssl.Ctx, error) {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tlstest-ca-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, b.CAPEM, 0o600); err != nil {
		return nil, err
	}
	if err := sslCtx.LoadVerifyLocations(caFile, ""); err != nil {
		return nil, err
	}
	sslCtx.SetVerifyMode(openssl.VerifyPeer)
	return sslCtx, nil
}

// NewCtx returns a new Ctx of b for our role r: [NewClientCtx] or
// [NewServerCtx]. With a non-zero version it is limited to that version.
func NewCtx(b *testcert.Bundle, r Role, version uint16) (*openssl.Ctx, error) {
	newCtx := NewServerCtx
	if r == WeClient {
		newCtx = NewClientCtx
	}
	sslCtx, err := newCtx(b)
	if err != nil {
		return nil, err
	}
	if version != 0 {
		if err := sslCtx.SetMinProtoVersion(version); err != nil {
			return nil, err
		}
		if err := sslCtx.SetMaxProtoVersion(version); err != nil {
			return nil, err
		}
	}
	return sslCtx, nil
}

// ServerCtx is [NewServerCtx] of [DefaultPKI] for tests: it fails tb on
// error.
func ServerCtx(tb testing.TB) *openssl.Ctx {
	tb.Helper()
	return mustCtx(tb)(NewServerCtx(DefaultPKI()))
}

// ClientCtx is [NewClientCtx] of [DefaultPKI] for tests: it fails tb on
// error.
func ClientCtx(tb testing.TB) *openssl.Ctx {
	tb.Helper()
	return mustCtx(tb)(NewClientCtx(DefaultPKI()))
}

// CtxFor is [ClientCtx] or [ServerCtx], for our role r.
func CtxFor(tb testing.TB, r Role) *openssl.Ctx {
	tb.Helper()
	return mustCtx(tb)(NewCtx(DefaultPKI(), r, 0))
}

// TrustingCtx is [NewClientCtx] of b for tests.
func TrustingCtx(tb testing.TB, b *testcert.Bundle) *openssl.Ctx {
	tb.Helper()
	return mustCtx(tb)(NewClientCtx(b))
}

// PeerConfig is the crypto/tls configuration facing our Conn in role r: a
// server presenting b's TLSCert (its leaf and the leaf's issuer), or a
// client trusting b's CA and sending SNI "localhost"; both limited to
// version when it is not zero. It returns a new Config every time.
func PeerConfig(b *testcert.Bundle, version uint16, r Role) *tls.Config {
	cfg := &tls.Config{MinVersion: version, MaxVersion: version}
	if r == WeClient {
		cfg.Certificates = []tls.Certificate{b.TLSCert}
	} else {
		cfg.RootCAs, cfg.ServerName = b.Pool, "localhost"
	}
	return cfg
}

// mustCtx returns a function that returns its Ctx, failing tb if the error
// is not nil.
func mustCtx(tb testing.TB) func(*openssl.Ctx, error) *openssl.Ctx {
	return func(v *openssl.Ctx, err error) *openssl.Ctx {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}
