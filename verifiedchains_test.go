package openssl_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// requireVerifiedChain checks that st holds exactly one verified chain,
// want (compared by DER), whose leaf is the pointer of PeerCertificates[0],
// as crypto/tls shares it, and that the crypto/tls form carries the same.
func requireVerifiedChain(t testing.TB, st openssl.ConnectionState, want ...*x509.Certificate) {
	t.Helper()
	requireChains(t, st.VerifiedChains, want...)
	require.Same(t, st.PeerCertificates[0], st.VerifiedChains[0][0], "the leaf is PeerCertificates[0]")
	require.Equal(t, st.VerifiedChains, st.TLSConnectionState().VerifiedChains)
}

// requireChains checks that chains is exactly one chain, want, compared by
// DER.
func requireChains(t testing.TB, chains [][]*x509.Certificate, want ...*x509.Certificate) {
	t.Helper()
	require.Len(t, chains, 1, "one verified chain")
	require.Len(t, chains[0], len(want))
	for i := range want {
		require.Equal(t, want[i].Raw, chains[0][i].Raw, "certificate %d of the verified chain", i)
	}
}

// TestVerifiedChains: VerifiedChains is the chain OpenSSL verified, leaf
// then CA (testcert has no intermediates), on a client verifying a
// crypto/tls server and on a mutual-TLS server verifying a crypto/tls
// client; nil where nothing was verified.
func TestVerifiedChains(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	noVerifyClient := func(t *testing.T) *openssl.Ctx {
		// It trusts the CA, so OpenSSL's check succeeds all the same.
		sslCtx := tlstest.ClientCtx(t)
		sslCtx.SetVerifyMode(openssl.VerifyNone)
		return sslCtx
	}
	optionalCertServer := func(t *testing.T) *openssl.Ctx {
		sslCtx := mtlsServerCtx(t)
		sslCtx.SetVerifyMode(openssl.VerifyPeer)
		return sslCtx
	}
	clientWithCert := func(version uint16) *tls.Config {
		cfg := tlstest.PeerConfig(pki, version, tlstest.WeServer)
		cfg.Certificates = []tls.Certificate{client.TLSCert}
		return cfg
	}
	tests := []struct {
		name   string
		role   tlstest.Role
		ctx    func(t *testing.T) *openssl.Ctx
		config func(version uint16) *tls.Config // nil: tlstest.PeerConfig
		want   []*x509.Certificate              // nil: no verified chain
	}{
		{"client verifies the server", tlstest.WeClient, func(t *testing.T) *openssl.Ctx { return tlstest.ClientCtx(t) }, nil, []*x509.Certificate{pki.Leaf, pki.CA}},
		{"client with VerifyNone", tlstest.WeClient, noVerifyClient, nil, nil},
		{"mutual TLS server verifies the client", tlstest.WeServer, mtlsServerCtx, clientWithCert, []*x509.Certificate{client.Leaf, pki.CA}},
		{"server not asking for a certificate", tlstest.WeServer, func(t *testing.T) *openssl.Ctx { return tlstest.ServerCtx(t) }, clientWithCert, nil},
		{"client sent no certificate", tlstest.WeServer, optionalCertServer, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlstest.EachVersion(t, func(t *testing.T, version uint16) {
				spec := tlstest.Spec{Case: tlstest.Case{Version: version, Role: tt.role}, Ctx: tt.ctx(t)}
				if tt.config != nil {
					spec.Config = tt.config(version)
				}
				p := tlstest.Connect(t, spec)
				st := p.Ours.ConnectionState()
				require.Equal(t, openssl.VerifyOK, st.VerifyResult)
				if tt.want == nil {
					require.Nil(t, st.VerifiedChains)
					require.Nil(t, st.TLSConnectionState().VerifiedChains)
					return
				}
				requireVerifiedChain(t, st, tt.want...)
				require.Equal(t, st.VerifiedChains, p.Ours.ConnectionState().VerifiedChains, "a second call")
			})
		})
	}
}

// TestVerifiedChainsResumed: a resumed session has no verified chain in
// OpenSSL, so VerifiedChains is nil there (crypto/tls would return the
// chains stored in the session), on our client and on our mutual-TLS
// server alike; the full handshake before has it.
func TestVerifiedChainsResumed(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		t.Run("we-client", func(t *testing.T) {
			addr, results := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: version, MaxVersion: version})
			cached := withSessionCache(t, clientCtxFor(t, version), 8)
			for i, resumed := range []bool{false, true} {
				c, err := openssl.Dial("tcp", addr, cached, 0)
				require.NoError(t, err)
				get(t, c) // TLS 1.3 tickets arrive on the way
				st := c.ConnectionState()
				require.NoError(t, c.Close())
				require.Equal(t, resumed, nextServed(t, results).resumed, "connection %d", i)
				require.Equal(t, resumed, st.DidResume, "connection %d", i)
				require.Equal(t, openssl.VerifyOK, st.VerifyResult)
				if resumed {
					require.Nil(t, st.VerifiedChains)
				} else {
					requireVerifiedChain(t, st, pki.Leaf, pki.CA)
				}
			}
		})
		t.Run("we-server", func(t *testing.T) {
			sslCtx := ctxOf(t, pki, version)
			sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
			addr, results := startOurServer(t, sslCtx)
			cfg := &tls.Config{
				RootCAs: pki.Pool, ServerName: "localhost",
				Certificates:       []tls.Certificate{clientPKI.TLSCert},
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
				MinVersion:         version, MaxVersion: version,
			}
			for i, resumed := range []bool{false, true} {
				c, err := tls.Dial("tcp", addr, cfg)
				require.NoError(t, err)
				require.NoError(t, c.SetDeadline(time.Now().Add(tlstest.Timeout)))
				get(t, c)
				require.NoError(t, c.Close())
				s := nextServed(t, results)
				require.Equal(t, resumed, s.resumed, "connection %d", i)
				if resumed {
					require.Nil(t, s.verifiedChains)
				} else {
					requireChains(t, s.verifiedChains, clientPKI.Leaf, pki.CA)
				}
			}
		})
	})
}
