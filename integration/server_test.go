package integration_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// exchange sends a line each way between our server c and s_client cl:
// s_client sends one (typed on its standard input) and we read exactly
// it; we send one and s_client prints it. After it, neither side has
// unread input (TLS 1.3 session tickets included), so a close cannot turn
// into a reset.
func exchange(t testing.TB, c *openssl.Conn, cl *peer.Process) {
	t.Helper()
	const up = "hello from s_client\n"
	require.NoError(t, cl.Send(up))
	require.Equal(t, up, readN(t, c, len(up)))
	const down = "hello from our server\n"
	_, err := c.Write([]byte(down))
	require.NoError(t, err)
	require.NoError(t, cl.WaitFor(down, wait))
}

// TestServerShutdownAnswered: we are the server of openssl s_client, which
// answers our close_notify with its own by itself: Shutdown returns nil,
// and s_client reports the close and exits cleanly.
func TestServerShutdownAnswered(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c, cl := sClient(t, v)
			exchange(t, c, cl)

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			require.NoError(t, c.Shutdown(ctx))
			st := c.ShutdownState()
			require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
			require.Zero(t, c.DiscardedBytes())

			require.NoError(t, cl.WaitFor(peer.ClientClosed, wait))
			require.Zero(t, exitCode(t, cl))
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
				exchange(t, c, cl)

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
			exchange(t, c, cl)

			c.SetClosePolicy(openssl.ClosePolicy{Quiet: true})
			require.NoError(t, c.Close())

			require.NoError(t, cl.WaitFor(peer.UnexpectedEOF, wait))
			require.Equal(t, 1, exitCode(t, cl))
			require.NotContains(t, cl.Output(), peer.ClientClosed)
		})
	}
}
