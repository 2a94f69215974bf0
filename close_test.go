package openssl_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// Tests of Close and its ClosePolicy, SetLinger and SendQueueLen against
// crypto/tls peers, TLS 1.2 and 1.3, with our Conn as client and as server.
// Tests that run under tlstest.EachOnPaths do so on both of our paths over
// the same socket (Path.OnSocket) or over every Path; over net.Pipe the
// peer must read for our close_notify to go out, so it reads from the start.

// requirePeerSawClose reads the peer's end directly, below crypto/tls:
// io.EOF with no byte shows that our side closed its conn (its fd: FIN).
// The pair's deadline on that end bounds the read (net.Pipe refuses a new
// one once either end is closed).
func requirePeerSawClose(t *testing.T, p *tlstest.Pair) {
	t.Helper()
	n, err := p.PeerEnd.Read(make([]byte, 1))
	require.Zero(t, n)
	require.Equal(t, io.EOF, err)
}

// requireOneAlertRecord checks that raw, what the peer read after a mark,
// is exactly one record holding a close_notify: a plaintext-typed alert
// record (0x15) in TLS 1.2; in TLS 1.3 alerts are encrypted, so an
// application_data record (0x17) of the length of a 2-byte alert (plus the
// inner content type and a 16-byte AEAD tag).
func requireOneAlertRecord(t *testing.T, tc tlstest.Case, raw []byte) {
	t.Helper()
	types, lengths, err := tlstest.Records(raw)
	require.NoError(t, err)
	require.Len(t, types, 1, "one record after the mark")
	if tc.Version == tls.VersionTLS12 {
		require.Equal(t, byte(0x15), types[0])
	} else {
		require.Equal(t, byte(0x17), types[0])
		require.Equal(t, 2+1+16, lengths[0])
	}
}

// TestCloseDefault: close_notify is sent, the peer's is not awaited, the fd
// is closed; a second Close says net.ErrClosed.
func TestCloseDefault(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Record: true})
		p.Exchange(t)
		mark := p.Rec.Mark()
		// The peer reads but never answers: Close must not wait for it.
		peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.Peer) })
		var err error
		tlstest.Within(t, boundMargin, "Close", func() { err = p.Ours.Close() })
		require.NoError(t, err)
		require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
		tlstest.Wait(t, peer, "peer's read of our close_notify")
		requireOneAlertRecord(t, tc, p.Rec.Since(mark))
		requirePeerSawClose(t, p)

		err = p.Ours.Close()
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = p.Ours.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed)
	})
}

// TestDefaultCloseTimeout: a zero ClosePolicy.Timeout means 5 s.
func TestDefaultCloseTimeout(t *testing.T) {
	require.Equal(t, 5*time.Second, openssl.DefaultCloseTimeout)
}

// TestCloseWaitForPeer: Close waits for the peer's close_notify, up to the
// policy's Timeout.
func TestCloseWaitForPeer(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		t.Run("peer answers", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Policy: &openssl.ClosePolicy{WaitForPeer: true, Timeout: tlstest.Timeout}})
			p.Exchange(t)
			peer := p.PeerAnswer()
			require.NoError(t, p.Ours.Close())
			tlstest.Wait(t, peer, "peer's answer")
			require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
		})
		t.Run("peer never answers", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Policy: &openssl.ClosePolicy{WaitForPeer: true, Timeout: shortTimeout}})
			p.Exchange(t)
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.Peer) })
			var err error
			tlstest.Within(t, shortTimeout+boundMargin, "Close", func() { err = p.Ours.Close() })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Equal(t, "close", asError(t, err).Op)
			require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
			// The conn is closed all the same: close_notify, then FIN.
			tlstest.Wait(t, peer, "peer's read of our close_notify")
			requirePeerSawClose(t, p)
		})
	})
}

// TestCloseQuiet: no alert at all (SSL_set_quiet_shutdown); crypto/tls
// cannot tell (a TCP EOF at a record boundary is io.EOF to it), so the test
// looks at the raw bytes it read: none after the last application record.
// TestCloseDefault shows the one record a normal Close sends.
func TestCloseQuiet(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Policy: &openssl.ClosePolicy{Quiet: true}, Record: true})
		p.Exchange(t)
		mark := p.Rec.Mark()
		peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.Peer) })
		require.NoError(t, p.Ours.Close())
		require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String(),
			"a quiet shutdown sets both flags")
		tlstest.Wait(t, peer, "peer's read up to our close")
		require.Empty(t, p.Rec.Since(mark))
	})
}

// TestSetLingerZero: Close sends no alert and the kernel resets the
// connection.
func TestSetLingerZero(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Record: true})
		p.Exchange(t)
		mark := p.Rec.Mark()
		require.NoError(t, p.Ours.SetLinger(0))
		require.NoError(t, p.Ours.Close())
		require.False(t, p.Ours.ShutdownState().Sent())
		_, err := p.Peer.Read(make([]byte, 10))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Empty(t, p.Rec.Since(mark), "no alert before the reset")
	})
}

// TestSendQueueLen: 0 once the peer acknowledged everything, more while a
// peer that does not read leaves our data in the kernel.
func TestSendQueueLen(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, OurSndBuf: tlstest.FillSndBuf, PeerRcvBuf: 4 << 10})
		p.Exchange(t) // the pong carries the ACK of everything we sent
		n, err := p.Ours.SendQueueLen()
		require.NoError(t, err)
		require.Zero(t, n)

		require.NoError(t, p.Ours.SetWriteDeadline(time.Now().Add(tlstest.Timeout)))
		_, err = p.Ours.Write(tlstest.Pattern(tlstest.FillSize))
		require.NoError(t, err)
		n, err = p.Ours.SendQueueLen()
		require.NoError(t, err)
		require.Greater(t, n, 0)
		require.LessOrEqual(t, n, tlstest.FillSize+tlstest.FillSize/8, "bytes, TLS overhead included")
	})
}

// TestCloseDrainSendQueue: Close returns once the peer's TCP acknowledged
// everything (SendQueueLen 0), so the peer has read all but what its small
// receive buffer holds; it then reads every byte and the close_notify.
func TestCloseDrainSendQueue(t *testing.T) {
	const drainSize = 512 << 10
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{
			Case: tc, OurSndBuf: tlstest.FillSndBuf, PeerRcvBuf: 32 << 10,
			Policy: &openssl.ClosePolicy{DrainSendQueue: true, Timeout: tlstest.Timeout},
		})
		p.Exchange(t)
		data := tlstest.Pattern(drainSize)
		require.NoError(t, p.Ours.SetWriteDeadline(time.Now().Add(tlstest.Timeout)))
		_, err := p.Ours.Write(data)
		require.NoError(t, err)
		queued, err := p.Ours.SendQueueLen()
		require.NoError(t, err)
		require.Greater(t, queued, drainSize/2, "the peer has not read yet")

		var read atomic.Int64
		got := make(chan []byte, 1)
		peer := tlstest.Go(func() error {
			var all []byte
			buf := make([]byte, 1<<10) // a slow reader: 1 KiB at a time
			for {
				n, err := p.Peer.Read(buf)
				all = append(all, buf[:n]...)
				read.Add(int64(n))
				if err == io.EOF {
					got <- all
					return nil
				}
				if err != nil {
					return err
				}
			}
		})
		require.NoError(t, p.Ours.Close())
		// Everything was acknowledged, so at most what the peer's kernel
		// (SO_RCVBUF 32 KiB, doubled) and crypto/tls buffer is unread.
		require.GreaterOrEqual(t, read.Load(), int64(drainSize-128<<10))
		tlstest.Wait(t, peer, "peer's read")
		require.Equal(t, data, <-got)
	})
}

// TestCloseLingering: we close with unread input from the peer. Lingering
// half-closes, reads and discards until the peer closes, so the kernel does
// not answer the unread input with RST: the peer reads all we wrote and our
// close_notify. Without it, the peer sees a reset.
func TestCloseLingering(t *testing.T) {
	const unread = 16 << 10
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		setup := func(t *testing.T, policy openssl.ClosePolicy) (*tlstest.Pair, []byte) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, OurSndBuf: tlstest.FillSndBuf, PeerRcvBuf: 32 << 10, Policy: &policy})
			p.Exchange(t)
			tlstest.Wait(t, tlstest.Go(func() error {
				_, err := p.Peer.Write(tlstest.Pattern(unread))
				return err
			}), "peer's write")
			require.NoError(t, tlstest.Poll(p.OurSock, unix.POLLIN, tlstest.Timeout)) // the input we leave unread
			data := tlstest.Pattern(tlstest.FillSize)
			require.NoError(t, p.Ours.SetWriteDeadline(time.Now().Add(tlstest.Timeout)))
			_, err := p.Ours.Write(data)
			require.NoError(t, err)
			return p, data
		}
		peerRead := func(p *tlstest.Pair, got chan<- []byte, close bool) <-chan error {
			return tlstest.Go(func() error {
				all, err := io.ReadAll(p.Peer)
				got <- all
				if err == nil && close {
					err = p.Peer.Close()
				}
				return err
			})
		}
		t.Run("lingering", func(t *testing.T) {
			p, data := setup(t, openssl.ClosePolicy{Lingering: true, Timeout: tlstest.Timeout})
			got := make(chan []byte, 1)
			peer := peerRead(p, got, true)
			require.NoError(t, p.Ours.Close())
			tlstest.Wait(t, peer, "peer: no reset, io.EOF after our close_notify")
			require.Equal(t, data, <-got)
			require.Equal(t, int64(unread), p.Ours.DiscardedBytes())
		})
		t.Run("default policy resets", func(t *testing.T) {
			p, data := setup(t, openssl.ClosePolicy{})
			require.NoError(t, p.Ours.Close())
			got := make(chan []byte, 1)
			err := tlstest.Result(t, peerRead(p, got, false), "peer's read")
			require.ErrorIs(t, err, syscall.ECONNRESET)
			require.Less(t, len(<-got), len(data), "the reset destroyed data")
		})
	}, tlstest.Path.OnSocket)
}

// TestCloseStalledPeer: the peer stopped reading, so our close_notify cannot
// be flushed (fill makes that deterministic). Close gives up after its
// Timeout and closes the fd all the same.
func TestCloseStalledPeer(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		spec := tlstest.FillSpec(tc)
		spec.Policy = &openssl.ClosePolicy{Timeout: shortTimeout}
		p := tlstest.Connect(t, spec)
		p.Exchange(t)
		data := tlstest.Pattern(tlstest.FillSize)
		p.FillSendQueue(t, data)
		var err error
		tlstest.Within(t, shortTimeout+boundMargin, "Close", func() { err = p.Ours.Close() })
		require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// The fd is closed: the peer reads what was in the kernel, then EOF
		// (at a record boundary: the alert never left OpenSSL).
		got, err := io.ReadAll(p.Peer)
		require.NoError(t, err)
		require.Equal(t, data, got)
	})
}

// TestCloseAfterReadEOF: when Read has returned io.EOF, Close answers the
// peer's close_notify and returns at once, even under WaitForPeer.
func TestCloseAfterReadEOF(t *testing.T) {
	policies := map[string]openssl.ClosePolicy{
		"default":     {},
		"WaitForPeer": {WaitForPeer: true, Timeout: tlstest.Timeout},
	}
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		for name, policy := range policies {
			t.Run(name, func(t *testing.T) {
				p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Policy: &policy, Record: true})
				p.Exchange(t)
				mark := p.Rec.Mark()
				peer := tlstest.Go(func() error {
					if err := p.Peer.CloseWrite(); err != nil { // close_notify
						return err
					}
					return tlstest.ReadEOF(p.Peer) // ours
				})
				n, err := p.Ours.Read(make([]byte, 10))
				require.Zero(t, n)
				require.Equal(t, io.EOF, err)
				var closeErr error
				tlstest.Within(t, boundMargin, "Close", func() { closeErr = p.Ours.Close() })
				require.NoError(t, closeErr)
				require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
				tlstest.Wait(t, peer, "peer")
				requireOneAlertRecord(t, tc, p.Rec.Since(mark))
			})
		}
	}, tlstest.Path.OnSocket)
}

// TestCloseRacesShutdown: Close while another goroutine waits in Shutdown
// for a peer that never answers. Nothing hangs; Shutdown returns an error
// wrapping net.ErrClosed.
func TestCloseRacesShutdown(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		for _, policy := range []openssl.ClosePolicy{{}, {WaitForPeer: true, Timeout: shortTimeout}} {
			name := "default"
			if policy.WaitForPeer {
				name = "WaitForPeer"
			}
			t.Run(name, func(t *testing.T) {
				p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path, Policy: &policy})
				p.Exchange(t)
				shut := tlstest.Go(func() error { return p.Ours.Shutdown(context.Background()) })
				// Once the peer has our alert, Shutdown waits (or is about
				// to) for the peer's.
				require.NoError(t, tlstest.ReadEOF(p.Peer))
				var closeErr error
				tlstest.Within(t, policy.Timeout+boundMargin, "Close", func() { closeErr = p.Ours.Close() })
				if closeErr != nil {
					// Under WaitForPeer, Close may have waited before
					// Shutdown took the read side.
					require.True(t, policy.WaitForPeer, "Close: %v", closeErr)
					require.ErrorIs(t, closeErr, openssl.ErrShutdownTimeout)
				}
				err := tlstest.Result(t, shut, "Shutdown")
				require.True(t, errors.Is(err, net.ErrClosed) || errors.Is(err, openssl.ErrShutdownTimeout),
					"Shutdown: %v", err)
			})
		}
	}, tlstest.Path.OnSocket)
}
