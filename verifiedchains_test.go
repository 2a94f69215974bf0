package openssl_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// interPKI is a read-only test PKI whose leaves an intermediate CA signed,
// and interClientPKI a client certificate of it.
var interPKI, interClientPKI = func() (*testcert.Bundle, *testcert.Bundle) {
	b, err := testcert.NewWithIntermediate()
	if err != nil {
		panic(err)
	}
	client, err := b.ClientBundle("client.test")
	if err != nil {
		panic(err)
	}
	return b, client
}()

// leafOnly is b's TLSCert without the leaf's issuer: a peer that does not
// send its intermediate.
func leafOnly(b *testcert.Bundle) tls.Certificate {
	cert := b.TLSCert
	cert.Certificate = cert.Certificate[:1]
	return cert
}

// requireVerifiedChain checks that st holds exactly one verified chain,
// want (compared by DER), whose certificates before the trust anchor are
// the pointers of PeerCertificates, as crypto/tls shares them (the peer
// sent them in order, leaf first), and that the crypto/tls form carries
// the same.
func requireVerifiedChain(t testing.TB, st openssl.ConnectionState, want ...*x509.Certificate) {
	t.Helper()
	requireChains(t, st.VerifiedChains, want...)
	chain := st.VerifiedChains[0]
	require.GreaterOrEqual(t, len(st.PeerCertificates), len(chain)-1)
	for i := range chain[:len(chain)-1] {
		require.Same(t, st.PeerCertificates[i], chain[i], "certificate %d of the verified chain is PeerCertificates[%d]", i, i)
	}
	require.Equal(t, st.VerifiedChains, st.TLSConnectionState().VerifiedChains)
}

// requireChains checks that chains is exactly one chain, want, compared by
// DER.
func requireChains(t testing.TB, chains [][]*x509.Certificate, want ...*x509.Certificate) {
	t.Helper()
	require.Len(t, chains, 1, "one verified chain")
	requireCerts(t, chains[0], want...)
}

// requireCerts checks that certs is want, compared by DER.
func requireCerts(t testing.TB, certs []*x509.Certificate, want ...*x509.Certificate) {
	t.Helper()
	require.Len(t, certs, len(want))
	for i := range want {
		require.Equal(t, want[i].Raw, certs[i].Raw, "certificate %d", i)
	}
}

// interServerCtx is a server Ctx of interPKI, sending its intermediate,
// that requires a client certificate and trusts interPKI's CA only.
func interServerCtx(t *testing.T) *openssl.Ctx {
	sslCtx := ctxOf(t, interPKI, 0)
	sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	return sslCtx
}

// TestVerifiedChains: VerifiedChains is the chain OpenSSL verified, leaf
// then CA, or leaf, intermediate and CA when the peer sends an
// intermediate, on a client verifying a crypto/tls server and on a
// mutual-TLS server verifying a crypto/tls client; nil where nothing was
// verified. PeerCertificates is what the peer sent.
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
	interClient := func(t *testing.T) *openssl.Ctx { return tlstest.TrustingCtx(t, interPKI) }
	interServer := func(version uint16) *tls.Config { return tlstest.PeerConfig(interPKI, version, tlstest.WeClient) }
	interClientWithCert := func(version uint16) *tls.Config {
		cfg := tlstest.PeerConfig(interPKI, version, tlstest.WeServer)
		cfg.Certificates = []tls.Certificate{interClientPKI.TLSCert}
		return cfg
	}
	tests := []struct {
		name   string
		role   tlstest.Role
		ctx    func(t *testing.T) *openssl.Ctx
		config func(version uint16) *tls.Config // nil: tlstest.PeerConfig
		peer   []*x509.Certificate              // PeerCertificates
		want   []*x509.Certificate              // nil: no verified chain
	}{
		{"client verifies the server", tlstest.WeClient, func(t *testing.T) *openssl.Ctx { return tlstest.ClientCtx(t) }, nil,
			[]*x509.Certificate{pki.Leaf, pki.CA}, []*x509.Certificate{pki.Leaf, pki.CA}},
		{"client with VerifyNone", tlstest.WeClient, noVerifyClient, nil, []*x509.Certificate{pki.Leaf, pki.CA}, nil},
		{"mutual TLS server verifies the client", tlstest.WeServer, mtlsServerCtx, clientWithCert,
			[]*x509.Certificate{client.Leaf, pki.CA}, []*x509.Certificate{client.Leaf, pki.CA}},
		{"server not asking for a certificate", tlstest.WeServer, func(t *testing.T) *openssl.Ctx { return tlstest.ServerCtx(t) }, clientWithCert, nil, nil},
		{"client sent no certificate", tlstest.WeServer, optionalCertServer, nil, nil, nil},
		{"client verifies a server sending an intermediate", tlstest.WeClient, interClient, interServer,
			[]*x509.Certificate{interPKI.Leaf, interPKI.Intermediate},
			[]*x509.Certificate{interPKI.Leaf, interPKI.Intermediate, interPKI.CA}},
		{"mutual TLS server verifies a client sending an intermediate", tlstest.WeServer, interServerCtx, interClientWithCert,
			[]*x509.Certificate{interClientPKI.Leaf, interPKI.Intermediate},
			[]*x509.Certificate{interClientPKI.Leaf, interPKI.Intermediate, interPKI.CA}},
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
				requireCerts(t, st.PeerCertificates, tt.peer...)
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

// TestVerifiedChainsMissingIntermediate: a peer that leaves out the
// intermediate its leaf needs fails our verification, as any certificate
// from an unknown issuer does: the handshake's *Error names OpenSSL's
// reason and carries the verify result.
func TestVerifiedChainsMissingIntermediate(t *testing.T) {
	tests := []struct {
		name   string
		role   tlstest.Role
		ctx    func(t *testing.T) *openssl.Ctx
		config func(version uint16) *tls.Config
	}{
		{"client verifying the server", tlstest.WeClient, func(t *testing.T) *openssl.Ctx { return tlstest.TrustingCtx(t, interPKI) }, func(version uint16) *tls.Config {
			cfg := tlstest.PeerConfig(interPKI, version, tlstest.WeClient)
			cfg.Certificates = []tls.Certificate{leafOnly(interPKI)}
			return cfg
		}},
		{"mutual TLS server verifying the client", tlstest.WeServer, interServerCtx, func(version uint16) *tls.Config {
			cfg := tlstest.PeerConfig(interPKI, version, tlstest.WeServer)
			cfg.Certificates = []tls.Certificate{leafOnly(interClientPKI)}
			return cfg
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlstest.EachVersion(t, func(t *testing.T, version uint16) {
				p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tt.role}, Ctx: tt.ctx(t), Config: tt.config(version)})
				ourErr, _ := p.Handshake()
				e := requireReason(t, ourErr, "handshake", "certificate verify failed")
				require.Equal(t, openssl.UnableToGetIssuerCertLocally, e.Verify)
				require.Equal(t, openssl.ConnectionState{}, p.Ours.ConnectionState())
			})
		})
	}
}

// TestServerSendsIntermediate: the intermediate added with
// AddChainCertificate follows our server's leaf, so that a crypto/tls
// client trusting the CA only verifies the chain of three; without it the
// client does not know the leaf's issuer.
func TestServerSendsIntermediate(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		t.Run("with the intermediate", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeServer}, Ctx: ctxOf(t, interPKI, 0), PKI: interPKI})
			pst := p.Peer.ConnectionState()
			requireCerts(t, pst.PeerCertificates, interPKI.Leaf, interPKI.Intermediate)
			requireChains(t, pst.VerifiedChains, interPKI.Leaf, interPKI.Intermediate, interPKI.CA)
		})
		t.Run("without it", func(t *testing.T) {
			// The same leaf and key, without the intermediate to add.
			noIntermediate := *interPKI
			noIntermediate.Intermediate, noIntermediate.IntermediatePEM = nil, nil
			sslCtx, err := tlstest.NewServerCtx(&noIntermediate)
			require.NoError(t, err)
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: tlstest.WeServer}, Ctx: sslCtx, PKI: interPKI})
			_, peerErr := p.Handshake()
			var unknown x509.UnknownAuthorityError
			require.True(t, errors.As(peerErr, &unknown), "crypto/tls client: %v, want an x509.UnknownAuthorityError", peerErr)
		})
	})
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
