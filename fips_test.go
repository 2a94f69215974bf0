package openssl_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// Environment variables of FIPS test runs; make test-openssl-3.5 sets them.
const (
	// expectFIPSEnv=1 says the OpenSSL under test has a FIPS provider
	// that SetFIPS(true) can load (OPENSSL_CONF and OPENSSL_MODULES point
	// at it). Without it the tests expect none, as on Debian's OpenSSL.
	expectFIPSEnv = "CLOSENOTIFY_EXPECT_FIPS"
	// fipsEnv=1 makes TestMain turn FIPS mode on before any test runs:
	// the tests then show that the package behaves the same under the
	// FIPS provider.
	fipsEnv = "CLOSENOTIFY_FIPS"
)

// What FIPS mode negotiates on OpenSSL 3.5 with default settings:
//   - with crypto/tls: AES-128-GCM, which crypto/tls prefers among the
//     approved ciphers (ChaCha20-Poly1305 is not approved);
//   - with s_server: AES-256-GCM, first in OpenSSL's default order;
//   - key exchange: P-256 for TLS 1.2 (X25519 is not approved) and the
//     hybrid X25519MLKEM768 for TLS 1.3 (approved for its ML-KEM part).
var (
	fipsGoAEAD = map[uint16]string{
		tls.VersionTLS12: "ECDHE-ECDSA-AES128-GCM-SHA256",
		tls.VersionTLS13: "TLS_AES_128_GCM_SHA256",
	}
	fipsOpenSSLAEAD = map[uint16]string{
		tls.VersionTLS12: "ECDHE-ECDSA-AES256-GCM-SHA384",
		tls.VersionTLS13: "TLS_AES_256_GCM_SHA384",
	}
	fipsGroup = map[uint16]tls.CurveID{
		tls.VersionTLS12: tls.CurveP256,
		tls.VersionTLS13: tls.X25519MLKEM768,
	}
)

// setFIPSFromEnv turns FIPS mode on when fipsEnv asks for it; TestMain
// calls it.
func setFIPSFromEnv() error {
	if os.Getenv(fipsEnv) != "1" {
		return nil
	}
	if err := openssl.SetFIPS(true); err != nil {
		return fmt.Errorf("%s=1: %w", fipsEnv, err)
	}
	fmt.Println("FIPS mode: on")
	return nil
}

// withFIPS runs t in FIPS mode, turning it on (and off again at cleanup)
// unless TestMain did; it skips t when no FIPS provider is expected.
func withFIPS(t *testing.T) {
	t.Helper()
	if os.Getenv(expectFIPSEnv) != "1" {
		t.Skipf("no FIPS provider expected (%s=1 says there is one; make test-openssl-3.5 sets it)", expectFIPSEnv)
	}
	if openssl.FIPS() {
		return
	}
	require.NoError(t, openssl.SetFIPS(true))
	require.True(t, openssl.FIPS())
	t.Cleanup(func() {
		if err := openssl.SetFIPS(false); err != nil {
			t.Error(err)
		}
	})
}

// TestSetFIPSUnavailable: without a FIPS provider (Debian's OpenSSL 3.0),
// SetFIPS(true) says so, names what OpenSSL could not load, and changes
// nothing.
func TestSetFIPSUnavailable(t *testing.T) {
	if os.Getenv(expectFIPSEnv) == "1" {
		t.Skipf("%s=1: this OpenSSL has a FIPS provider", expectFIPSEnv)
	}
	require.False(t, openssl.FIPS())
	for range 2 { // the second call reports the first one's failure again
		err := openssl.SetFIPS(true)
		require.ErrorIs(t, err, openssl.ErrFIPSUnavailable)
		e := asError(t, err)
		require.Equal(t, "set FIPS", e.Op)
		require.NotEmpty(t, e.Queue, "OpenSSL's reasons")
		require.True(t, strings.HasPrefix(err.Error(), "openssl: set FIPS: FIPS provider not available: "), err.Error())
		require.Contains(t, err.Error(), "fips.so", "the module OpenSSL could not load")
		require.False(t, openssl.FIPS())
	}
	require.NoError(t, openssl.SetFIPS(false))

	// Nothing changed: the default provider's ChaCha20 still works.
	p := tlstest.Connect(t, chachaOnly(tlstest.WeClient))
	require.Equal(t, "ECDHE-ECDSA-CHACHA20-POLY1305", p.Ours.ConnectionState().CipherSuite)
}

// chachaOnly is a pair with a crypto/tls peer for TLS 1.2 that offers or
// accepts ChaCha20-Poly1305 only (crypto/tls cannot restrict its TLS 1.3
// suites).
func chachaOnly(r tlstest.Role) tlstest.Spec {
	cfg := tlstest.PeerConfig(pki, tls.VersionTLS12, r)
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	return tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS12, Role: r}, Config: cfg}
}

// TestSetFIPS: turning FIPS mode off and on again, and what it changes for
// Ctxs made afterwards.
func TestSetFIPS(t *testing.T) {
	withFIPS(t)
	require.NoError(t, openssl.SetFIPS(true), "already on: nothing to do")
	require.True(t, openssl.FIPS())
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	require.ErrorContains(t, sslCtx.SetGroups("X25519"), `unknown or unavailable group in "X25519"`, "X25519 is not approved")
	require.ErrorContains(t, sslCtx.SetCipherList("ECDHE-ECDSA-CHACHA20-POLY1305"), "no cipher match")

	require.NoError(t, openssl.SetFIPS(false))
	require.False(t, openssl.FIPS())
	require.NoError(t, openssl.SetFIPS(false), "already off: nothing to do")
	p := tlstest.Connect(t, chachaOnly(tlstest.WeClient))
	require.Equal(t, "ECDHE-ECDSA-CHACHA20-POLY1305", p.Ours.ConnectionState().CipherSuite)

	require.NoError(t, openssl.SetFIPS(true))
	require.True(t, openssl.FIPS())
	p = tlstest.NewPair(t, chachaOnly(tlstest.WeClient))
	ourErr, peerErr := p.Handshake()
	require.Error(t, peerErr)
	requireReasonCode(t, ourErr, "handshake", reasonAlertHandshakeFailure)
}

// TestFIPSHandshakes: TLS 1.2 and 1.3 handshakes in FIPS mode with
// crypto/tls and with s_server and s_client, on approved algorithms, and
// data both ways.
func TestFIPSHandshakes(t *testing.T) {
	withFIPS(t)
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		require.Equal(t, fipsGoAEAD[tc.Version], p.Ours.ConnectionState().CipherSuite)
		require.Equal(t, fipsGroup[tc.Version], p.Peer.ConnectionState().CurveID)
		p.SyncPeer(t)

		p = tlstest.Connect(t, tlstest.Spec{Case: tc, Peer: tlstest.OpenSSLTool})
		require.Equal(t, fipsOpenSSLAEAD[tc.Version], p.Ours.ConnectionState().CipherSuite)
		_, err := p.Ours.Write([]byte("approved\n"))
		require.NoError(t, err)
		require.NoError(t, p.Proc.WaitFor("approved\n", tlstest.Timeout))
	})
}

// TestFIPSRefusesChaCha20: a peer that offers only ChaCha20-Poly1305 is
// refused in both roles, and the error says FIPS mode is why.
func TestFIPSRefusesChaCha20(t *testing.T) {
	withFIPS(t)
	const fipsHint = "(FIPS mode: only FIPS-approved algorithms are offered and accepted)"
	for _, r := range tlstest.Roles {
		t.Run("TLS 1.2/crypto/tls/"+r.String(), func(t *testing.T) {
			p := tlstest.NewPair(t, chachaOnly(r))
			ourErr, peerErr := p.Handshake()
			require.Error(t, peerErr)
			if r == tlstest.WeClient {
				require.ErrorContains(t, peerErr, "no cipher suite supported by both client and server")
				requireReasonCode(t, ourErr, "handshake", reasonAlertHandshakeFailure)
			} else {
				requireReason(t, ourErr, "handshake", "no shared cipher")
			}
			require.ErrorContains(t, ourErr, fipsHint)
		})
		t.Run("TLS 1.3/openssl/"+r.String(), func(t *testing.T) {
			p := tlstest.NewPair(t, tlstest.Spec{
				Case:     tlstest.Case{Version: tls.VersionTLS13, Role: r},
				Peer:     tlstest.OpenSSLTool,
				PeerArgs: []string{"-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"},
			})
			ourErr, _ := p.Handshake()
			if r == tlstest.WeClient {
				requireReasonCode(t, ourErr, "handshake", reasonAlertHandshakeFailure)
			} else {
				requireReason(t, ourErr, "handshake", "no shared cipher")
			}
			require.ErrorContains(t, ourErr, fipsHint)
		})
	}
}
