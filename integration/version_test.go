package integration_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// TestVersion: the matrix's peers and our side run the OpenSSL this run is
// for (peer.ExpectOpenSSLEnv).
func TestVersion(t *testing.T) {
	require.NoError(t, peer.CheckOpenSSLVersions(t.Context(), openssl.Version()))
}
