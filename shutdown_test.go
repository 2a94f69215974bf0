package openssl_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
)

// Tests of ShutdownOnce, Retry, Shutdown, CloseWrite and ShutdownState
// against crypto/tls peers, TLS 1.2 and 1.3, with our Conn as client and as
// server. crypto/tls never answers close_notify by itself: its Read returns
// io.EOF and its Close sends the answer (peerAnswer).

const (
	// sdShortTimeout is the timeout of tests where the peer never answers.
	sdShortTimeout = 300 * time.Millisecond
	// sdMargin is the generous slack of the upper bounds that prove a call
	// is bounded by its timeout.
	sdMargin = 2 * time.Second
)

const (
	wantReadMsg  = "openssl: shutdown: want read (waiting for the peer's close_notify)"
	wantWriteMsg = "openssl: shutdown: want write (our close_notify is not yet in the kernel's send buffer)"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// requireShutdownError checks the *Error of a failed ShutdownOnce.
func requireShutdownError(t *testing.T, err error, code openssl.ErrorCode, sentinel error, msg string) {
	t.Helper()
	require.ErrorIs(t, err, sentinel)
	var e *openssl.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "shutdown", e.Op)
	require.Equal(t, code, e.Code)
	require.Zero(t, e.Errno)
	require.Empty(t, e.Queue)
	require.EqualError(t, err, msg)
}

// TestShutdownOnceSequence: 0, then -1/WANT_READ while the peer has not
// answered, then 1 once its close_notify is in.
func TestShutdownOnceSequence(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{})
		p.exchange(t)
		rec := &sdStepRec{c: p.ours}
		require.Equal(t, "sent=false received=false", p.ours.ShutdownState().String())

		r, err := rec.once()
		require.NoError(t, err)
		require.Equal(t, openssl.ShutdownSent, r)
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())

		r, err = rec.once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantRead, openssl.ErrWantRead, wantReadMsg)
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())

		_, err = p.ours.Write([]byte("x"))
		require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

		sdWait(t, p.peerAnswer(), "peer's answer")
		// The peer's FIN follows its close_notify: once poll reports it,
		// the alert is in our receive queue and the next call completes.
		sdPoll(t, p.ourSock, unix.POLLRDHUP)
		require.NoError(t, p.ours.Retry(testCtx(t), rec.step))
		require.Equal(t, []string{"0", "-1/want read", "1"}, rec.seq)
		require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())

		n, err := p.ours.Read(make([]byte, 10))
		require.Zero(t, n)
		require.Equal(t, io.EOF, err)
	})
}

// TestShutdownOnceWantWrite: the peer stops reading, so our close_notify
// does not fit in the kernel (-1/WANT_WRITE); once the peer drains, Retry
// sends it (0), and the peer's answer completes the exchange (1).
func TestShutdownOnceWantWrite(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdFillOpts)
		p.exchange(t)
		data := sdPattern(fillSize)
		p.fill(t, data)
		rec := &sdStepRec{c: p.ours}

		r, err := rec.once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantWrite, openssl.ErrWantWrite, wantWriteMsg)
		// OpenSSL marks the alert sent when it queues it.
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
		_, err = p.ours.Write([]byte("x"))
		require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

		drained := sdGo(func() error {
			got := make([]byte, len(data))
			if _, err := io.ReadFull(p.peer, got); err != nil {
				return err
			}
			if string(got) != string(data) {
				return errors.New("peer received other bytes than we wrote")
			}
			return nil
		})
		sdWait(t, drained, "peer's drain")
		// Writable again: the next call puts the alert into the kernel.
		sdPoll(t, p.ourSock, unix.POLLOUT)
		require.NoError(t, p.ours.Retry(testCtx(t), rec.step))
		require.Equal(t, []string{"-1/want write", "0"}, rec.seq)

		sdWait(t, p.peerAnswer(), "peer's answer")
		sdPoll(t, p.ourSock, unix.POLLRDHUP)
		require.NoError(t, p.ours.Retry(testCtx(t), rec.step))
		require.Equal(t, []string{"-1/want write", "0", "1"}, rec.seq)
		require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
	})
}

// TestShutdownOnceAfterTimedOutWrite documents an OpenSSL limit, which
// OpenSSL versions report differently: after a Write gave up at its
// deadline, part of a record is still inside OpenSSL, and OpenSSL cannot
// send close_notify behind it. In both the peer receives exactly the n
// bytes Write reported and then sees the stream cut inside a record.
//
//   - OpenSSL 3.0: the first ShutdownOnce queues the alert (-1/WANT_WRITE);
//     the next fails for good with "bad write retry".
//   - OpenSSL 3.5: the first ShutdownOnce queues the alert (-1/WANT_WRITE);
//     the next drops it without a word (-1/WANT_WRITE, from the pending
//     write), and the third waits for the peer's close_notify
//     (-1/WANT_READ), which cannot come: the peer never got ours. Retry
//     and Shutdown wait until their context or deadline ends.
func TestShutdownOnceAfterTimedOutWrite(t *testing.T) {
	dropsAlert := opensslMinor(t) >= 5
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{unix: true, ourSndBuf: 1})
		p.exchange(t)
		require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		n, err := p.ours.Write(make([]byte, 1<<20))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NoError(t, p.ours.SetWriteDeadline(time.Time{}))

		var received atomic.Int64
		peerDone := sdGo(func() error {
			_, err := io.Copy(sdCountingWriter{&received}, p.peer)
			return err
		})
		rec := &sdStepRec{c: p.ours}
		if dropsAlert {
			// Bounded: nothing more reaches the peer, so nothing answers.
			ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
			err = p.ours.Retry(ctx, rec.step)
			cancel()
			require.Equal(t, []string{"-1/want write", "-1/want write", "-1/want read"}, rec.seq)
			require.ErrorIs(t, err, openssl.ErrWantRead)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		} else {
			err = p.ours.Retry(testCtx(t), rec.step)
			require.Equal(t, []string{"-1/want write", "-1/SSL error"}, rec.seq)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, openssl.ErrorSSL, e.Code)
			require.Len(t, e.Queue, 1)
			require.Equal(t, "bad write retry", e.Queue[0].ReasonText)
		}

		require.NoError(t, p.ours.Close(), "the error was reported; Close just closes")
		require.ErrorIs(t, sdResult(t, peerDone, "peer's read"), io.ErrUnexpectedEOF)
		require.Equal(t, int64(n), received.Load(), "the peer receives what Write reported")
	})
}

// sdCountingWriter counts the bytes written to it.
type sdCountingWriter struct{ n *atomic.Int64 }

func (w sdCountingWriter) Write(b []byte) (int, error) {
	w.n.Add(int64(len(b)))
	return len(b), nil
}

// TestShutdownOnceBeforeHandshake: nothing is sent, and the other shutdown
// calls fail the same way.
func TestShutdownOnceBeforeHandshake(t *testing.T) {
	for _, server := range []bool{false, true} {
		name := "we-client"
		if server {
			name = "we-server"
		}
		t.Run(name, func(t *testing.T) {
			ourSock, peerSock := tcpPair(t)
			var ours *openssl.Conn
			var err error
			if server {
				ours, err = openssl.Server(ourSock, serverCtx(t))
			} else {
				ours, err = openssl.Client(ourSock, clientCtx(t))
			}
			require.NoError(t, err)

			r, err := ours.ShutdownOnce()
			require.Equal(t, openssl.ShutdownFailed, r)
			require.ErrorIs(t, err, openssl.ErrHandshakeIncomplete)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, "shutdown", e.Op)
			require.ErrorIs(t, ours.Shutdown(context.Background()), openssl.ErrHandshakeIncomplete)
			require.ErrorIs(t, ours.CloseWrite(), openssl.ErrHandshakeIncomplete)
			require.ErrorIs(t, ours.Shutdown(nil), openssl.ErrNilContext) //nolint:staticcheck // nil ctx on purpose
			require.Equal(t, "sent=false received=false", ours.ShutdownState().String())

			// The peer sees no byte: not now...
			require.NoError(t, peerSock.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
			n, err := peerSock.Read(make([]byte, 1))
			require.Zero(t, n)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			// ...nor after Close (which sends nothing before a handshake).
			require.NoError(t, ours.Close())
			require.NoError(t, peerSock.SetReadDeadline(time.Now().Add(testTimeout)))
			got, err := io.ReadAll(peerSock)
			require.NoError(t, err)
			require.Empty(t, got)
		})
	}
}

// TestShutdownOnceAfterFatalError: after the peer reset the connection,
// ShutdownOnce returns the stored error and does not call OpenSSL again
// (every call returns the very same *Error).
func TestShutdownOnceAfterFatalError(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{})
		p.exchange(t)
		require.NoError(t, p.peerTCP().SetLinger(0))
		require.NoError(t, p.peerTCP().Close()) // RST

		_, readErr := p.ours.Read(make([]byte, 10))
		require.ErrorIs(t, readErr, syscall.ECONNRESET)

		r1, err1 := p.ours.ShutdownOnce()
		r2, err2 := p.ours.ShutdownOnce()
		require.Equal(t, openssl.ShutdownFailed, r1)
		require.Equal(t, openssl.ShutdownFailed, r2)
		require.ErrorIs(t, err1, syscall.ECONNRESET)
		require.Same(t, err1, err2)
		var e *openssl.Error
		require.ErrorAs(t, err1, &e)
		require.Equal(t, "read", e.Op, "the error of the call that failed")
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.Equal(t, syscall.ECONNRESET, e.Errno)
		require.False(t, p.ours.ShutdownState().Sent())
		require.ErrorIs(t, p.ours.Shutdown(context.Background()), syscall.ECONNRESET)
	})
}

// TestShutdownOnceApplicationDataAfterCloseNotify documents what a second
// SSL_shutdown does when the peer sends application data after our
// close_notify: OpenSSL 3.0 fails with SSL_ERROR_SSL, reason "application
// data after close notify" (SSL_R_APPLICATION_DATA_AFTER_CLOSE_NOTIFY). It
// is fatal: later calls, Read included, return that same error without
// calling OpenSSL. Shutdown avoids this by reading with SSL_read
// (TestShutdown/peer_keeps_sending).
func TestShutdownOnceApplicationDataAfterCloseNotify(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		p := sdNewPair(t, tc, sdOpts{})
		p.exchange(t)
		rec := &sdStepRec{c: p.ours}
		_, err := rec.once()
		require.NoError(t, err)
		sdWait(t, sdGo(func() error {
			_, err := p.peer.Write([]byte("more data"))
			return err
		}), "peer's write")
		sdPoll(t, p.ourSock, unix.POLLIN)

		_, err2 := rec.once()
		_, err3 := rec.once()
		require.Equal(t, []string{"0", "-1/SSL error", "-1/SSL error"}, rec.seq)
		var e *openssl.Error
		require.ErrorAs(t, err2, &e)
		require.Equal(t, "shutdown", e.Op)
		require.Equal(t, openssl.ErrorSSL, e.Code)
		require.Len(t, e.Queue, 1)
		require.Equal(t, "application data after close notify", e.Queue[0].ReasonText)
		require.Equal(t, "SSL routines", e.Queue[0].LibText)
		require.EqualError(t, err2, "openssl: shutdown: SSL error: application data after close notify")
		require.EqualError(t, err3, err2.Error())
		_, err4 := p.ours.ShutdownOnce()
		require.Same(t, err3, err4, "the stored error, OpenSSL not called")
		_, readErr := p.ours.Read(make([]byte, 10))
		require.Same(t, err3, readErr)
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())

		// The peer got our close_notify and nothing after it.
		require.NoError(t, sdReadEOF(p.peer))
	})
}

// TestRetryBounds: Retry gives up when its context or the connection's
// deadline ends, with both the step's last error and the cause.
func TestRetryBounds(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		t.Run("context", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			rec := &sdStepRec{c: p.ours}
			_, err := rec.once()
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), sdShortTimeout)
			defer cancel()
			sdWithin(t, sdShortTimeout+sdMargin, "Retry", func() { err = p.ours.Retry(ctx, rec.step) })
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, openssl.ErrWantRead)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			require.Equal(t, "0", rec.seq[0])
			for _, s := range rec.seq[1:] {
				require.Equal(t, "-1/want read", s)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			rec := &sdStepRec{c: p.ours}
			_, err := rec.once()
			require.NoError(t, err)
			require.NoError(t, p.ours.SetDeadline(time.Now().Add(sdShortTimeout)))
			sdWithin(t, sdShortTimeout+sdMargin, "Retry", func() { err = p.ours.Retry(context.Background(), rec.step) })
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.ErrorIs(t, err, openssl.ErrWantRead)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
		})
		t.Run("nil context", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			called := false
			err := p.ours.Retry(nil, func() error { called = true; return nil }) //nolint:staticcheck // nil ctx on purpose
			require.ErrorIs(t, err, openssl.ErrNilContext)
			require.False(t, called)
		})
	})
}

// TestShutdown covers the bidirectional Shutdown against each kind of peer.
func TestShutdown(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		t.Run("peer answers", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			data := sdPattern(256 << 10)
			peer := sdGo(func() error {
				got, err := io.ReadAll(p.peer) // up to our close_notify
				if err != nil {
					return err
				}
				if string(got) != string(data) {
					return errors.New("peer received other bytes than we wrote")
				}
				return p.peer.Close()
			})
			_, err := p.ours.Write(data)
			require.NoError(t, err)
			require.NoError(t, p.ours.Shutdown(testCtx(t)))
			sdWait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
			require.Zero(t, p.ours.DiscardedBytes())
			// Twice: nothing more to do.
			require.NoError(t, p.ours.Shutdown(testCtx(t)))
			_, err = p.ours.Write([]byte("x"))
			require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)
			n, err := p.ours.Read(make([]byte, 1))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		})
		t.Run("peer closes TCP without close_notify", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			p.exchange(t)
			peer := sdGo(func() error {
				if err := sdReadEOF(p.peer); err != nil { // our close_notify
					return err
				}
				return p.peerTCP().Close() // FIN, no alert
			})
			err := p.ours.Shutdown(testCtx(t))
			sdWait(t, peer, "peer")
			require.ErrorIs(t, err, openssl.ErrTruncated)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, openssl.ErrorSyscall, e.Code)
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
		})
		t.Run("peer never answers, context", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			ctx, cancel := context.WithTimeout(context.Background(), sdShortTimeout)
			defer cancel()
			var err error
			sdWithin(t, sdShortTimeout+sdMargin, "Shutdown", func() { err = p.ours.Shutdown(ctx) })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
			// Our alert did go out.
			require.NoError(t, sdReadEOF(p.peer))
		})
		t.Run("peer never answers, deadline", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			require.NoError(t, p.ours.SetDeadline(time.Now().Add(sdShortTimeout)))
			var err error
			sdWithin(t, sdShortTimeout+sdMargin, "Shutdown", func() { err = p.ours.Shutdown(context.Background()) })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
		})
		t.Run("peer keeps sending", func(t *testing.T) {
			const n = 4 << 20
			p := sdNewPair(t, tc, sdOpts{})
			peer := sdGo(func() error {
				if err := sdReadEOF(p.peer); err != nil { // our close_notify
					return err
				}
				// crypto/tls still writes after the peer's close_notify.
				if _, err := p.peer.Write(sdPattern(n)); err != nil {
					return err
				}
				return p.peer.Close()
			})
			require.NoError(t, p.ours.Shutdown(testCtx(t)))
			sdWait(t, peer, "peer")
			require.Equal(t, int64(n), p.ours.DiscardedBytes())
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
		t.Run("after Read returned io.EOF", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			p.exchange(t)
			require.NoError(t, p.peer.Close())
			n, err := p.ours.Read(make([]byte, 10))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
			require.Equal(t, "sent=false received=true", p.ours.ShutdownState().String())
			// A context that would outlast the test: Shutdown must not wait.
			sdWithin(t, sdMargin, "Shutdown", func() {
				require.NoError(t, p.ours.Shutdown(context.Background()))
			})
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
		t.Run("nil context", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			require.ErrorIs(t, p.ours.Shutdown(nil), openssl.ErrNilContext) //nolint:staticcheck // nil ctx on purpose
			require.Equal(t, "sent=false received=false", p.ours.ShutdownState().String())
		})
	})
}

// TestCloseWrite: half-close in both directions.
func TestCloseWrite(t *testing.T) {
	sdEach(t, func(t *testing.T, tc sdCase) {
		t.Run("request then response", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			request, response := sdPattern(100<<10), sdPattern(300 << 10)[7:]
			peer := sdGo(func() error {
				got, err := io.ReadAll(p.peer) // the request, up to our close_notify
				if err != nil {
					return err
				}
				if string(got) != string(request) {
					return errors.New("peer received other bytes than the request")
				}
				if _, err := p.peer.Write(response); err != nil {
					return err
				}
				return p.peer.Close()
			})
			_, err := p.ours.Write(request)
			require.NoError(t, err)
			require.NoError(t, p.ours.CloseWrite())
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
			_, err = p.ours.Write([]byte("x"))
			require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

			got, err := io.ReadAll(p.ours)
			require.NoError(t, err, "io.EOF after the response")
			require.Equal(t, response, got)
			sdWait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
		t.Run("peer half-closes, we keep writing", func(t *testing.T) {
			p := sdNewPair(t, tc, sdOpts{})
			data := sdPattern(200 << 10)
			peer := make(chan []byte, 1)
			peerErr := sdGo(func() error {
				if err := p.peer.CloseWrite(); err != nil { // close_notify only
					return err
				}
				got, err := io.ReadAll(p.peer)
				peer <- got
				return err
			})
			n, err := p.ours.Read(make([]byte, 10))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
			require.Equal(t, "sent=false received=true", p.ours.ShutdownState().String())
			_, err = p.ours.Write(data)
			require.NoError(t, err)
			require.NoError(t, p.ours.Close())
			sdWait(t, peerErr, "peer's read")
			require.Equal(t, data, <-peer)
		})
	})
}
