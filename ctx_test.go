package openssl_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
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
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	require.NoError(t, ctx.UseCertificate(cert))
	require.NoError(t, ctx.UsePrivateKey(key))
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
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	wrongKey, err := openssl.LoadPrivateKeyFromPEM(other.KeyPEM)
	require.NoError(t, err)
	require.NoError(t, ctx.UseCertificate(cert))

	err = ctx.UsePrivateKey(wrongKey)
	requireReason(t, err, "use private key", "key values mismatch")

	// The right key still goes in afterwards, and the Ctx serves.
	key, err := openssl.LoadPrivateKeyFromPEM(pki.KeyPEM)
	require.NoError(t, err)
	require.NoError(t, ctx.UsePrivateKey(key))
	connectedPair(t, pairSpec{version: tls.VersionTLS13, role: weAreServer, ctx: ctx})
}

func TestCtxNilArguments(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	for name, err := range map[string]error{
		"use certificate":       ctx.UseCertificate(nil),
		"add chain certificate": ctx.AddChainCertificate(nil),
		"use private key":       ctx.UsePrivateKey(nil),
	} {
		e := asError(t, err)
		require.Equal(t, name, e.Op)
	}
}

func TestLoadVerifyLocations(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	missing := filepath.Join(t.TempDir(), "missing.pem")

	err = ctx.LoadVerifyLocations(missing, "")
	requireReason(t, err, "load verify locations", "no such file")
	require.Contains(t, err.Error(), "no such file or directory", "errno's text, not a number")
	require.Contains(t, err.Error(), missing, "the message names the file")

	err = ctx.LoadVerifyLocations("", filepath.Join(t.TempDir(), "missing-dir"))
	e := asError(t, err)
	require.Equal(t, "load verify locations", e.Op)
	require.ErrorIs(t, err, fs.ErrNotExist)

	err = ctx.LoadVerifyLocations("", "")
	require.Equal(t, "load verify locations", asError(t, err).Op)

	// A file that is not PEM.
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("garbage"), 0o600))
	err = ctx.LoadVerifyLocations(notPEM, "")
	require.Equal(t, "load verify locations", asError(t, err).Op)
	require.NotEmpty(t, asError(t, err).Queue)

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pki.CAPEM, 0o600))
	require.NoError(t, ctx.LoadVerifyLocations(caFile, ""))
}

func TestSetDefaultVerifyPaths(t *testing.T) {
	// The system roots do not include the test CA: the handshake fails
	// with the verify result saying so.
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.NoError(t, ctx.SetDefaultVerifyPaths())
	ctx.SetVerifyMode(openssl.VerifyPeer)
	p := newPair(t, pairSpec{version: tls.VersionTLS13, role: weAreClient, ctx: ctx})
	ourErr, _ := p.handshake()
	e := requireReason(t, ourErr, "handshake", "certificate verify failed")
	// The peer sends its leaf and the test CA, which no system root signed.
	require.Equal(t, openssl.VerifyResult(19), e.Verify) // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
	require.Contains(t, ourErr.Error(), "certificate verification: self-signed certificate in certificate chain")
}

func TestVerifyModeDefault(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.Equal(t, openssl.VerifyNone, ctx.VerifyMode())
	// VerifyNone: a client goes on with an untrusted server, and the
	// verify result tells what was wrong.
	p := connectedPair(t, pairSpec{version: tls.VersionTLS13, role: weAreClient, ctx: ctx})
	require.Equal(t, openssl.VerifyResult(19), p.ours.ConnectionState().VerifyResult)

	ctx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	require.Equal(t, openssl.VerifyPeer|openssl.VerifyFailIfNoPeerCert, ctx.VerifyMode())
}

// mtlsServerCtx is a server Ctx requiring a client certificate from pki's CA.
func mtlsServerCtx(t *testing.T) *openssl.Ctx {
	ctx := serverCtx(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), pki.CAPEM, 0o600))
	require.NoError(t, ctx.LoadVerifyLocations(filepath.Join(dir, "ca.pem"), ""))
	ctx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	return ctx
}

func TestMutualTLSWeAreServer(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	eachVersion(t, func(t *testing.T, v uint16) {
		t.Run("no client certificate", func(t *testing.T) {
			p := newPair(t, pairSpec{version: v, role: weAreServer, ctx: mtlsServerCtx(t)})
			ourErr, peerErr := p.handshake()
			requireReason(t, ourErr, "handshake", "peer did not return a certificate")
			if v == tls.VersionTLS12 {
				// A TLS 1.3 client finishes before the server judges its
				// (empty) certificate and learns of the alert on Read.
				require.Error(t, peerErr)
			} else {
				_, err := p.peer.Read(make([]byte, 1))
				require.ErrorContains(t, err, "certificate required")
			}
		})
		t.Run("client certificate", func(t *testing.T) {
			cfg := peerConfig(v, weAreServer)
			cfg.Certificates = []tls.Certificate{client.TLSCert}
			p := connectedPair(t, pairSpec{version: v, role: weAreServer, ctx: mtlsServerCtx(t), peer: cfg})
			st := p.ours.ConnectionState()
			require.NotEmpty(t, st.PeerCertificates)
			require.True(t, st.PeerCertificates[0].Equal(client.Leaf))
			require.Equal(t, openssl.VerifyOK, st.VerifyResult)
		})
		t.Run("client certificate from another CA", func(t *testing.T) {
			stranger, err := testcert.New("client.test")
			require.NoError(t, err)
			cfg := peerConfig(v, weAreServer)
			cfg.Certificates = []tls.Certificate{stranger.TLSCert}
			p := newPair(t, pairSpec{version: v, role: weAreServer, ctx: mtlsServerCtx(t), peer: cfg})
			ourErr, _ := p.handshake()
			e := requireReason(t, ourErr, "handshake", "certificate verify failed")
			require.NotEqual(t, openssl.VerifyOK, e.Verify)
		})
	})
}

func TestMutualTLSWeAreClient(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	eachVersion(t, func(t *testing.T, v uint16) {
		cfg := peerConfig(v, weAreClient)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pki.Pool

		ctx := clientCtx(t)
		cert, err := openssl.LoadCertificateFromPEM(client.CertPEM)
		require.NoError(t, err)
		key, err := openssl.LoadPrivateKeyFromPEM(client.KeyPEM)
		require.NoError(t, err)
		require.NoError(t, ctx.UseCertificate(cert))
		require.NoError(t, ctx.UsePrivateKey(key))
		p := connectedPair(t, pairSpec{version: v, role: weAreClient, ctx: ctx, peer: cfg})
		peerCerts := p.peer.ConnectionState().PeerCertificates
		require.NotEmpty(t, peerCerts)
		require.True(t, peerCerts[0].Equal(client.Leaf))

		// Without a certificate the crypto/tls server refuses us.
		p = newPair(t, pairSpec{version: v, role: weAreClient, peer: cfg})
		ourErr, peerErr := p.handshake()
		require.Error(t, peerErr)
		if ourErr == nil { // TLS 1.3: the alert comes after our Finished.
			_, ourErr = p.ours.Read(make([]byte, 1))
		}
		e := asError(t, ourErr)
		require.Equal(t, openssl.ErrorSSL, e.Code)
		require.NotEmpty(t, e.Queue)
	})
}

func TestProtoVersions(t *testing.T) {
	t.Run("default minimum is TLS 1.2", func(t *testing.T) {
		for _, r := range ourRoles {
			t.Run(r.String(), func(t *testing.T) {
				cfg := peerConfig(tls.VersionTLS12, r)
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
				p := newPair(t, pairSpec{role: r, peer: cfg})
				ourErr, peerErr := p.handshake()
				require.Error(t, peerErr)
				e := asError(t, ourErr)
				require.Equal(t, "handshake", e.Op)
				require.Equal(t, openssl.ErrorSSL, e.Code)
				if r == weAreServer {
					requireReason(t, ourErr, "handshake", "unsupported protocol")
				}
			})
		}
	})
	t.Run("max TLS 1.2 against a TLS 1.3 peer", func(t *testing.T) {
		for _, r := range ourRoles {
			t.Run(r.String(), func(t *testing.T) {
				ctx := ctxFor(t, r)
				require.NoError(t, ctx.SetMaxProtoVersion(tls.VersionTLS12))
				cfg := peerConfig(tls.VersionTLS13, r)
				cfg.MinVersion = tls.VersionTLS12
				p := connectedPair(t, pairSpec{role: r, ctx: ctx, peer: cfg})
				require.Equal(t, uint16(tls.VersionTLS12), p.ours.ConnectionState().Version)
				require.Equal(t, uint16(tls.VersionTLS12), p.peer.ConnectionState().Version)
			})
		}
	})
	t.Run("min TLS 1.3 against a TLS 1.2 peer", func(t *testing.T) {
		for _, r := range ourRoles {
			t.Run(r.String(), func(t *testing.T) {
				ctx := ctxFor(t, r)
				require.NoError(t, ctx.SetMinProtoVersion(tls.VersionTLS13))
				p := newPair(t, pairSpec{role: r, ctx: ctx, peer: peerConfig(tls.VersionTLS12, r)})
				ourErr, peerErr := p.handshake()
				require.Error(t, peerErr)
				require.Equal(t, "handshake", asError(t, ourErr).Op)
			})
		}
	})
	t.Run("impossible range", func(t *testing.T) {
		ctx := serverCtx(t)
		require.NoError(t, ctx.SetMinProtoVersion(tls.VersionTLS13))
		err := ctx.SetMaxProtoVersion(tls.VersionTLS12)
		require.Equal(t, "set max proto version", asError(t, err).Op)
		require.ErrorContains(t, err, "above maximum")

		require.NoError(t, ctx.SetMinProtoVersion(tls.VersionTLS12))
		require.NoError(t, ctx.SetMaxProtoVersion(tls.VersionTLS12))
		err = ctx.SetMinProtoVersion(tls.VersionTLS13)
		require.Equal(t, "set min proto version", asError(t, err).Op)

		// The failed call changed nothing: still TLS 1.2 only.
		cfg := peerConfig(tls.VersionTLS13, weAreServer)
		cfg.MinVersion = tls.VersionTLS12
		p := connectedPair(t, pairSpec{role: weAreServer, ctx: ctx, peer: cfg})
		require.Equal(t, uint16(tls.VersionTLS12), p.ours.ConnectionState().Version)
	})
	t.Run("unsupported versions", func(t *testing.T) {
		ctx, err := openssl.NewCtx()
		require.NoError(t, err)
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionSSL30, 0x0305} {
			require.Equal(t, "set min proto version", asError(t, ctx.SetMinProtoVersion(v)).Op)
			require.Equal(t, "set max proto version", asError(t, ctx.SetMaxProtoVersion(v)).Op)
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
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	requireReason(t, ctx.SetCipherList("NO-SUCH-CIPHER"), "set cipher list", "no cipher match")

	for _, r := range ourRoles {
		for name, id := range openSSL12Names {
			t.Run(r.String()+"/"+name, func(t *testing.T) {
				ctx := ctxFor(t, r)
				require.NoError(t, ctx.SetCipherList(name))
				p := connectedPair(t, pairSpec{version: tls.VersionTLS12, role: r, ctx: ctx})
				require.Equal(t, name, p.ours.ConnectionState().CipherSuite)
				require.Equal(t, id, p.peer.ConnectionState().CipherSuite)
			})
		}
	}
}

func TestSetCipherSuites(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	requireReason(t, ctx.SetCipherSuites("TLS_NO_SUCH_SUITE"), "set cipher suites", "no cipher match")

	for _, r := range ourRoles {
		for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
			name := tls.CipherSuiteName(id)
			t.Run(r.String()+"/"+name, func(t *testing.T) {
				ctx := ctxFor(t, r)
				require.NoError(t, ctx.SetCipherSuites(name))
				p := connectedPair(t, pairSpec{version: tls.VersionTLS13, role: r, ctx: ctx})
				require.Equal(t, name, p.ours.ConnectionState().CipherSuite)
				require.Equal(t, id, p.peer.ConnectionState().CipherSuite)
			})
		}
	}
}

func TestSetGroups(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	err = ctx.SetGroups("NO-SUCH-GROUP")
	require.Equal(t, "set groups", asError(t, err).Op)
	require.ErrorContains(t, err, `openssl: set groups: unknown or unavailable group in "NO-SUCH-GROUP"`)
	require.ErrorContains(t, ctx.SetGroups("P-256:NO-SUCH-GROUP"), "NO-SUCH-GROUP")

	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		ctx := ctxFor(t, r)
		require.NoError(t, ctx.SetGroups("P-256"))
		p := connectedPair(t, pairSpec{version: v, role: r, ctx: ctx})
		require.Equal(t, tls.CurveP256, p.peer.ConnectionState().CurveID)

		// No group in common: the handshake fails on both sides.
		cfg := peerConfig(v, r)
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
		p = newPair(t, pairSpec{version: v, role: r, ctx: ctx, peer: cfg})
		ourErr, peerErr := p.handshake()
		require.Error(t, peerErr)
		e := asError(t, ourErr)
		require.Equal(t, "handshake", e.Op)
		require.Equal(t, openssl.ErrorSSL, e.Code)
	})
}

func TestSetNextProtos(t *testing.T) {
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.Equal(t, "set next protos", asError(t, ctx.SetNextProtos(nil)).Op)
	require.Equal(t, "set next protos", asError(t, ctx.SetNextProtos([]string{""})).Op)
	require.Equal(t, "set next protos", asError(t, ctx.SetNextProtos([]string{strings.Repeat("x", 256)})).Op)

	for _, tc := range []struct {
		name       string
		role       ourRole
		ours, peer []string
		want       string // "" means the handshake fails
	}{
		{"client offers, server picks", weAreClient, []string{"h2", "http/1.1"}, []string{"http/1.1"}, "http/1.1"},
		{"client offers one", weAreClient, []string{"h2"}, []string{"http/1.1", "h2"}, "h2"},
		{"server prefers its own order", weAreServer, []string{"h2", "http/1.1"}, []string{"http/1.1", "h2"}, "h2"},
		{"server takes the only common one", weAreServer, []string{"spdy/3", "http/1.1"}, []string{"h2", "http/1.1"}, "http/1.1"},
		{"no common protocol, we serve", weAreServer, []string{"h2"}, []string{"foo"}, ""},
		{"no common protocol, we dial", weAreClient, []string{"h2"}, []string{"foo"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachVersion(t, func(t *testing.T, v uint16) {
				ctx := ctxFor(t, tc.role)
				require.NoError(t, ctx.SetNextProtos(tc.ours))
				cfg := peerConfig(v, tc.role)
				cfg.NextProtos = tc.peer
				p := newPair(t, pairSpec{version: v, role: tc.role, ctx: ctx, peer: cfg})
				ourErr, peerErr := p.handshake()
				if tc.want != "" {
					require.NoError(t, ourErr)
					require.NoError(t, peerErr)
					require.Equal(t, tc.want, p.ours.ConnectionState().NegotiatedProtocol)
					require.Equal(t, tc.want, p.peer.ConnectionState().NegotiatedProtocol)
					return
				}
				if tc.role == weAreServer {
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
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	all := ctx.SetOptions(openssl.IgnoreUnexpectedEOF)
	require.NotZero(t, all&openssl.IgnoreUnexpectedEOF)
	all = ctx.SetOptions(openssl.NoTicket)
	require.NotZero(t, all&openssl.IgnoreUnexpectedEOF, "options add up")
	require.NotZero(t, all&openssl.NoTicket)
	all = ctx.ClearOptions(openssl.IgnoreUnexpectedEOF)
	require.Zero(t, all&openssl.IgnoreUnexpectedEOF)
	require.NotZero(t, all&openssl.NoTicket)
}

// TestIgnoreUnexpectedEOFOption: with the option a TCP EOF without
// close_notify reads as io.EOF (the truncation test without it is in
// conn_test.go).
func TestIgnoreUnexpectedEOFOption(t *testing.T) {
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		ctx := ctxFor(t, r)
		ctx.SetOptions(openssl.IgnoreUnexpectedEOF)
		p := connectedPair(t, pairSpec{version: v, role: r, ctx: ctx})
		p.syncPeer(t)
		_, err := p.peer.Write([]byte("last"))
		require.NoError(t, err)
		require.NoError(t, p.peerRaw.Close())

		buf := make([]byte, 16)
		n, err := p.ours.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "last", string(buf[:n]))
		for range 3 {
			n, err = p.ours.Read(buf)
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		}
	})
}
