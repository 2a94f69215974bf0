package openssl_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// TestVersion: the package and the openssl peers run the OpenSSL this run
// is for (peer.ExpectOpenSSLEnv), so that a make test-openssl-3.5 that
// silently loaded the system's libssl fails.
func TestVersion(t *testing.T) {
	require.NoError(t, peer.CheckOpenSSLVersions(t.Context(), openssl.Version()))
}
