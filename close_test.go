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
)

// Tests of Close and its ClosePolicy, SetLinger and SendQueueLen against
// crypto/tls peers, TLS 1.2 and 1.3, with our Conn as client and as server.

// requirePeerSawFIN reads the peer's socket directly, below crypto/tls:
// io.EOF with no byte shows that our side closed its fd.
func requirePeerSawFIN(t *testing.T, p *sdPair) {
	t.Helper()
	require.NoError(t, p.peerSock.SetReadDeadline(time.Now().Add(testTimeout)))
	n, err := p.peerSock.Read(make([]byte, 1))
	require.Zero(t, n)
	require.Equal(t, io.EOF, err)
}

// requireOneAlertRecord checks that raw, what the peer read after a mark,
// is exactly one record holding a close_notify: a plaintext-typed alert
// record (0x15) in TLS 1.2; in TLS 1.3 alerts are encrypted, so an
// application_data record (0x17) of the length of a 2-byte alert (plus the
// inner content type and a 16-byte AEAD tag).
func requireOneAlertRecord(t *testing.T, tc sdCase, raw []byte) {
	t.Helper()
	types, lengths := sdRecords(t, raw)
	require.Len(t, types, 1, "one record after the mark")
	if tc.version == tls.VersionTLS12 {
		require.Equal(t, byte(0x15), types[0])
	} else {
		require.Equal(t, byte(0x17), types[0])
		require.Equal(t, 2+1+16, lengths[0])
	}
}

// TestCloseDefault: close_notify is sent, the peer's is not awaited, the fd
// is closed; a second Close says net.ErrClosed.
func TestCloseDefault(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{})
		p.exchange(t)
		mark := p.rec.mark()
		// The peer never answers: Close must not wait for it.
		sdWithin(t, sdMargin, "Close", func() { require.NoError(t, p.ours.Close()) })
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
		require.NoError(t, sdReadEOF(p.peer))
		requireOneAlertRecord(t, tc, p.rec.since(mark))
		requirePeerSawFIN(t, p)

		err := p.ours.Close()
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = p.ours.Write([]byte("x"))
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
	sdEach(t, func(t *testing.T, tc sdCase) {
		t.Run("peer answers", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{policy: &openssl.ClosePolicy{WaitForPeer: true, Timeout: testTimeout}})
			p.exchange(t)
			peer := p.peerAnswer()
			require.NoError(t, p.ours.Close())
			sdWait(t, peer, "peer's answer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
		t.Run("peer never answers", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{policy: &openssl.ClosePolicy{WaitForPeer: true, Timeout: sdShortTimeout}})
			p.exchange(t)
			var err error
			sdWithin(t, sdShortTimeout+sdMargin, "Close", func() { err = p.ours.Close() })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, "close", e.Op)
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
			// The fd is closed all the same: close_notify, then FIN.
			require.NoError(t, sdReadEOF(p.peer))
			requirePeerSawFIN(t, p)
		})
	})
}

// TestCloseQuiet: no alert at all (SSL_set_quiet_shutdown); crypto/tls
// cannot tell (a TCP EOF at a record boundary is io.EOF to it), so the test
// looks at the raw bytes it read: none after the last application record.
// TestCloseDefault shows the one record a normal Close sends.
func TestCloseQuiet(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{policy: &openssl.ClosePolicy{Quiet: true}})
		p.exchange(t)
		mark := p.rec.mark()
		require.NoError(t, p.ours.Close())
		require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String(),
			"a quiet shutdown sets both flags")
		require.NoError(t, sdReadEOF(p.peer))
		require.Empty(t, p.rec.since(mark))
	})
}

// TestSetLingerZero: Close sends no alert and the kernel resets the
// connection.
func TestSetLingerZero(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{})
		p.exchange(t)
		mark := p.rec.mark()
		require.NoError(t, p.ours.SetLinger(0))
		require.NoError(t, p.ours.Close())
		require.False(t, p.ours.ShutdownState().Sent())
		_, err := p.peer.Read(make([]byte, 10))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Empty(t, p.rec.since(mark), "no alert before the reset")
	})
}

// TestSendQueueLen: 0 once the peer acknowledged everything, more while a
// peer that does not read leaves our data in the kernel.
func TestSendQueueLen(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{ourSndBuf: fillOurSndBuf, peerRcvBuf: 4 << 10})
		p.exchange(t) // the pong carries the ACK of everything we sent
		n, err := p.ours.SendQueueLen()
		require.NoError(t, err)
		require.Zero(t, n)

		require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(testTimeout)))
		_, err = p.ours.Write(sdPattern(fillSize))
		require.NoError(t, err)
		n, err = p.ours.SendQueueLen()
		require.NoError(t, err)
		require.Greater(t, n, 0)
		require.LessOrEqual(t, n, fillSize+fillSize/8, "bytes, TLS overhead included")
	})
}

// TestCloseDrainSendQueue: Close returns once the peer's TCP acknowledged
// everything (SendQueueLen 0), so the peer has read all but what its small
// receive buffer holds; it then reads every byte and the close_notify.
func TestCloseDrainSendQueue(t *testing.T) {
	const drainSize = 512 << 10
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{
			ourSndBuf: fillOurSndBuf, peerRcvBuf: 32 << 10,
			policy: &openssl.ClosePolicy{DrainSendQueue: true, Timeout: testTimeout},
		})
		p.exchange(t)
		data := sdPattern(drainSize)
		require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(testTimeout)))
		_, err := p.ours.Write(data)
		require.NoError(t, err)
		queued, err := p.ours.SendQueueLen()
		require.NoError(t, err)
		require.Greater(t, queued, drainSize/2, "the peer has not read yet")

		var read atomic.Int64
		got := make(chan []byte, 1)
		peer := sdGo(func() error {
			var all []byte
			buf := make([]byte, 1<<10) // a slow reader: 1 KiB at a time
			for {
				n, err := p.peer.Read(buf)
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
		require.NoError(t, p.ours.Close())
		// Everything was acknowledged, so at most what the peer's kernel
		// (SO_RCVBUF 32 KiB, doubled) and crypto/tls buffer is unread.
		require.GreaterOrEqual(t, read.Load(), int64(drainSize-128<<10))
		sdWait(t, peer, "peer's read")
		require.Equal(t, data, <-got)
	})
}

// TestCloseLingering: we close with unread input from the peer. Lingering
// half-closes, reads and discards until the peer closes, so the kernel does
// not answer the unread input with RST: the peer reads all we wrote and our
// close_notify. Without it, the peer sees a reset.
func TestCloseLingering(t *testing.T) {
	const unread = 16 << 10
	sdEach(t, func(t *testing.T, tc sdCase) {
		setup := func(t *testing.T, policy openssl.ClosePolicy) (*sdPair, []byte) {
			p := sdNewPair(t, tc, sdOpts{ourSndBuf: fillOurSndBuf, peerRcvBuf: 32 << 10, policy: &policy})
			p.exchange(t)
			sdWait(t, sdGo(func() error {
				_, err := p.peer.Write(sdPattern(unread))
				return err
			}), "peer's write")
			sdPoll(t, p.ourSock, unix.POLLIN) // the input we leave unread
			data := sdPattern(fillSize)
			require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(testTimeout)))
			_, err := p.ours.Write(data)
			require.NoError(t, err)
			return p, data
		}
		peerRead := func(p *sdPair, got chan<- []byte, close bool) <-chan error {
			return sdGo(func() error {
				all, err := io.ReadAll(p.peer)
				got <- all
				if err == nil && close {
					err = p.peer.Close()
				}
				return err
			})
		}
		t.Run("lingering", func(t *testing.T) {
			p, data := setup(t, openssl.ClosePolicy{Lingering: true, Timeout: testTimeout})
			got := make(chan []byte, 1)
			peer := peerRead(p, got, true)
			require.NoError(t, p.ours.Close())
			sdWait(t, peer, "peer: no reset, io.EOF after our close_notify")
			require.Equal(t, data, <-got)
			require.Equal(t, int64(unread), p.ours.DiscardedBytes())
		})
		t.Run("default policy resets", func(t *testing.T) {
			p, data := setup(t, openssl.ClosePolicy{})
			require.NoError(t, p.ours.Close())
			got := make(chan []byte, 1)
			err := sdResult(t, peerRead(p, got, false), "peer's read")
			require.ErrorIs(t, err, syscall.ECONNRESET)
			require.Less(t, len(<-got), len(data), "the reset destroyed data")
		})
	})
}

// TestCloseStalledPeer: the peer stopped reading, so our close_notify cannot
// be flushed (fill makes that deterministic). Close gives up after its
// Timeout and closes the fd all the same.
func TestCloseStalledPeer(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		opts := sdFillOpts
		opts.policy = &openssl.ClosePolicy{Timeout: sdShortTimeout}
		p := sdNewPair(t, tc, opts)
		p.exchange(t)
		data := sdPattern(fillSize)
		p.fill(t, data)
		var err error
		sdWithin(t, sdShortTimeout+sdMargin, "Close", func() { err = p.ours.Close() })
		require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// The fd is closed: the peer reads what was in the kernel, then EOF
		// (at a record boundary: the alert never left OpenSSL).
		got, err := io.ReadAll(p.peer)
		require.NoError(t, err)
		require.Equal(t, data, got)
	})
}

// TestCloseAfterReadEOF: when Read has returned io.EOF, Close answers the
// peer's close_notify and returns at once, even under WaitForPeer.
func TestCloseAfterReadEOF(t *testing.T) {
	policies := map[string]openssl.ClosePolicy{
		"default":     {},
		"WaitForPeer": {WaitForPeer: true, Timeout: testTimeout},
	}
	sdEach(t, func(t *testing.T, tc sdCase) {
		for name, policy := range policies {
			t.Run(name, func(t *testing.T) {
				p := sdNewPair(t, tc, sdOpts{policy: &policy})
				p.exchange(t)
				mark := p.rec.mark()
				peer := sdGo(func() error {
					if err := p.peer.CloseWrite(); err != nil { // close_notify
						return err
					}
					return sdReadEOF(p.peer) // ours
				})
				n, err := p.ours.Read(make([]byte, 10))
				require.Zero(t, n)
				require.Equal(t, io.EOF, err)
				sdWithin(t, sdMargin, "Close", func() { require.NoError(t, p.ours.Close()) })
				require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
				sdWait(t, peer, "peer")
				requireOneAlertRecord(t, tc, p.rec.since(mark))
			})
		}
	})
}

// TestCloseRacesShutdown: Close while another goroutine waits in Shutdown
// for a peer that never answers. Nothing hangs; Shutdown returns an error
// wrapping net.ErrClosed.
func TestCloseRacesShutdown(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		for _, policy := range []openssl.ClosePolicy{{}, {WaitForPeer: true, Timeout: sdShortTimeout}} {
			name := "default"
			if policy.WaitForPeer {
				name = "WaitForPeer"
			}
			t.Run(name, func(t *testing.T) {
				p := sdNewPair(t, tc, sdOpts{policy: &policy})
				p.exchange(t)
				shut := sdGo(func() error { return p.ours.Shutdown(context.Background()) })
				// Once the peer has our alert, Shutdown waits (or is about
				// to) for the peer's.
				require.NoError(t, sdReadEOF(p.peer))
				var closeErr error
				sdWithin(t, policy.Timeout+sdMargin, "Close", func() { closeErr = p.ours.Close() })
				if closeErr != nil {
					// Under WaitForPeer, Close may have waited before
					// Shutdown took the read side.
					require.True(t, policy.WaitForPeer, "Close: %v", closeErr)
					require.ErrorIs(t, closeErr, openssl.ErrShutdownTimeout)
				}
				err := sdResult(t, shut, "Shutdown")
				require.True(t, errors.Is(err, net.ErrClosed) || errors.Is(err, openssl.ErrShutdownTimeout),
					"Shutdown: %v", err)
			})
		}
	})
}
