package openssl_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// sniSite is one name of a two-certificate listener.
type sniSite struct {
	name   string
	bundle *testcert.Bundle
}

// twoSites returns a.test (the default) and b.test, each with its own CA,
// a pool and a CA file trusting both.
func twoSites(t *testing.T) (a, b sniSite, pool *x509.CertPool, caFile string) {
	t.Helper()
	newSite := func(name string) sniSite {
		bundle, err := testcert.New(name)
		require.NoError(t, err)
		return sniSite{name, bundle}
	}
	a, b = newSite("a.test"), newSite("b.test")
	pool = x509.NewCertPool()
	pool.AddCert(a.bundle.CA)
	pool.AddCert(b.bundle.CA)
	caFile = filepath.Join(t.TempDir(), "cas.pem")
	require.NoError(t, os.WriteFile(caFile, append(append([]byte{}, a.bundle.CAPEM...), b.bundle.CAPEM...), 0o600))
	return a, b, pool, caFile
}

// goLeaf connects with crypto/tls sending serverName and returns the leaf
// the server presented and the body of its answer (the name it saw).
func goLeaf(t *testing.T, addr, serverName string, version uint16, pool *x509.CertPool) (*x509.Certificate, string) {
	t.Helper()
	cfg := &tls.Config{ServerName: serverName, RootCAs: pool, MinVersion: version, MaxVersion: version}
	if pool == nil {
		cfg.InsecureSkipVerify = true // an unknown name: the default certificate does not match it
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: tlstest.Timeout}, "tcp", addr, cfg)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(tlstest.Timeout)))
	body := get(t, c)
	return c.ConnectionState().PeerCertificates[0], body
}

// TestServerNameCallback: one listener, two certificates, chosen by
// SetServerNameCallback; crypto/tls and curl get the one they ask for, an
// unknown name and no name get the default.
func TestServerNameCallback(t *testing.T) {
	a, b, pool, caFile := twoSites(t)
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		defaultCtx, other := ctxOf(t, a.bundle, version), ctxOf(t, b.bundle, version)
		var asked []string // the callback runs in the server's goroutines, one at a time here
		defaultCtx.SetServerNameCallback(func(name string) (*openssl.Ctx, error) {
			asked = append(asked, name)
			if name == b.name {
				return other, nil
			}
			return nil, nil
		})
		addr, results := startOurServer(t, defaultCtx)
		_, port, _ := net.SplitHostPort(addr)

		for _, site := range []sniSite{a, b} {
			leaf, body := goLeaf(t, addr, site.name, version, pool)
			require.True(t, leaf.Equal(site.bundle.Leaf), "crypto/tls asking for %s", site.name)
			require.Equal(t, site.name, body)
			nextServed(t, results)

			args := append([]string{"--resolve", site.name + ":" + port + ":127.0.0.1"}, curlVersion(version)...)
			r := peer.CurlT(t, caFile, "https://"+site.name+":"+port+"/", args...)
			require.Equal(t, 0, r.ExitCode, "curl asking for %s: %s", site.name, r.Stderr)
			require.Equal(t, site.name, r.Stdout)
			require.Contains(t, r.Stderr, "CN="+site.name)
			nextServed(t, results)
		}
		leaf, body := goLeaf(t, addr, "c.test", version, nil)
		require.True(t, leaf.Equal(a.bundle.Leaf), "an unknown name gets the default")
		require.Equal(t, "c.test", body)
		nextServed(t, results)
		leaf, body = goLeaf(t, addr, "", version, nil) // crypto/tls sends no SNI for an empty ServerName
		require.True(t, leaf.Equal(a.bundle.Leaf), "no name gets the default")
		require.Equal(t, "", body)
		nextServed(t, results)
		require.Equal(t, []string{"a.test", "a.test", "b.test", "b.test", "c.test", ""}, asked)
	})
}

// curlVersion are curl's arguments limiting it to version.
func curlVersion(version uint16) []string {
	if version == tls.VersionTLS12 {
		return []string{"--tlsv1.2", "--tls-max", "1.2"}
	}
	return []string{"--tlsv1.3"}
}

// TestTLSExtServernameCallback: spacemonkeygo's form, against s_client and
// crypto/tls: SetSSLCtx switches the certificate, SSLTLSExtErrAlertFatal
// refuses the name.
func TestTLSExtServernameCallback(t *testing.T) {
	a, b, pool, caFile := twoSites(t)
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		defaultCtx, other := ctxOf(t, a.bundle, version), ctxOf(t, b.bundle, version)
		defaultCtx.SetTLSExtServernameCallback(func(ssl *openssl.SSL) openssl.SSLTLSExtErr {
			switch ssl.GetServername() {
			case b.name:
				ssl.SetSSLCtx(other)
			case "forbidden.test":
				return openssl.SSLTLSEXTErrAlertFatal
			}
			return openssl.SSLTLSExtErrOK
		})
		addr, results := startOurServer(t, defaultCtx)

		leaf, _ := goLeaf(t, addr, b.name, version, pool)
		require.True(t, leaf.Equal(b.bundle.Leaf))
		nextServed(t, results)

		s := tlstest.Started(t)(peer.OpenSSLClient(t.Context(), addr, caFile, "-servername", b.name, "-verify_hostname", b.name, versionFlag(version)))
		require.NoError(t, s.WaitFor(peer.ClientVerifyOK, tlstest.Timeout))
		require.NoError(t, s.Send(request))
		require.NoError(t, s.WaitFor(b.name, tlstest.Timeout))
		nextServed(t, results)

		_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "forbidden.test", InsecureSkipVerify: true, MaxVersion: version})
		require.ErrorContains(t, err, "unrecognized name")
		require.ErrorContains(t, (<-results).err, "handshake")
	})
}

// TestServerNameCallbackFailures: an error or a panic of the callback fails
// the handshake with an error that says so, and the client gets an alert;
// the listener goes on serving.
func TestServerNameCallbackFailures(t *testing.T) {
	errUnknown := errors.New("no such site")
	sslCtx := ctxOf(t, pki, 0)
	sslCtx.SetServerNameCallback(func(name string) (*openssl.Ctx, error) {
		switch name {
		case "panic.test":
			panic("boom")
		case "unknown.test":
			return nil, errUnknown
		}
		return nil, nil
	})
	addr, results := startOurServer(t, sslCtx)
	for _, tc := range []struct {
		name string
		want string
	}{
		{"unknown.test", `no certificate for server name "unknown.test": no such site`},
		{"panic.test", "server name callback panicked: boom"},
	} {
		_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tc.name, InsecureSkipVerify: true})
		require.ErrorContains(t, err, "unrecognized name")
		s := <-results
		require.ErrorContains(t, s.err, tc.want)
		if tc.name == "unknown.test" {
			require.ErrorIs(t, s.err, errUnknown)
		}
	}
	_, body := goLeaf(t, addr, "localhost", 0, pki.Pool)
	require.Equal(t, "localhost", body)
}

// TestServerNameSwitchesVerification: the Ctx switched to brings its
// verify mode: a name that requires client certificates refuses a client
// without one and accepts one with it.
func TestServerNameSwitchesVerification(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		open, strict := ctxOf(t, pki, version), ctxOf(t, pki, version)
		strict.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
		open.SetServerNameCallback(func(name string) (*openssl.Ctx, error) {
			if name == "localhost" {
				return strict, nil
			}
			return nil, nil
		})
		addr, results := startOurServer(t, open)
		dial := func(certs []tls.Certificate) error {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: pki.Pool, Certificates: certs, MinVersion: version, MaxVersion: version})
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(tlstest.Timeout))
			_, err = c.Write([]byte(request))
			if err == nil {
				_, err = c.Read(make([]byte, 1)) // a TLS 1.3 client learns of the refusal here
			}
			return err
		}
		require.Error(t, dial(nil))
		require.Error(t, (<-results).err)
		require.NoError(t, dial([]tls.Certificate{clientPKI.TLSCert}))
		require.NotZero(t, nextServed(t, results).peerCerts)
	})
}
