package openssl_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// verifyCall is one call of a verify callback.
type verifyCall struct {
	ok      bool
	depth   int
	subject string
	err     error
}

// recordingCallback returns a verify callback that records its calls and
// answers answer (nil: OpenSSL's verdict).
func recordingCallback(answer *bool) (openssl.VerifyCallback, func() []verifyCall) {
	var mu sync.Mutex
	var calls []verifyCall
	cb := func(ok bool, store *openssl.CertificateStoreCtx) bool {
		call := verifyCall{ok: ok, depth: store.Depth(), err: store.Err()}
		if cert := store.GetCurrentCert(); cert != nil {
			if x, err := cert.X509(); err == nil {
				call.subject = x.Subject.CommonName
			}
		}
		mu.Lock()
		calls = append(calls, call)
		mu.Unlock()
		if answer != nil {
			return *answer
		}
		return ok
	}
	return cb, func() []verifyCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]verifyCall(nil), calls...)
	}
}

// TestVerifyCallbackClient: the callback sees the chain root first, with
// OpenSSL's verdict, against crypto/tls and s_server.
func TestVerifyCallbackClient(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		t.Run("crypto-tls", func(t *testing.T) {
			sslCtx := tlstest.ClientCtx(t)
			cb, calls := recordingCallback(nil)
			require.Nil(t, sslCtx.GetVerifyCallback())
			sslCtx.SetVerifyCallback(cb)
			require.NotNil(t, sslCtx.GetVerifyCallback())
			require.Equal(t, openssl.VerifyPeer, sslCtx.VerifyMode(), "SetVerifyCallback keeps the mode")
			tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
			require.Equal(t, []verifyCall{
				{ok: true, depth: 1, subject: pki.CA.Subject.CommonName},
				{ok: true, depth: 0, subject: pki.Leaf.Subject.CommonName},
			}, calls())
		})
		t.Run("s_server", func(t *testing.T) {
			_, cert, key := pemFiles(t, pki)
			s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), cert, key, "-www", versionFlag(version)))
			sslCtx := ctxOf(t, clientPKI, version)
			cb, calls := recordingCallback(nil)
			sslCtx.SetVerify(openssl.VerifyPeer, cb)
			c, err := openssl.Dial("tcp", s.Addr(), sslCtx, 0)
			require.NoError(t, err)
			get(t, c)
			c.Close()
			require.Len(t, calls(), 2)
			require.Equal(t, 0, calls()[1].depth)
		})
	})
}

// TestVerifyCallbackOverrides: the callback's answer replaces OpenSSL's,
// both ways.
func TestVerifyCallbackOverrides(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		t.Run("accepts an untrusted chain", func(t *testing.T) {
			sslCtx, err := openssl.NewCtx() // trusts nothing
			require.NoError(t, err)
			accept := true
			cb, calls := recordingCallback(&accept)
			sslCtx.SetVerify(openssl.VerifyPeer, cb)
			p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
			require.False(t, calls()[0].ok)
			require.Error(t, calls()[0].err)
			require.NotEqual(t, openssl.VerifyOK, p.Ours.ConnectionState().VerifyResult)
			require.Nil(t, p.Ours.ConnectionState().VerifiedChains, "the callback's acceptance is no verification")
		})
		t.Run("rejects a trusted chain", func(t *testing.T) {
			sslCtx := tlstest.ClientCtx(t)
			reject := false
			cb, _ := recordingCallback(&reject)
			sslCtx.SetVerifyCallback(cb)
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
			ourErr, peerErr := p.Handshake()
			e := handshakeError(t, ourErr)
			require.Equal(t, "application verification failure", e.Verify.String())
			require.Error(t, peerErr)
		})
	})
}

// handshakeError returns the *openssl.Error of a failed handshake.
func handshakeError(t testing.TB, err error) *openssl.Error {
	t.Helper()
	e := asError(t, err)
	require.Equal(t, "handshake", e.Op)
	return e
}

// TestVerifyCallbackServer: a server's callback sees the client's chain,
// from crypto/tls and s_client.
func TestVerifyCallbackServer(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		newServerCtx := func() (*openssl.Ctx, func() []verifyCall) {
			sslCtx := ctxOf(t, pki, version)
			cb, calls := recordingCallback(nil)
			sslCtx.SetVerify(openssl.VerifyPeer|openssl.VerifyFailIfNoPeerCert, cb)
			return sslCtx, calls
		}
		t.Run("crypto-tls", func(t *testing.T) {
			sslCtx, calls := newServerCtx()
			cfg := tlstest.PeerConfig(pki, version, tlstest.WeServer)
			cfg.Certificates = []tls.Certificate{clientPKI.TLSCert}
			tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeServer}, Ctx: sslCtx, Config: cfg})
			require.Equal(t, "client", calls()[len(calls())-1].subject)
		})
		t.Run("s_client", func(t *testing.T) {
			sslCtx, calls := newServerCtx()
			addr, results := startOurServer(t, sslCtx)
			ca, cert, key := pemFiles(t, clientPKI)
			c := tlstest.Started(t)(peer.OpenSSLClient(t.Context(), addr, ca, "-cert", cert, "-key", key, versionFlag(version), "-ign_eof"))
			require.NoError(t, c.WaitFor(peer.ClientVerifyOK, tlstest.Timeout))
			require.NoError(t, c.Send(request))
			require.NotZero(t, nextServed(t, results).peerCerts)
			require.Equal(t, "client", calls()[len(calls())-1].subject)
		})
	})
}

// TestVerifyCallbackPanics: a panicking callback fails the handshake with
// an error saying so, on time, in every verify mode, and the process goes
// on.
func TestVerifyCallbackPanics(t *testing.T) {
	for _, mode := range []openssl.VerifyMode{openssl.VerifyPeer, openssl.VerifyNone} {
		t.Run(map[openssl.VerifyMode]string{openssl.VerifyPeer: "peer", openssl.VerifyNone: "none"}[mode], func(t *testing.T) {
			sslCtx := tlstest.ClientCtx(t)
			sslCtx.SetVerify(mode, func(bool, *openssl.CertificateStoreCtx) bool { panic("boom") })
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
			ourErr, _ := p.Handshake()
			e := handshakeError(t, ourErr)
			require.ErrorContains(t, e, "verify callback panicked: boom")
			_, err := p.Ours.Write([]byte("x"))
			require.ErrorIs(t, err, ourErr, "the failure is permanent")
		})
	}
}

// TestVerifyPeerCertificate: the hook gets the parsed chain after
// OpenSSL's verification; its error fails the handshake and is wrapped by
// the handshake's error, also under VerifyNone and on a server.
func TestVerifyPeerCertificate(t *testing.T) {
	errRejected := errors.New("not this one")
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		t.Run("accepts", func(t *testing.T) {
			sslCtx := tlstest.ClientCtx(t)
			var got []*x509.Certificate
			sslCtx.SetVerifyPeerCertificate(func(chain []*x509.Certificate) error {
				got = chain
				return nil
			})
			tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
			require.NotEmpty(t, got)
			require.True(t, got[0].Equal(pki.Leaf), "leaf first")
			require.True(t, got[len(got)-1].Equal(pki.CA), "the chain OpenSSL built ends at the CA")
		})
		for _, tc := range []struct {
			name string
			role tlstest.Role
			ctx  func(t testing.TB) *openssl.Ctx
			peer func() *tls.Config
			hook func([]*x509.Certificate) error
			want string
		}{
			{"client rejects", tlstest.WeClient, tlstest.ClientCtx, nil,
				func([]*x509.Certificate) error { return errRejected }, "not this one"},
			{"client under VerifyNone rejects", tlstest.WeClient, func(t testing.TB) *openssl.Ctx {
				c, err := openssl.NewCtx()
				require.NoError(t, err)
				return c
			}, nil, func([]*x509.Certificate) error { return errRejected }, "not this one"},
			{"client hook panics", tlstest.WeClient, tlstest.ClientCtx, nil,
				func([]*x509.Certificate) error { panic("boom") }, "verify peer certificate callback panicked: boom"},
			{"server rejects", tlstest.WeServer, func(t testing.TB) *openssl.Ctx {
				c := ctxOf(t, pki, 0)
				c.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
				return c
			}, func() *tls.Config {
				cfg := tlstest.PeerConfig(pki, version, tlstest.WeServer)
				cfg.Certificates = []tls.Certificate{clientPKI.TLSCert}
				return cfg
			}, func([]*x509.Certificate) error { return errRejected }, "not this one"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sslCtx := tc.ctx(t)
				sslCtx.SetVerifyPeerCertificate(tc.hook)
				spec := tlstest.Spec{Case: tlstest.Case{Version: version, Role: tc.role}, Ctx: sslCtx}
				if tc.peer != nil {
					spec.Config = tc.peer()
				}
				p := tlstest.NewPair(t, spec)
				ourErr, peerErr := p.Handshake()
				e := handshakeError(t, ourErr)
				require.ErrorContains(t, e, tc.want)
				if tc.want == "not this one" {
					require.ErrorIs(t, ourErr, errRejected)
				}
				require.Equal(t, "application verification failure", e.Verify.String())
				// A TLS 1.3 client has finished its handshake when our
				// server rejects it; it sees the alert on its first read.
				if peerErr == nil {
					_, peerErr = p.Peer.Read(make([]byte, 1))
				}
				require.Error(t, peerErr)
			})
		}
	})
}

// TestTrustFromMemory: AddCertificate makes a Ctx trust a CA without any
// file; before it, the same handshake fails verification.
func TestTrustFromMemory(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		sslCtx, err := openssl.NewCtx()
		require.NoError(t, err)
		sslCtx.SetVerifyMode(openssl.VerifyPeer)
		p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
		ourErr, _ := p.Handshake()
		require.NotEqual(t, openssl.VerifyOK, handshakeError(t, ourErr).Verify)

		ca, err := openssl.LoadCertificateFromPEM(pki.CAPEM)
		require.NoError(t, err)
		require.NoError(t, sslCtx.GetCertificateStore().AddCertificate(ca))
		p = tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeClient}, Ctx: sslCtx})
		require.Equal(t, openssl.VerifyOK, p.Ours.ConnectionState().VerifyResult)
		require.Error(t, sslCtx.GetCertificateStore().AddCertificate(nil))
	})
}

// TestVerifyDepth: the depth counts the certificates between the leaf and
// the trust anchor, so 0 still accepts a leaf the CA signed directly.
func TestVerifyDepth(t *testing.T) {
	sslCtx := tlstest.ClientCtx(t)
	require.Equal(t, -1, sslCtx.GetVerifyDepth(), "not set")
	sslCtx.SetVerifyDepth(0)
	require.Equal(t, 0, sslCtx.GetVerifyDepth())
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
	require.Equal(t, openssl.VerifyOK, p.Ours.ConnectionState().VerifyResult)
}

// TestCallbacksDuringRenegotiation: a TLS 1.2 renegotiation asked for by
// s_server runs inside our Read, and with it the verify callback and the
// key log: the SSL operations must allow callbacks (no nocallback).
func TestCallbacksDuringRenegotiation(t *testing.T) {
	sslCtx := tlstest.ClientCtx(t)
	cb, calls := recordingCallback(nil)
	sslCtx.SetVerifyCallback(cb)
	var keys syncBuffer
	sslCtx.SetKeyLogWriter(&keys)
	p := tlstest.Connect(t, tlstest.Spec{
		Case: tlstest.Case{Version: tls.VersionTLS12, Role: tlstest.WeClient},
		Peer: tlstest.OpenSSLTool,
		Ctx:  sslCtx,
		// No session to resume: the renegotiation is a full handshake,
		// with the server's certificate.
		PeerArgs: []string{"-no_ticket", "-no_cache"},
	})
	require.Len(t, calls(), 2)
	require.Len(t, keys.lines(), 1)

	const serverCmdRenegotiate = "r\n" // s_server sends a HelloRequest
	require.NoError(t, p.Proc.Send(serverCmdRenegotiate))
	require.NoError(t, p.Proc.WaitFor(peer.ServerKeyUpdated, tlstest.Timeout))
	// Our Read meets the HelloRequest and sends a ClientHello; the rest
	// of the handshake runs inside the next Write, which must finish it
	// before it can send.
	for _, line := range []string{"during the renegotiation\n", "after it\n"} {
		require.NoError(t, p.Proc.Send(line))
		buf := make([]byte, len(line))
		_, err := io.ReadFull(p.Ours, buf)
		require.NoError(t, err)
		require.Equal(t, line, string(buf))
		_, err = io.WriteString(p.Ours, "got "+line)
		require.NoError(t, err)
		require.NoError(t, p.Proc.WaitFor("got "+line, tlstest.Timeout))
	}
	require.Len(t, calls(), 4, "the callback ran again inside Read or Write")
	require.Len(t, keys.lines(), 2, "a second CLIENT_RANDOM line")
}
