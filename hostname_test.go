package openssl_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// dialClient connects a TCP socket to addr and returns our client Conn on
// it, closed at cleanup.
func dialClient(t *testing.T, addr string, sslCtx *openssl.Ctx) *openssl.Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, tlstest.Timeout)
	require.NoError(t, err)
	c, err := openssl.Client(raw, sslCtx)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// requireHostnameError asserts that err wraps an x509.HostnameError for
// host whose text is want.
func requireHostnameError(t *testing.T, err error, host, want string) {
	t.Helper()
	var he x509.HostnameError
	require.True(t, errors.As(err, &he), "%T %v", err, err)
	require.Equal(t, host, he.Host)
	require.ErrorContains(t, err, want)
}

// trustingNoneCtx trusts pki's CA (from memory) and leaves the verify
// mode at VerifyNone, as Client's users often do.
func trustingNoneCtx(t *testing.T) *openssl.Ctx {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	ca, err := openssl.LoadCertificateFromPEM(pki.CAPEM)
	require.NoError(t, err)
	require.NoError(t, sslCtx.GetCertificateStore().AddCertificate(ca))
	require.Equal(t, openssl.VerifyNone, sslCtx.VerifyMode())
	return sslCtx
}

// TestSetServerName: Client + SetServerName sends SNI and verifies the
// name and the chain during the handshake, even under VerifyNone.
func TestSetServerName(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		addr, results := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: version, MaxVersion: version})
		for _, tc := range []struct {
			name, setName string
			ctx           func(t *testing.T) *openssl.Ctx
			sni           string // what the server sees
			err           string // "" for success
			mismatch      bool
		}{
			{"dns name", "localhost", trustingNoneCtx, "localhost", "", false},
			{"ip address", "127.0.0.1", trustingNoneCtx, "", "", false},
			{"dns mismatch", "example.com", trustingNoneCtx, "example.com", "x509: certificate is valid for localhost, not example.com", true},
			{"ip mismatch", "10.1.2.3", trustingNoneCtx, "", "x509: certificate is valid for 127.0.0.1, not 10.1.2.3", true},
			{"untrusted under VerifyNone", "localhost", func(t *testing.T) *openssl.Ctx {
				c, err := openssl.NewCtx()
				require.NoError(t, err)
				return c
			}, "localhost", "certificate verify failed", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dialClient(t, addr, tc.ctx(t))
				require.NoError(t, c.SetServerName(tc.setName))
				err := c.Handshake()
				if tc.err == "" {
					require.NoError(t, err)
					require.Equal(t, tc.sni, get(t, c))
					nextServed(t, results)
					return
				}
				e := handshakeError(t, err)
				require.ErrorContains(t, e, tc.err)
				if tc.mismatch {
					requireHostnameError(t, err, tc.setName, tc.err)
				}
				s := <-results
				require.Error(t, s.err, "the server sees the failure")
			})
		}
	})
}

// TestSetTlsExtHostName: SNI only, nothing verified.
func TestSetTlsExtHostName(t *testing.T) {
	addr, results := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}})
	sslCtx, err := openssl.NewCtx() // trusts nothing, VerifyNone
	require.NoError(t, err)
	c := dialClient(t, addr, sslCtx)
	require.NoError(t, c.SetTlsExtHostName("wrong.test"))
	require.NoError(t, c.Handshake())
	require.Equal(t, "wrong.test", get(t, c))
	require.Equal(t, "wrong.test", nextServed(t, results).serverName)
	require.Error(t, c.SetTlsExtHostName("late.test"), "after the handshake")
}

// TestVerifyHostname: after the handshake, the name alone is checked.
func TestVerifyHostname(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		addr, _ := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: version, MaxVersion: version})
		sslCtx, err := openssl.NewCtx() // trusts nothing: VerifyHostname does not look at the chain
		require.NoError(t, err)
		c := dialClient(t, addr, sslCtx)
		require.ErrorIs(t, c.VerifyHostname("localhost"), openssl.ErrHandshakeIncomplete)
		require.NoError(t, c.Handshake())
		for _, ok := range []string{"localhost", "LOCALHOST", "127.0.0.1", "[127.0.0.1]"} {
			require.NoError(t, c.VerifyHostname(ok), ok)
		}
		err = c.VerifyHostname("example.com")
		require.EqualError(t, err, "openssl: verify hostname: certificate does not match: x509: certificate is valid for localhost, not example.com")
		require.ErrorIs(t, err, openssl.ValidationError)
		requireHostnameError(t, err, "example.com", "not example.com")
		requireHostnameError(t, c.VerifyHostname("::1"), "::1", "valid for 127.0.0.1, not ::1")
	})
}

// TestDialConfig: DialConfig verifies ServerName instead of the dialled
// host, against crypto/tls and s_server, and fails naming the certificate's
// names.
func TestDialConfig(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		goAddr, results := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: version, MaxVersion: version})
		_, cert, key := pemFiles(t, pki)
		sServer := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), cert, key, "-www", versionFlag(version)))

		d := openssl.DialConfig{ServerName: "localhost"}
		c, err := d.Dial("tcp", goAddr, tlstest.ClientCtx(t))
		require.NoError(t, err)
		require.Equal(t, "localhost", get(t, c))
		c.Close()
		nextServed(t, results)

		c, err = d.DialContext(t.Context(), "tcp", sServer.Addr(), tlstest.ClientCtx(t))
		require.NoError(t, err)
		get(t, c)
		c.Close()

		wrong := openssl.DialConfig{ServerName: "other.test"}
		_, err = wrong.Dial("tcp", goAddr, tlstest.ClientCtx(t))
		requireHostnameError(t, err, "other.test", "certificate is valid for localhost, not other.test")
		require.Error(t, (<-results).err)

		skip := openssl.DialConfig{ServerName: "other.test", Flags: openssl.InsecureSkipHostVerification}
		c, err = skip.Dial("tcp", goAddr, tlstest.ClientCtx(t))
		require.NoError(t, err, "the chain still verifies; the name is not checked")
		require.Equal(t, "other.test", get(t, c))
		c.Close()
		nextServed(t, results)
	})
}
