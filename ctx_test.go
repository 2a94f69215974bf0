package openssl_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestLoadCertificateFromPEM(t *testing.T) {
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	x, err := cert.X509()
	require.NoError(t, err)
	require.True(t, x.Equal(pki.Leaf))

	// A chain: the first certificate is taken.
	cert, err = openssl.LoadCertificateFromPEM(pki.ChainPEM)
	require.NoError(t, err)
	x, err = cert.X509()
	require.NoError(t, err)
	require.True(t, x.Equal(pki.Leaf))
}

func TestLoadCertificateFromPEMBadInput(t *testing.T) {
	notDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string // OpenSSL's reason, or our text for empty input
	}{
		{"empty", nil, "empty PEM input"},
		{"garbage", []byte("garbage\x00\xff"), "no start line"},
		{"key given as certificate", pki.KeyPEM, "no start line"},
		{"bad base64", []byte("-----BEGIN CERTIFICATE-----\n!!!!$$$$\n-----END CERTIFICATE-----\n"), "bad base64 decode"},
		{"truncated", pki.CertPEM[:len(pki.CertPEM)/2], "bad end line"},
		{"not DER inside", notDER, "nested asn1 error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := openssl.LoadCertificateFromPEM(tc.in)
			require.Nil(t, cert)
			e := asError(t, err)
			require.Equal(t, "load certificate", e.Op)
			require.True(t, strings.HasPrefix(err.Error(), "openssl: load certificate: "), err.Error())
			require.Contains(t, err.Error(), tc.reason)
			if tc.in != nil {
				require.NotEmpty(t, e.Queue, "OpenSSL's reason")
			}
		})
	}
}

func TestLoadPrivateKeyFromPEM(t *testing.T) {
	key, err := openssl.LoadPrivateKeyFromPEM(pki.KeyPEM)
	require.NoError(t, err)
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	require.NoError(t, sslCtx.UseCertificate(cert))
	require.NoError(t, sslCtx.UsePrivateKey(key))
}

func TestLoadPrivateKeyFromPEMBadInput(t *testing.T) {
	notDER := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})
	block, _ := pem.Decode(pki.KeyPEM)
	//lint:ignore SA1019 an encrypted PEM key is what the test needs.
	encBlock, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", block.Bytes, []byte("password"), x509.PEMCipherAES128) //nolint:staticcheck
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string
	}{
		{"empty", []byte{}, "empty PEM input"},
		{"garbage", []byte("garbage\x00\xff"), "unsupported"},
		{"certificate given as key", pki.CertPEM, "unsupported"},
		{"bad base64", []byte("-----BEGIN PRIVATE KEY-----\n!!!!$$$$\n-----END PRIVATE KEY-----\n"), "unsupported"},
		{"not DER inside", notDER, "unsupported"},
		{"encrypted", pem.EncodeToMemory(encBlock), "bad password read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := openssl.LoadPrivateKeyFromPEM(tc.in)
			require.Nil(t, key)
			e := asError(t, err)
			require.Equal(t, "load private key", e.Op)
			require.True(t, strings.HasPrefix(err.Error(), "openssl: load private key: "), err.Error())
			require.Contains(t, err.Error(), tc.reason)
			if len(tc.in) > 0 {
				require.NotEmpty(t, e.Queue, "OpenSSL's reason")
			}
		})
	}
}

func TestUsePrivateKeyMismatch(t *testing.T) {
	other, err := testcert.New()
	require.NoError(t, err)
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	wrongKey, err := openssl.LoadPrivateKeyFromPEM(other.KeyPEM)
	require.NoError(t, err)
	require.NoError(t, sslCtx.UseCertificate(cert))

	err = sslCtx.UsePrivateKey(wrongKey)
	requireReason(t, err, "use private key", "key values mismatch")

	// The right key still goes in afterwards, and the Ctx serves.
	key, err := openssl.LoadPrivateKeyFromPEM(pki.KeyPEM)
	require.NoError(t, err)
	require.NoError(t, sslCtx.UsePrivateKey(key))
	tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeServer}, Ctx: sslCtx})
}

func TestCtxNilArguments(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	for name, err := range map[string]error{
		"use certificate":       sslCtx.UseCertificate(nil),
		"add chain certificate": sslCtx.AddChainCertificate(nil),
		"use private key":       sslCtx.UsePrivateKey(nil),
	} {
		e := asError(t, err)
		require.Equal(t, name, e.Op)
	}
}

func TestLoadVerifyLocations(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	missing := filepath.Join(t.TempDir(), "missing.pem")

	err = sslCtx.LoadVerifyLocations(missing, "")
	requireReason(t, err, "load verify locations", "no such file")
	require.Contains(t, err.Error(), "no such file or directory", "errno's text, not a number")
	require.Contains(t, err.Error(), missing, "the message names the file")

	err = sslCtx.LoadVerifyLocations("", filepath.Join(t.TempDir(), "missing-dir"))
	e := asError(t, err)
	require.Equal(t, "load verify locations", e.Op)
	require.ErrorIs(t, err, fs.ErrNotExist)

	err = sslCtx.LoadVerifyLocations("", "")
	require.Equal(t, "load verify locations", asError(t, err).Op)

	// A file that is not PEM.
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("garbage"), 0o600))
	err = sslCtx.LoadVerifyLocations(notPEM, "")
	require.Equal(t, "load verify locations", asError(t, err).Op)
	require.NotEmpty(t, asError(t, err).Queue)

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pki.CAPEM, 0o600))
	require.NoError(t, sslCtx.LoadVerifyLocations(caFile, ""))
}

func TestSetDefaultVerifyPaths(t *testing.T) {
	// The system roots do not include the test CA: the handshake fails
	// with the verify result saying so.
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.NoError(t, sslCtx.SetDefaultVerifyPaths())
	sslCtx.SetVerifyMode(openssl.VerifyPeer)
	p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
	ourErr, _ := p.Handshake()
	e := requireReason(t, ourErr, "handshake", "certificate verify failed")
	// The peer sends its leaf and the test CA, which no system root signed.
	require.Equal(t, openssl.VerifyResult(19), e.Verify) // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
	require.Contains(t, ourErr.Error(), "certificate verification: self-signed certificate in certificate chain")
}

func TestVerifyModeDefault(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.Equal(t, openssl.VerifyNone, sslCtx.VerifyMode())
	// VerifyNone: a client goes on with an untrusted server, and the
	// verify result tells what was wrong.
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
	require.Equal(t, openssl.VerifyResult(19), p.Ours.ConnectionState().VerifyResult)

	sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	require.Equal(t, openssl.VerifyPeer|openssl.VerifyFailIfNoPeerCert, sslCtx.VerifyMode())
}

// mtlsServerCtx is a server Ctx requiring a client certificate from pki's CA.
func mtlsServerCtx(t *testing.T) *openssl.Ctx {
	sslCtx := tlstest.ServerCtx(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), pki.CAPEM, 0o600))
	require.NoError(t, sslCtx.LoadVerifyLocations(filepath.Join(dir, "ca.pem"), ""))
	sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	return sslCtx
}

func TestMutualTLSWeAreServer(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		t.Run("no client certificate", func(t *testing.T) {
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeServer}, Ctx: mtlsServerCtx(t)})
			ourErr, peerErr := p.Handshake()
			requireReason(t, ourErr, "handshake", "peer did not return a certificate")
			if v == tls.VersionTLS12 {
				// A TLS 1.3 client finishes before the server judges its
				// (empty) certificate and learns of the alert on Read.
				require.Error(t, peerErr)
			} else {
				_, err := p.Peer.Read(make([]byte, 1))
				require.ErrorContains(t, err, "certificate required")
			}
		})
		t.Run("client certificate", func(t *testing.T) {
			cfg := tlstest.PeerConfig(pki, v, tlstest.WeServer)
			cfg.Certificates = []tls.Certificate{client.TLSCert}
			p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeServer}, Ctx: mtlsServerCtx(t), Config: cfg})
			st := p.Ours.ConnectionState()
			require.NotEmpty(t, st.PeerCertificates)
			require.True(t, st.PeerCertificates[0].Equal(client.Leaf))
			require.Equal(t, openssl.VerifyOK, st.VerifyResult)
		})
		t.Run("client certificate from another CA", func(t *testing.T) {
			stranger, err := testcert.New("client.test")
			require.NoError(t, err)
			cfg := tlstest.PeerConfig(pki, v, tlstest.WeServer)
			cfg.Certificates = []tls.Certificate{stranger.TLSCert}
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeServer}, Ctx: mtlsServerCtx(t), Config: cfg})
			ourErr, _ := p.Handshake()
			e := requireReason(t, ourErr, "handshake", "certificate verify failed")
			require.NotEqual(t, openssl.VerifyOK, e.Verify)
		})
	})
}

func TestMutualTLSWeAreClient(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		cfg := tlstest.PeerConfig(pki, v, tlstest.WeClient)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.Pool

		sslCtx := tlstest.ClientCtx(t)
		cert, err := openssl.LoadCertificateFromPEM(client.CertPEM)
		require.NoError(t, err)
		key, err := openssl.LoadPrivateKeyFromPEM(client.KeyPEM)
		require.NoError(t, err)
		require.NoError(t, sslCtx.UseCertificate(cert))
		require.NoError(t, sslCtx.UsePrivateKey(key))
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeClient}, Ctx: sslCtx, Config: cfg})
		peerCerts := p.Peer.ConnectionState().PeerCertificates
		require.NotEmpty(t, peerCerts)
		require.True(t, peerCerts[0].Equal(client.Leaf))

		// Without a certificate the crypto/tls server refuses us.
		p = tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeClient}, Config: cfg})
		ourErr, peerErr := p.Handshake()
		require.Error(t, peerErr)
		if ourErr == nil { // TLS 1.3: the alert comes after our Finished.
			_, ourErr = p.Ours.Read(make([]byte, 1))
		}
		e := asError(t, ourErr)
		require.Equal(t, openssl.ErrorSSL, e.Code)
		require.NotEmpty(t, e.Queue)
	})
}

func TestProtoVersions(t *testing.T) {
	t.Run("default minimum is TLS 1.2", func(t *testing.T) {
		for _, r := range tlstest.Roles {
			t.Run(r.String(), func(t *testing.T) {
				cfg := tlstest.PeerConfig(pki, tls.VersionTLS12, r)
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
				p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Role: r}, Config: cfg})
				ourErr, peerErr := p.Handshake()
				require.Error(t, peerErr)
				e := asError(t, ourErr)
				require.Equal(t, "handshake", e.Op)
				require.Equal(t, openssl.ErrorSSL, e.Code)
				if r == tlstest.WeServer {
					requireReason(t, ourErr, "handshake", "unsupported protocol")
				}
			})
		}
	})
	t.Run("max TLS 1.2 against a TLS 1.3 peer", func(t *testing.T) {
		for _, r := range tlstest.Roles {
			t.Run(r.String(), func(t *testing.T) {
				sslCtx := tlstest.CtxFor(t, r)
				require.NoError(t, sslCtx.SetMaxProtoVersion(tls.VersionTLS12))
				cfg := tlstest.PeerConfig(pki, tls.VersionTLS13, r)
				cfg.MinVersion = tls.VersionTLS12
				p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Role: r}, Ctx: sslCtx, Config: cfg})
				require.Equal(t, uint16(tls.VersionTLS12), p.Ours.ConnectionState().Version)
				require.Equal(t, uint16(tls.VersionTLS12), p.Peer.ConnectionState().Version)
			})
		}
	})
	t.Run("min TLS 1.3 against a TLS 1.2 peer", func(t *testing.T) {
		for _, r := range tlstest.Roles {
			t.Run(r.String(), func(t *testing.T) {
				sslCtx := tlstest.CtxFor(t, r)
				require.NoError(t, sslCtx.SetMinProtoVersion(tls.VersionTLS13))
				p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Role: r}, Ctx: sslCtx, Config: tlstest.PeerConfig(pki, tls.VersionTLS12, r)})
				ourErr, peerErr := p.Handshake()
				require.Error(t, peerErr)
				require.Equal(t, "handshake", asError(t, ourErr).Op)
			})
		}
	})
	t.Run("impossible range", func(t *testing.T) {
		sslCtx := tlstest.ServerCtx(t)
		require.NoError(t, sslCtx.SetMinProtoVersion(tls.VersionTLS13))
		err := sslCtx.SetMaxProtoVersion(tls.VersionTLS12)
		require.Equal(t, "set max proto version", asError(t, err).Op)
		require.ErrorContains(t, err, "above maximum")

		require.NoError(t, sslCtx.SetMinProtoVersion(tls.VersionTLS12))
		require.NoError(t, sslCtx.SetMaxProtoVersion(tls.VersionTLS12))
		err = sslCtx.SetMinProtoVersion(tls.VersionTLS13)
		require.Equal(t, "set min proto version", asError(t, err).Op)

		// The failed call changed nothing: still TLS 1.2 only.
		cfg := tlstest.PeerConfig(pki, tls.VersionTLS13, tlstest.WeServer)
		cfg.MinVersion = tls.VersionTLS12
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Role: tlstest.WeServer}, Ctx: sslCtx, Config: cfg})
		require.Equal(t, uint16(tls.VersionTLS12), p.Ours.ConnectionState().Version)
	})
	t.Run("unsupported versions", func(t *testing.T) {
		sslCtx, err := openssl.NewCtx()
		require.NoError(t, err)
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionSSL30, 0x0305} {
			require.Equal(t, "set min proto version", asError(t, sslCtx.SetMinProtoVersion(v)).Op)
			require.Equal(t, "set max proto version", asError(t, sslCtx.SetMaxProtoVersion(v)).Op)
		}
	})
}

// openSSL12Names maps OpenSSL's names of the TLS 1.2 suites these tests use
// to crypto/tls's IDs. TLS 1.3 suites have the same name in both.
var openSSL12Names = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
}

func TestSetCipherList(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	requireReason(t, sslCtx.SetCipherList("NO-SUCH-CIPHER"), "set cipher list", "no cipher match")
	testCipherChoice(t, tls.VersionTLS12, (*openssl.Ctx).SetCipherList, openSSL12Names)
}

func TestSetCipherSuites(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	requireReason(t, sslCtx.SetCipherSuites("TLS_NO_SUCH_SUITE"), "set cipher suites", "no cipher match")
	suites := map[string]uint16{}
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		suites[tls.CipherSuiteName(id)] = id
	}
	testCipherChoice(t, tls.VersionTLS13, (*openssl.Ctx).SetCipherSuites, suites)
}

// testCipherChoice limits our Ctx with set to each of suites (OpenSSL's
// name → crypto/tls's ID) in turn and connects over version, in both roles:
// both sides must report that suite.
func testCipherChoice(t *testing.T, version uint16, set func(*openssl.Ctx, string) error, suites map[string]uint16) {
	for _, r := range tlstest.Roles {
		for name, id := range suites {
			t.Run(r.String()+"/"+name, func(t *testing.T) {
				sslCtx := tlstest.CtxFor(t, r)
				require.NoError(t, set(sslCtx, name))
				p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: r}, Ctx: sslCtx})
				require.Equal(t, name, p.Ours.ConnectionState().CipherSuite)
				require.Equal(t, id, p.Peer.ConnectionState().CipherSuite)
			})
		}
	}
}

func TestSetGroups(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	err = sslCtx.SetGroups("NO-SUCH-GROUP")
	require.Equal(t, "set groups", asError(t, err).Op)
	require.ErrorContains(t, err, `openssl: set groups: unknown or unavailable group in "NO-SUCH-GROUP"`)
	require.ErrorContains(t, sslCtx.SetGroups("P-256:NO-SUCH-GROUP"), "NO-SUCH-GROUP")

	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		sslCtx := tlstest.CtxFor(t, tc.Role)
		require.NoError(t, sslCtx.SetGroups("P-256"))
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Ctx: sslCtx})
		require.Equal(t, tls.CurveP256, p.Peer.ConnectionState().CurveID)

		// No group in common: the handshake fails on both sides.
		cfg := tlstest.PeerConfig(pki, tc.Version, tc.Role)
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
		p = tlstest.NewPair(t, tlstest.Spec{Case: tc, Ctx: sslCtx, Config: cfg})
		ourErr, peerErr := p.Handshake()
		require.Error(t, peerErr)
		e := asError(t, ourErr)
		require.Equal(t, "handshake", e.Op)
		require.Equal(t, openssl.ErrorSSL, e.Code)
	})
}

func TestSetNextProtos(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.Equal(t, "set next protos", asError(t, sslCtx.SetNextProtos(nil)).Op)
	require.Equal(t, "set next protos", asError(t, sslCtx.SetNextProtos([]string{""})).Op)
	require.Equal(t, "set next protos", asError(t, sslCtx.SetNextProtos([]string{strings.Repeat("x", 256)})).Op)

	for _, tc := range []struct {
		name       string
		role       tlstest.Role
		ours, peer []string
		want       string // "" means the handshake fails
	}{
		{"client offers, server picks", tlstest.WeClient, []string{"h2", "http/1.1"}, []string{"http/1.1"}, "http/1.1"},
		{"client offers one", tlstest.WeClient, []string{"h2"}, []string{"http/1.1", "h2"}, "h2"},
		{"server prefers its own order", tlstest.WeServer, []string{"h2", "http/1.1"}, []string{"http/1.1", "h2"}, "h2"},
		{"server takes the only common one", tlstest.WeServer, []string{"spdy/3", "http/1.1"}, []string{"h2", "http/1.1"}, "http/1.1"},
		{"no common protocol, we serve", tlstest.WeServer, []string{"h2"}, []string{"foo"}, ""},
		{"no common protocol, we dial", tlstest.WeClient, []string{"h2"}, []string{"foo"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlstest.EachVersion(t, func(t *testing.T, v uint16) {
				sslCtx := tlstest.CtxFor(t, tc.role)
				require.NoError(t, sslCtx.SetNextProtos(tc.ours))
				cfg := tlstest.PeerConfig(pki, v, tc.role)
				cfg.NextProtos = tc.peer
				p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tc.role}, Ctx: sslCtx, Config: cfg})
				ourErr, peerErr := p.Handshake()
				if tc.want != "" {
					require.NoError(t, ourErr)
					require.NoError(t, peerErr)
					require.Equal(t, tc.want, p.Ours.ConnectionState().NegotiatedProtocol)
					require.Equal(t, tc.want, p.Peer.ConnectionState().NegotiatedProtocol)
					return
				}
				if tc.role == tlstest.WeServer {
					// Our select callback refuses and alerts the client.
					requireReason(t, ourErr, "handshake", "no application protocol")
					require.ErrorContains(t, peerErr, "remote error: tls: no application protocol")
				} else {
					// The crypto/tls server refuses; we read its alert.
					requireReason(t, ourErr, "handshake", "tlsv1 alert no application protocol")
					require.ErrorContains(t, peerErr, "unsupported application protocols")
				}
				require.Equal(t, openssl.ErrorSSL, asError(t, ourErr).Code)
			})
		})
	}
}

func TestSetOptions(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	all := sslCtx.SetOptions(openssl.IgnoreUnexpectedEOF)
	require.NotZero(t, all&openssl.IgnoreUnexpectedEOF)
	all = sslCtx.SetOptions(openssl.NoTicket)
	require.NotZero(t, all&openssl.IgnoreUnexpectedEOF, "options add up")
	require.NotZero(t, all&openssl.NoTicket)
	all = sslCtx.ClearOptions(openssl.IgnoreUnexpectedEOF)
	require.Zero(t, all&openssl.IgnoreUnexpectedEOF)
	require.NotZero(t, all&openssl.NoTicket)
}

// TestIgnoreUnexpectedEOFOption: with the option a TCP EOF without
// close_notify reads as io.EOF (the truncation test without it is in
// conn_test.go).
func TestIgnoreUnexpectedEOFOption(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		sslCtx := tlstest.CtxFor(t, tc.Role)
		sslCtx.SetOptions(openssl.IgnoreUnexpectedEOF)
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Ctx: sslCtx})
		p.SyncPeer(t)
		_, err := p.Peer.Write([]byte("last"))
		require.NoError(t, err)
		require.NoError(t, p.PeerTCP().Close())

		buf := make([]byte, 16)
		n, err := p.Ours.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "last", string(buf[:n]))
		for range 3 {
			n, err = p.Ours.Read(buf)
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		}
	})
}

// TestSetNextProtosWhileHandshaking: SetNextProtos replaces the server's
// list while handshakes on the same Ctx read it (a use after free before).
// Each handshake negotiates one of the two lists' protocols. Run under
// -race and -asan by make test.
func TestSetNextProtosWhileHandshaking(t *testing.T) {
	sslCtx := tlstest.CtxFor(t, tlstest.WeServer)
	require.NoError(t, sslCtx.SetNextProtos([]string{"a"}))
	stop := make(chan struct{})
	swapped := tlstest.Go(func() error {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := sslCtx.SetNextProtos([]string{[]string{"a", "b"}[i%2]}); err != nil {
				return err
			}
		}
	})
	const handshakes = 20
	for i := range handshakes {
		cfg := tlstest.PeerConfig(pki, tls.VersionTLS13, tlstest.WeServer)
		cfg.NextProtos = []string{"a", "b"}
		p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeServer}, Ctx: sslCtx, Config: cfg})
		ourErr, peerErr := p.Handshake()
		require.NoError(t, ourErr, "handshake %d", i)
		require.NoError(t, peerErr, "handshake %d", i)
		require.Contains(t, []string{"a", "b"}, p.Ours.ConnectionState().NegotiatedProtocol)
		require.Equal(t, p.Ours.ConnectionState().NegotiatedProtocol, p.Peer.ConnectionState().NegotiatedProtocol)
	}
	close(stop)
	tlstest.Wait(t, swapped, "SetNextProtos loop")
}

// TestNewCtxALPNConcurrently: Ctxs made at once, each with its own ALPN
// list, each negotiate their own protocol (a race on the ex-data index used
// to leave some without ALPN).
func TestNewCtxALPNConcurrently(t *testing.T) {
	const n = 8
	sslCtxs := make([]*openssl.Ctx, n)
	var wg sync.WaitGroup
	for i := range sslCtxs {
		wg.Go(func() {
			sslCtx, err := openssl.NewCtx()
			if err == nil {
				err = sslCtx.SetNextProtos([]string{fmt.Sprintf("p%d", i)})
			}
			if err != nil {
				t.Error(err)
				return
			}
			sslCtxs[i] = sslCtx
		})
	}
	wg.Wait()
	for i, sslCtx := range sslCtxs {
		require.NotNil(t, sslCtx)
		cfg := tlstest.PeerConfig(pki, tls.VersionTLS13, tlstest.WeClient)
		cfg.NextProtos = []string{fmt.Sprintf("p%d", i)}
		// Our Ctx, as a client that does not verify, offers its list; the
		// crypto/tls server must see it and pick it.
		p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx, Config: cfg})
		ourErr, peerErr := p.Handshake()
		require.NoError(t, ourErr)
		require.NoError(t, peerErr)
		require.Equal(t, fmt.Sprintf("p%d", i), p.Ours.ConnectionState().NegotiatedProtocol)
	}
}
