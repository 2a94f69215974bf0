package integration_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// TestServerShutdownAnswered: we are the server of openssl s_client, which
// answers our close_notify with its own by itself: Shutdown returns nil,
// and s_client reports the close and exits cleanly.
func TestServerShutdownAnswered(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c, cl := sClient(t, v)
			requireAnsweredBy(t, c, "Shutdown", cl, 0, peer.ClientClosed)
			require.NotContains(t, cl.Output(), peer.UnexpectedEOF)
			require.NoError(t, c.Close())
		})
	}
}

// TestServerPeerClosesFirst: s_client sends close_notify first (Q on its
// standard input, or end of it). Our Read returns io.EOF, and Close
// completes the exchange without waiting: both flags are set after it.
func TestServerPeerClosesFirst(t *testing.T) {
	for _, v := range versions {
		for _, how := range []string{"Q", "end of stdin"} {
			t.Run(v.name+"/"+how, func(t *testing.T) {
				c, cl := sClient(t, v)
				if how == "Q" {
					require.NoError(t, cl.Send(peer.ClientCmdQuit))
				} else {
					require.NoError(t, cl.CloseStdin())
				}
				got, err := readErr(t, c)
				require.Empty(t, got)
				require.Equal(t, io.EOF, err)
				st := c.ShutdownState()
				require.True(t, st.Received() && !st.Sent(), "ShutdownState before Close %v", st)

				require.NoError(t, c.Close())
				st = c.ShutdownState()
				require.True(t, st.Sent() && st.Received(), "ShutdownState after Close %v", st)

				require.NoError(t, cl.WaitFor(peer.ClientDone, wait))
				require.Zero(t, exitCode(t, cl))
			})
		}
	}
}

// TestServerQuietClose: we close without close_notify (ClosePolicy.Quiet).
// s_client detects the truncation, which crypto/tls cannot, and exits
// with code 1.
func TestServerQuietClose(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c, cl := sClient(t, v)
			c.SetClosePolicy(openssl.ClosePolicy{Quiet: true})
			require.NoError(t, c.Close())

			require.NoError(t, cl.WaitFor(peer.UnexpectedEOF, wait))
			require.Equal(t, 1, exitCode(t, cl))
			require.NotContains(t, cl.Output(), peer.ClientClosed)
		})
	}
}
