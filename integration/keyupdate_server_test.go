package integration_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestServerKeyUpdateAfterOurCloseNotify (scenario 13, we are the server):
// s_client sends a TLS 1.3 KeyUpdate, with and without a request for ours,
// which waits unread in our socket while we send close_notify. OpenSSL
// still processes it after our alert: Shutdown completes, s_client reads
// our close_notify, answers and exits cleanly.
//
// It runs on both of our paths: on the generic path, the KeyUpdate is read
// from the wrapper and our answer to a request goes out through its Write.
func TestServerKeyUpdateAfterOurCloseNotify(t *testing.T) {
	v := versions[1]
	require.Equal(t, "TLS1.3", v.name)
	for _, cmd := range []string{peer.ClientCmdKeyUpdateRequest, peer.ClientCmdKeyUpdate} {
		t.Run(strings.TrimSpace(cmd), func(t *testing.T) {
			tlstest.EachPath(t, func(t *testing.T, path tlstest.Path) {
				c, cl := sClientOn(t, v, path)
				mark := cl.Mark()
				require.NoError(t, cl.Send(cmd))
				require.NoError(t, cl.WaitForAfter(mark, peer.ClientKeyUpdate, wait))

				requireAnsweredBy(t, c, "Shutdown", cl, mark, peer.ClientClosed)
			}, tlstest.Path.OnSocket)
		})
	}
}
