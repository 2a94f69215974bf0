package openssl_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// verifyingClient returns a client Ctx that requires a verified server
// (VerifyPeer) and trusts nothing yet.
func verifyingClient(t testing.TB) *openssl.Ctx {
	t.Helper()
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	sslCtx.SetVerifyMode(openssl.VerifyPeer)
	return sslCtx
}

// requireVerifies connects sslCtx as a client to a crypto/tls server with
// pki's certificate and asserts whether the chain verified.
func requireVerifies(t testing.TB, sslCtx *openssl.Ctx, verifies bool) {
	t.Helper()
	spec := tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx}
	if verifies {
		p := tlstest.Connect(t, spec)
		require.Equal(t, openssl.VerifyOK, p.Ours.ConnectionState().VerifyResult)
		return
	}
	ourErr, _ := tlstest.NewPair(t, spec).Handshake()
	require.NotEqual(t, openssl.VerifyOK, handshakeError(t, ourErr).Verify)
}

// caBundle is PEM as CA bundles are: another CA first, a private key block
// (skipped), then pki's CA, which the handshake needs.
func caBundle(t testing.TB) []byte {
	t.Helper()
	other, err := testcert.New("other.example")
	require.NoError(t, err)
	return bytes.Join([][]byte{other.CAPEM, other.KeyPEM, pki.CAPEM}, []byte("\n"))
}

// TestLoadCertificatesFromPEM: every certificate of a multi-certificate
// PEM is trusted, in a Ctx's own store and in a NewCertificateStore store
// shared by two Ctxs; before, the same handshake fails verification.
func TestLoadCertificatesFromPEM(t *testing.T) {
	t.Run("Ctx store", func(t *testing.T) {
		sslCtx := verifyingClient(t)
		requireVerifies(t, sslCtx, false)
		require.NoError(t, sslCtx.GetCertificateStore().LoadCertificatesFromPEM(caBundle(t)))
		requireVerifies(t, sslCtx, true)
	})
	t.Run("NewCertificateStore", func(t *testing.T) {
		store, err := openssl.NewCertificateStore()
		require.NoError(t, err)
		first, second := verifyingClient(t), verifyingClient(t)
		require.NoError(t, first.SetCertificateStore(store))
		require.NoError(t, second.SetCertificateStore(first.GetCertificateStore()))
		requireVerifies(t, first, false)
		// Loaded after both Ctxs took the store: both see it.
		require.NoError(t, store.LoadCertificatesFromPEM(caBundle(t)))
		requireVerifies(t, first, true)
		requireVerifies(t, second, true)
		// The store replaces the Ctx's own: a fresh store trusts nothing.
		empty, err := openssl.NewCertificateStore()
		require.NoError(t, err)
		require.NoError(t, second.SetCertificateStore(empty))
		requireVerifies(t, second, false)
		requireVerifies(t, first, true)
		require.Error(t, first.SetCertificateStore(nil))
	})
}

// TestLoadCertificatesFromPEMBad: input without a certificate, or with one
// that does not parse, is an *Error and adds nothing, not even the good
// certificates beside the bad one.
func TestLoadCertificatesFromPEMBad(t *testing.T) {
	damaged := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	for _, tc := range []struct {
		name string
		data []byte
		text string // in the error
	}{
		{"empty", nil, "no PEM CERTIFICATE block"},
		{"garbage", []byte("-----BEGIN garbage"), "no PEM CERTIFICATE block"},
		{"key only", pki.KeyPEM, "no PEM CERTIFICATE block"},
		{"damaged certificate", append(append([]byte(nil), pki.CAPEM...), damaged...), "certificate 2 of 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sslCtx := verifyingClient(t)
			err := sslCtx.GetCertificateStore().LoadCertificatesFromPEM(tc.data)
			e := asError(t, err)
			require.Equal(t, "load certificate", e.Op)
			require.ErrorContains(t, err, tc.text)
			requireVerifies(t, sslCtx, false)
		})
	}
}
