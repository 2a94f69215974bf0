package openssl_test

import (
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// opensslMinor returns the minor version of the OpenSSL 3 in use: 5 for
// "OpenSSL 3.5.7 ...".
func opensslMinor(t *testing.T) int {
	t.Helper()
	var minor, patch int
	_, err := fmt.Sscanf(openssl.Version(), "OpenSSL 3.%d.%d", &minor, &patch)
	require.NoError(t, err, openssl.Version())
	return minor
}

// TestDefaultGroups: the key exchange our default Ctx agrees on with
// crypto/tls's defaults, both ways. From OpenSSL 3.5 on, TLS 1.3 uses the
// post-quantum hybrid X25519MLKEM768, first in the default groups of both
// (Go offers it since 1.24); OpenSSL 3.0 to 3.4 know no ML-KEM, and the two
// agree on X25519. TLS 1.2 has no hybrid groups: X25519 on every version.
func TestDefaultGroups(t *testing.T) {
	if openssl.FIPS() {
		t.Skip("FIPS mode: TestFIPSHandshakes checks the groups")
	}
	want13 := tls.X25519
	if opensslMinor(t) >= 5 {
		want13 = tls.X25519MLKEM768
	}
	want := map[uint16]tls.CurveID{tls.VersionTLS12: tls.X25519, tls.VersionTLS13: want13}
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		require.Equal(t, want[tc.Version], p.Peer.ConnectionState().CurveID)
	})

	// X25519MLKEM768 by name: OpenSSL 3.5 accepts it, 3.0 does not know it.
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	err = sslCtx.SetGroups("X25519MLKEM768")
	if want13 == tls.X25519MLKEM768 {
		require.NoError(t, err)
	} else {
		require.ErrorContains(t, err, `unknown or unavailable group in "X25519MLKEM768"`)
	}
}
