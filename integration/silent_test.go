package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// TestPeerNeverAnswers: a peer that never answers our close_notify.
//
// No option makes s_server or s_client keep quiet: tried with our
// Shutdown, s_server (default, -rev, -www, -WWW, -HTTP, -ign_eof, -quiet)
// and s_client (default, -ign_eof, -nocommands, -quiet, -brief) all
// answer at once. So the test stops the peer with SIGSTOP: its kernel
// keeps the TCP connection up and acknowledges our alert, but nothing
// reads it. Shutdown then ends at its context's deadline with
// ErrShutdownTimeout, within a generous bound, and the connection stays
// usable: after SIGCONT the peer answers and a second Shutdown returns
// nil.
func TestPeerNeverAnswers(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, v := range versions {
		for _, role := range []string{"client", "server"} {
			t.Run(v.name+"/we are "+role, func(t *testing.T) {
				var c *openssl.Conn
				var p *peer.Process
				if role == "client" {
					c, p = sServer(t, v, nil)
					say(t, c, p, "hello from our client\n")
				} else {
					c, p = sClient(t, v)
				}
				require.NoError(t, pauseProcess(p))

				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				start := time.Now()
				err := c.Shutdown(ctx)
				took := time.Since(start)
				require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Less(t, took, timeout+2*time.Second, "Shutdown must be bounded by its context")
				st := c.ShutdownState()
				require.True(t, st.Sent() && !st.Received(), "ShutdownState %v", st)

				require.NoError(t, resumeProcess(p))
				ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
				defer cancel2()
				require.NoError(t, c.Shutdown(ctx2))
				st = c.ShutdownState()
				require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
				if role == "client" {
					require.NoError(t, p.WaitFor(peer.ServerCloseNotifyReceived, wait))
				} else {
					require.NoError(t, p.WaitFor(peer.ClientClosed, wait))
				}
				require.Zero(t, exitCode(t, p))
				require.NoError(t, c.Close())
			})
		}
	}
}
