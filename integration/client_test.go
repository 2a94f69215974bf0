package integration_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestClientShutdownAnswered: we are the client of openssl s_server, which
// answers our close_notify with its own by itself (crypto/tls does not).
// ShutdownOnce, retried, goes 0, then -1/WANT_READ zero or more times,
// then 1; Shutdown returns nil. Either way s_server saw our close_notify.
func TestClientShutdownAnswered(t *testing.T) {
	for _, v := range versions {
		for _, how := range []string{"ShutdownOnce+Retry", "Shutdown"} {
			t.Run(v.name+"/"+how, func(t *testing.T) {
				c, srv := sServer(t, v, nil)
				say(t, c, srv, "hello from our client\n")
				requireAnsweredBy(t, c, how, srv, 0, peer.ServerCloseNotifyReceived)
				require.NoError(t, c.Close())
			})
		}
	}
}

// TestClientTruncation: s_server's Q command closes TCP without
// close_notify. Our Read reports the truncation (ErrTruncated, which is
// io.ErrUnexpectedEOF), where crypto/tls would return io.EOF; with
// IgnoreUnexpectedEOF it returns io.EOF.
func TestClientTruncation(t *testing.T) {
	for _, v := range versions {
		for _, ignore := range []bool{false, true} {
			name := v.name + "/detect"
			if ignore {
				name = v.name + "/IgnoreUnexpectedEOF"
			}
			t.Run(name, func(t *testing.T) {
				sslCtx := clientCtx(t, v)
				if ignore {
					sslCtx.SetOptions(openssl.IgnoreUnexpectedEOF)
				}
				c, srv := sServer(t, v, sslCtx)

				// Once s_server printed our data, its handshake is over and
				// what we read next is its TCP close.
				say(t, c, srv, "before the truncation\n")
				require.NoError(t, srv.Send(peer.ServerCmdQuit))

				got, err := readErr(t, c)
				require.Empty(t, got)
				if ignore {
					require.Equal(t, io.EOF, err)
				} else {
					require.ErrorIs(t, err, openssl.ErrTruncated)
					require.ErrorIs(t, err, io.ErrUnexpectedEOF)
					require.NotErrorIs(t, err, io.EOF)
					// The error is permanent.
					_, again := c.Read(make([]byte, 1))
					require.ErrorIs(t, again, openssl.ErrTruncated)
				}
				require.NoError(t, srv.WaitFor(peer.ServerAcceptSocketClosed, wait))
				require.Zero(t, exitCode(t, srv))
			})
		}
	}
}

// TestClientKeyUpdate (TLS 1.3 only): s_server sends a KeyUpdate, with
// K requesting one back and with k not. OpenSSL, unlike crypto/tls,
// lets a command line ask for it.
//   - While we read, it arrives before data: Read takes it and returns
//     the data after it (on both of our paths). Our answer to K goes out with our next write,
//     which s_server reads with the new keys; Shutdown then works.
//   - Arriving after our close_notify (sent before we read it), it is
//     processed while we wait for s_server's close_notify: Shutdown
//     returns nil.
func TestClientKeyUpdate(t *testing.T) {
	v := versions[1]
	require.Equal(t, "TLS1.3", v.name)
	for _, cmd := range []string{peer.ServerCmdKeyUpdateRequest, peer.ServerCmdKeyUpdate} {
		name := strings.TrimSpace(cmd)
		t.Run(v.name+"/"+name+"/while reading", func(t *testing.T) {
			tlstest.EachPath(t, func(t *testing.T, path tlstest.Path) {
				c, srv := sServerOn(t, v, path, nil)
				say(t, c, srv, "before the key update\n")

				const down = "after the key update\n"
				type result struct {
					got string
					err error
				}
				read := make(chan result, 1)
				go func() {
					c.SetReadDeadline(time.Now().Add(wait))
					buf := make([]byte, len(down))
					n, err := io.ReadFull(c, buf)
					read <- result{string(buf[:n]), err}
				}()
				mark := srv.Mark()
				require.NoError(t, srv.Send(cmd))
				require.NoError(t, srv.WaitForAfter(mark, peer.ServerKeyUpdated, wait))
				require.NoError(t, srv.Send(down))
				var r result
				select {
				case r = <-read:
				case <-time.After(2 * wait): // the read deadline ends it first
					t.Fatal("Read did not return")
				}
				require.NoError(t, r.err)
				require.Equal(t, down, r.got)
				require.NoError(t, c.SetReadDeadline(time.Time{}))

				// OpenSSL sends the KeyUpdate that K requests with our next
				// write (crypto/tls sends it while reading): s_server reads it,
				// a record without data, just before the data.
				const up2 = "written with our new keys\n"
				_, err := c.Write([]byte(up2))
				require.NoError(t, err)
				require.NoError(t, srv.WaitForAfter(mark, up2, wait))
				out := srv.Output()[mark:]
				if cmd == peer.ServerCmdKeyUpdateRequest {
					require.Contains(t, out, peer.ServerKeyUpdated+peer.ServerReadBlock+up2)
				} else {
					require.Contains(t, out, peer.ServerKeyUpdated+up2)
				}

				requireAnsweredBy(t, c, "Shutdown", srv, mark, peer.ServerCloseNotifyReceived)
			}, tlstest.Path.OnSocket)
		})

		for _, how := range []string{"ShutdownOnce+Retry", "Shutdown"} {
			t.Run(v.name+"/"+name+"/after our close_notify/"+how, func(t *testing.T) {
				c, srv := sServer(t, v, nil)
				say(t, c, srv, "before the key update\n")

				// We do not read: the KeyUpdate waits in our socket until
				// the shutdown reads it, after our close_notify went out.
				mark := srv.Mark()
				require.NoError(t, srv.Send(cmd))
				require.NoError(t, srv.WaitForAfter(mark, peer.ServerKeyUpdated, wait))

				requireAnsweredBy(t, c, how, srv, mark, peer.ServerCloseNotifyReceived)
				// Having sent close_notify, we never answered K.
				require.NotContains(t, srv.Output()[mark:], peer.ServerReadBlock)
			})
		}
	}
}

// revServer is sServer with -rev, which answers each line with the line
// reversed, once it reports the connection established.
func revServer(t *testing.T, v version) (*openssl.Conn, *peer.Process) {
	t.Helper()
	c, srv := sServer(t, v, nil, "-rev")
	require.NoError(t, srv.WaitFor(peer.RevConnectionEstablished, wait))
	return c, srv
}

// TestClientHalfClose: s_server -rev answers each line with the line
// reversed and keeps answering after our close_notify. We write a line,
// CloseWrite (close_notify and FIN), and still read the answer, then
// io.EOF from s_server's own close_notify. This is the request/response
// half-close that crypto/tls's CloseWrite cannot do on the TCP level.
func TestClientHalfClose(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c, srv := revServer(t, v)

			_, err := c.Write([]byte("hello\n"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			_, err = c.Write([]byte("late\n"))
			require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

			got, err := readErr(t, c)
			require.Equal(t, "olleh\n", got)
			require.Equal(t, io.EOF, err)
			st := c.ShutdownState()
			require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
			require.NoError(t, srv.WaitFor(peer.ServerConnectionClosed, wait))
			require.Zero(t, exitCode(t, srv))
			require.NotContains(t, srv.Output(), peer.UnexpectedEOF)
			require.NoError(t, c.Close())
		})
	}
}

// TestClientPeerClosesFirst: s_server -rev sends close_notify first when
// it reads the line "CLOSE", then waits for ours. Read returns io.EOF,
// and Shutdown completes at once: the peer's alert is already in.
func TestClientPeerClosesFirst(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c, srv := revServer(t, v)

			_, err := c.Write([]byte("CLOSE\n"))
			require.NoError(t, err)
			got, err := readErr(t, c)
			require.Empty(t, got)
			require.Equal(t, io.EOF, err)
			st := c.ShutdownState()
			require.True(t, st.Received() && !st.Sent(), "ShutdownState %v", st)

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			r, err := c.ShutdownOnce()
			require.NoError(t, err)
			require.Equal(t, openssl.ShutdownComplete, r)
			require.NoError(t, c.Shutdown(ctx))
			require.Zero(t, exitCode(t, srv))
			require.NotContains(t, srv.Output(), peer.UnexpectedEOF)
		})
	}
}
