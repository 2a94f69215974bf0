package tlstest

import (
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

// CertClientCtx is [ClientCtx] presenting client's certificate and key,
// for mutual TLS: client is a ClientBundle of [DefaultPKI].
func CertClientCtx(tb testing.TB, client *testcert.Bundle) *openssl.Ctx {
	tb.Helper()
	sslCtx := ClientCtx(tb)
	cert, err := openssl.LoadCertificateFromPEM(client.CertPEM)
	if err != nil {
		tb.Fatalf("tlstest: client certificate: %v", err)
	}
	key, err := openssl.LoadPrivateKeyFromPEM(client.KeyPEM)
	if err != nil {
		tb.Fatalf("tlstest: client key: %v", err)
	}
	if err := sslCtx.UseCertificate(cert); err != nil {
		tb.Fatalf("tlstest: client certificate: %v", err)
	}
	if err := sslCtx.UsePrivateKey(key); err != nil {
		tb.Fatalf("tlstest: client key: %v", err)
	}
	return sslCtx
}
