package openssl_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestNewCtxFromFiles(t *testing.T) {
	dir := t.TempDir()
	files, err := tlstest.WriteFiles(pki, dir)
	require.NoError(t, err)
	// The chain file holds the leaf and the CA: both are sent.
	chainFile := filepath.Join(dir, "chain.pem")
	require.NoError(t, os.WriteFile(chainFile, pki.ChainPEM, 0o600))
	sslCtx, err := openssl.NewCtxFromFiles(chainFile, files.Key)
	require.NoError(t, err)
	p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, nil)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	sent := p.Peer.ConnectionState().PeerCertificates
	require.Len(t, sent, 2)
	require.True(t, sent[0].Equal(pki.Leaf))
	require.True(t, sent[1].Equal(pki.CA))

	// A combined file, key and certificate in one, serves too: only its
	// CERTIFICATE blocks make the chain.
	combined := filepath.Join(dir, "combined.pem")
	require.NoError(t, os.WriteFile(combined, append(append([]byte{}, pki.KeyPEM...), pki.CertPEM...), 0o600))
	sslCtx, err = openssl.NewCtxFromFiles(combined, combined)
	require.NoError(t, err)
	p, ourErr, peerErr = handshakeGo(t, tlstest.WeServer, sslCtx, nil)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	require.Len(t, p.Peer.ConnectionState().PeerCertificates, 1)

	other, err := testcert.New()
	require.NoError(t, err)
	otherDir := t.TempDir()
	require.NoError(t, other.WriteFiles(otherDir))
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("no PEM here\n"), 0o600))
	for _, tc := range []struct {
		name, certFile, keyFile, op, reason string
	}{
		{"no cert file", filepath.Join(dir, "missing.pem"), files.Key, "load certificate", "no such file"},
		{"no key file", files.Cert, filepath.Join(dir, "missing.pem"), "load private key", "no such file"},
		{"no PEM in the cert file", garbage, files.Key, "load certificate", "no PEM CERTIFICATE block"},
		{"key file holds a certificate", files.Cert, files.Cert, "load private key", "unsupported"},
		{"key of another certificate", files.Cert, other.KeyFile, "use private key", "key values mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sslCtx, err := openssl.NewCtxFromFiles(tc.certFile, tc.keyFile)
			require.Nil(t, sslCtx)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.op, e.Op)
			require.Contains(t, err.Error(), tc.reason)
			if tc.reason == "no such file" {
				require.ErrorIs(t, err, fs.ErrNotExist)
			}
		})
	}
}

func TestSplitPEM(t *testing.T) {
	blocks := openssl.SplitPEM(append([]byte("text before\n"), pki.ChainPEM...))
	require.Equal(t, [][]byte{pki.CertPEM, pki.CAPEM}, blocks)
	require.Empty(t, openssl.SplitPEM([]byte("nothing")))
}

func TestNewCtxWithVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version openssl.SSLVersion
		want    uint16 // negotiated with a client offering 1.2 and 1.3
	}{
		{"AnyVersion", openssl.AnyVersion, tls.VersionTLS13},
		{"TLSv1_2", openssl.TLSv1_2, tls.VersionTLS12},
		{"TLSv1_3", openssl.TLSv1_3, tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sslCtx, err := openssl.NewCtxWithVersion(tc.version)
			require.NoError(t, err)
			useCertificate(t, sslCtx, pki, nil)
			p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, nil)
			require.NoError(t, ourErr)
			require.NoError(t, peerErr)
			require.Equal(t, tc.want, p.Ours.ConnectionState().Version)
		})
	}
	for _, v := range []openssl.SSLVersion{openssl.SSLv3, openssl.TLSv1, openssl.TLSv1_1, 99} {
		sslCtx, err := openssl.NewCtxWithVersion(v)
		require.Nil(t, sslCtx)
		var e *openssl.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, "new ctx", e.Op)
	}
}

// A TLS 1.2-only Ctx refuses a TLS 1.3-only client.
func TestNewCtxWithVersionRefusesOthers(t *testing.T) {
	sslCtx, err := openssl.NewCtxWithVersion(openssl.TLSv1_2)
	require.NoError(t, err)
	useCertificate(t, sslCtx, pki, nil)
	_, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, tlstest.PeerConfig(pki, tls.VersionTLS13, tlstest.WeServer))
	require.ErrorContains(t, ourErr, "unsupported protocol")
	require.Error(t, peerErr)
}

// useCertificate makes sslCtx serve b's certificate with key, or b's key
// when key is nil. UsePrivateKey checks that they match.
func useCertificate(t testing.TB, sslCtx *openssl.Ctx, b *testcert.Bundle, key openssl.PrivateKey) {
	t.Helper()
	cert, err := openssl.LoadCertificateFromPEM(b.CertPEM)
	require.NoError(t, err)
	if key == nil {
		key, err = openssl.LoadPrivateKeyFromPEM(b.KeyPEM)
		require.NoError(t, err)
	}
	require.NoError(t, sslCtx.UseCertificate(cert))
	require.NoError(t, sslCtx.UsePrivateKey(key))
}

func TestSetEllipticCurve(t *testing.T) {
	rsaPKI, err := testcert.NewRSA(2048)
	require.NoError(t, err)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			sslCtx, err := openssl.NewCtx()
			require.NoError(t, err)
			useCertificate(t, sslCtx, rsaPKI, nil)
			require.NoError(t, sslCtx.SetEllipticCurve(openssl.Secp384r1))

			// A client preferring X25519 ends up on P-384. (RSA: in TLS
			// 1.2 an ECDSA certificate's curve must be one the client
			// offers.)
			cfg := &tls.Config{RootCAs: rsaPKI.Pool, ServerName: "localhost", MinVersion: version, MaxVersion: version,
				CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP384}}
			p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, cfg)
			require.NoError(t, ourErr)
			require.NoError(t, peerErr)
			require.Equal(t, tls.CurveP384, p.Peer.ConnectionState().CurveID)

			// A client without P-384 fails.
			cfg = cfg.Clone()
			cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
			_, ourErr, peerErr = handshakeGo(t, tlstest.WeServer, sslCtx, cfg)
			require.Error(t, ourErr)
			require.Error(t, peerErr)
		})
	}

	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	var e *openssl.Error
	require.ErrorAs(t, sslCtx.SetEllipticCurve(openssl.EllipticCurve(openssl.NID_commonName)), &e)
	require.Equal(t, "set elliptic curve", e.Op)
}

func TestModes(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	required := openssl.EnablePartialWrite | openssl.AcceptMovingWriteBuffer
	require.Equal(t, required, sslCtx.GetMode()&required)
	require.Zero(t, sslCtx.GetMode()&openssl.ReleaseBuffers)

	require.Equal(t, openssl.ReleaseBuffers, sslCtx.SetMode(openssl.ReleaseBuffers)&openssl.ReleaseBuffers)
	require.Equal(t, sslCtx.GetMode(), sslCtx.SetMode(0))
	// Bits outside ReleaseBuffers and NoAutoChain are ignored (0x100 is
	// SSL_MODE_ASYNC), and the modes Write relies on stay.
	before := sslCtx.GetMode()
	require.Equal(t, before, sslCtx.SetMode(0x100))
	left := sslCtx.ClearMode(required | openssl.ReleaseBuffers)
	require.Equal(t, required, left&required)
	require.Zero(t, left&openssl.ReleaseBuffers)

	// A connection with ReleaseBuffers moves data as any other.
	sslCtx.SetMode(openssl.ReleaseBuffers)
	useCertificate(t, sslCtx, pki, nil)
	p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, sslCtx, nil)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	ours, peer := p.Ours, p.Peer
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(data))))
		got <- b
	}()
	n, err := ours.Write(data)
	require.NoError(t, err)
	require.Equal(t, len(data), n)
	require.True(t, bytes.Equal(data, <-got))
}

func TestGetOptions(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.Zero(t, sslCtx.GetOptions()&openssl.NoTicket)
	all := sslCtx.SetOptions(openssl.NoTicket | openssl.NoSSLv3 | openssl.NoTLSv1 | openssl.NoTLSv1_1 | openssl.NoCompression)
	require.Equal(t, all, sslCtx.GetOptions())
	want := openssl.NoTicket | openssl.NoSSLv3 | openssl.NoTLSv1 | openssl.NoTLSv1_1 | openssl.NoCompression
	require.Equal(t, want, all&want)
	require.Zero(t, sslCtx.ClearOptions(openssl.NoTicket)&openssl.NoTicket)
	require.Zero(t, sslCtx.GetOptions()&openssl.NoTicket)
}

func TestConnStateCallsAsClient(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		sslCtx := tlstest.ClientCtx(t)
		// pki.TLSCert sends the leaf and the CA.
		p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: version}, Ctx: sslCtx})
		ours := p.Ours
		require.Same(t, sslCtx, ours.GetCtx())
		require.Equal(t, net.Conn(p.OurSock), ours.UnderlyingConn())

		// Before the handshake.
		_, err := ours.PeerCertificate()
		require.ErrorIs(t, err, openssl.ErrHandshakeIncomplete)
		_, err = ours.CurrentCipher()
		require.ErrorIs(t, err, openssl.ErrHandshakeIncomplete)
		require.False(t, ours.SessionReused())

		ourErr, peerErr := p.Handshake()
		require.NoError(t, ourErr)
		require.NoError(t, peerErr)
		chain, err := ours.PeerCertificateChain()
		require.NoError(t, err)
		require.Len(t, chain, 2)
		requireSameCert(t, pki.Leaf, chain[0])
		requireSameCert(t, pki.CA, chain[1])
		leaf, err := ours.PeerCertificate()
		require.NoError(t, err)
		requireSameCert(t, pki.Leaf, leaf)
		cipher, err := ours.CurrentCipher()
		require.NoError(t, err)
		require.Equal(t, ours.ConnectionState().CipherSuite, cipher)
		if version == tls.VersionTLS13 {
			// Both name TLS 1.3 suites as RFC 8446 does.
			require.Equal(t, tls.CipherSuiteName(p.Peer.ConnectionState().CipherSuite), cipher)
		}
		require.Equal(t, openssl.Ok, ours.VerifyResult())
		require.False(t, ours.SessionReused())
		// A mismatch is spacemonkeygo's ValidationError and crypto/tls's
		// HostnameError at once.
		require.NoError(t, ours.VerifyHostname("localhost"))
		err = ours.VerifyHostname("wrong.example")
		require.ErrorIs(t, err, openssl.ValidationError)
		var hostnameErr x509.HostnameError
		require.ErrorAs(t, err, &hostnameErr)
		require.EqualError(t, err, "openssl: verify hostname: certificate does not match: "+hostnameErr.Error())

		// After Close the chain is gone, the handshake's results stay.
		require.NoError(t, ours.Close())
		_, err = ours.PeerCertificate()
		require.ErrorIs(t, err, net.ErrClosed)
		got, err := ours.CurrentCipher()
		require.NoError(t, err)
		require.Equal(t, cipher, got)
	})
}

func requireSameCert(t testing.TB, want *x509.Certificate, got *openssl.Certificate) {
	t.Helper()
	der, err := got.MarshalDER()
	require.NoError(t, err)
	require.Equal(t, want.Raw, der)
}

func TestConnStateCallsAsServer(t *testing.T) {
	client, err := pki.ClientBundle("client.example")
	require.NoError(t, err)

	// No client certificate.
	p, ourErr, peerErr := handshakeGo(t, tlstest.WeServer, tlstest.ServerCtx(t), nil)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	_, err = p.Ours.PeerCertificateChain()
	require.ErrorIs(t, err, openssl.ErrNoPeerCertificate)

	// Mutual TLS: the chain starts with the client's certificate here too.
	sslCtx := tlstest.ServerCtx(t)
	files, err := tlstest.WriteFiles(pki, t.TempDir())
	require.NoError(t, err)
	require.NoError(t, sslCtx.LoadVerifyLocations(files.CA, ""))
	sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	cfg := tlstest.PeerConfig(pki, 0, tlstest.WeServer)
	cfg.Certificates = []tls.Certificate{client.TLSCert}
	p, ourErr, peerErr = handshakeGo(t, tlstest.WeServer, sslCtx, cfg)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	chain, err := p.Ours.PeerCertificateChain()
	require.NoError(t, err)
	require.Len(t, chain, 2)
	requireSameCert(t, client.Leaf, chain[0])
	requireSameCert(t, pki.CA, chain[1])
	name, err := chain[0].GetSubjectName()
	require.NoError(t, err)
	cn, ok := name.GetEntry(openssl.NID_commonName)
	require.True(t, ok)
	require.Equal(t, "client.example", cn)
	require.Equal(t, openssl.Ok, p.Ours.VerifyResult())
}

// With VerifyNone a client goes on after a failed verification, and
// VerifyResult says why.
func TestVerifyResultUntrusted(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	p, ourErr, peerErr := handshakeGo(t, tlstest.WeClient, sslCtx, nil)
	require.NoError(t, ourErr)
	require.NoError(t, peerErr)
	require.Equal(t, openssl.SelfSignedCertInChain, p.Ours.VerifyResult())
	require.Equal(t, "self-signed certificate in certificate chain", p.Ours.VerifyResult().String())

	// With VerifyPeer the handshake fails, and VerifyResult still says why
	// until Close.
	sslCtx, err = openssl.NewCtx()
	require.NoError(t, err)
	sslCtx.SetVerifyMode(openssl.VerifyPeer)
	p, ourErr, _ = handshakeGo(t, tlstest.WeClient, sslCtx, nil)
	require.ErrorContains(t, ourErr, "certificate verify failed")
	require.Equal(t, openssl.SelfSignedCertInChain, p.Ours.VerifyResult())
	p.Ours.Close()
	require.Equal(t, openssl.Ok, p.Ours.VerifyResult())
}
