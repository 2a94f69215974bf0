package openssl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"github.com/closenotify/openssl/internal/tlstest"
)

// Tests of ShutdownOnce, Retry, Shutdown, CloseWrite and ShutdownState
// against crypto/tls peers, TLS 1.2 and 1.3, with our Conn as client and as
// server. crypto/tls never answers close_notify by itself: its Read returns
// io.EOF and its Close sends the answer (peerAnswer).
// Tests under tlstest.EachOnPaths run on both of our paths; anyconn_test.go
// has the generic path's own ShutdownOnce sequences.

const (
	// shortTimeout is the timeout of tests where the peer never answers.
	shortTimeout = 300 * time.Millisecond
	// boundMargin is the generous slack of the upper bounds that prove a call
	// is bounded by its timeout.
	boundMargin = 2 * time.Second
)

const (
	wantReadMsg  = "openssl: shutdown: want read (waiting for the peer's close_notify)"
	wantWriteMsg = "openssl: shutdown: want write (our close_notify is not yet in the kernel's send buffer)"
)

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

// shutdownOnceTwice calls ShutdownOnce twice on a connected pair whose
// peer has not answered yet (or whose answer ShutdownOnce does not read):
// 0, then -1/WANT_READ; Write then fails. It returns the recorded steps.
func shutdownOnceTwice(t *testing.T, p *tlstest.Pair) *tlstest.Steps {
	t.Helper()
	rec := &tlstest.Steps{Conn: p.Ours}
	r, err := rec.Once()
	require.NoError(t, err)
	require.Equal(t, openssl.ShutdownSent, r)
	require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())

	r, err = rec.Once()
	require.Equal(t, openssl.ShutdownFailed, r)
	requireShutdownError(t, err, openssl.ErrorWantRead, openssl.ErrWantRead, wantReadMsg)
	require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())

	_, err = p.Ours.Write([]byte("x"))
	require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)
	return rec
}

// requireShutdownDone checks a completed exchange: the steps were seq,
// both alerts are through, and Read says io.EOF.
func requireShutdownDone(t *testing.T, p *tlstest.Pair, rec *tlstest.Steps, seq ...string) {
	t.Helper()
	require.Equal(t, seq, rec.Seq)
	require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
	n, err := p.Ours.Read(make([]byte, 10))
	require.Zero(t, n)
	require.Equal(t, io.EOF, err)
}

// TestShutdownOnceSequence: 0, then -1/WANT_READ while the peer has not
// answered, then 1 once its close_notify is in.
func TestShutdownOnceSequence(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		p.Exchange(t)
		require.Equal(t, "sent=false received=false", p.Ours.ShutdownState().String())
		rec := shutdownOnceTwice(t, p)

		tlstest.Wait(t, p.PeerAnswer(), "peer's answer")
		// The peer's FIN follows its close_notify: once poll reports it,
		// the alert is in our receive queue and the next call completes.
		require.NoError(t, tlstest.Poll(p.OurSock, unix.POLLRDHUP, tlstest.Timeout))
		require.NoError(t, p.Ours.Retry(tlstest.Context(t), rec.Step))
		requireShutdownDone(t, p, rec, "0", "-1/WANT_READ", "1")
	})
}

// TestShutdownOnceWantWrite: the peer stops reading, so our close_notify
// does not fit in the kernel (-1/WANT_WRITE); once the peer drains, Retry
// sends it (0), and the peer's answer completes the exchange (1).
func TestShutdownOnceWantWrite(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.FillSpec(tc))
		p.Exchange(t)
		data := tlstest.Pattern(tlstest.FillSize)
		p.FillSendQueue(t, data)
		rec := &tlstest.Steps{Conn: p.Ours}

		r, err := rec.Once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantWrite, openssl.ErrWantWrite, wantWriteMsg)
		// OpenSSL marks the alert sent when it queues it.
		require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
		_, err = p.Ours.Write([]byte("x"))
		require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

		drained := tlstest.Go(func() error {
			got := make([]byte, len(data))
			if _, err := io.ReadFull(p.Peer, got); err != nil {
				return err
			}
			if string(got) != string(data) {
				return errors.New("peer received other bytes than we wrote")
			}
			return nil
		})
		tlstest.Wait(t, drained, "peer's drain")
		// Writable again: the next call puts the alert into the kernel.
		require.NoError(t, tlstest.Poll(p.OurSock, unix.POLLOUT, tlstest.Timeout))
		require.NoError(t, p.Ours.Retry(tlstest.Context(t), rec.Step))
		require.Equal(t, []string{"-1/WANT_WRITE", "0"}, rec.Seq)

		tlstest.Wait(t, p.PeerAnswer(), "peer's answer")
		require.NoError(t, tlstest.Poll(p.OurSock, unix.POLLRDHUP, tlstest.Timeout))
		require.NoError(t, p.Ours.Retry(tlstest.Context(t), rec.Step))
		require.Equal(t, []string{"-1/WANT_WRITE", "0", "1"}, rec.Seq)
		require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
	})
}

// TestShutdownOnceAfterTimedOutWrite: after a Write gave up at its
// deadline, part of a record is still inside OpenSSL, and close_notify
// cannot follow it. OpenSSL versions would report that differently (3.0:
// -1/WANT_WRITE, then "bad write retry"; 3.5: -1/WANT_WRITE twice, then
// -1/WANT_READ with the alert silently dropped), so the package answers
// first, the same on both: ErrWriteIncomplete, nothing sent, from
// ShutdownOnce, Retry, Shutdown and CloseWrite alike. The peer receives
// exactly the n bytes Write reported and then sees the stream cut inside a
// record.
func TestShutdownOnceAfterTimedOutWrite(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Transport: tlstest.Unix, OurSndBuf: 1})
		p.Exchange(t)
		require.NoError(t, p.Ours.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		n, err := p.Ours.Write(make([]byte, 1<<20))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NoError(t, p.Ours.SetWriteDeadline(time.Time{}))

		var received atomic.Int64
		peerDone := tlstest.Go(func() error {
			_, err := io.Copy(countingWriter{&received}, p.Peer)
			return err
		})
		rec := &tlstest.Steps{Conn: p.Ours}
		err = p.Ours.Retry(tlstest.Context(t), rec.Step)
		require.Equal(t, []string{"-1/ErrWriteIncomplete"}, rec.Seq)
		require.ErrorIs(t, err, openssl.ErrWriteIncomplete)
		require.ErrorIs(t, p.Ours.Shutdown(tlstest.Context(t)), openssl.ErrWriteIncomplete)
		require.ErrorIs(t, p.Ours.CloseWrite(), openssl.ErrWriteIncomplete)
		require.False(t, p.Ours.ShutdownState().Sent(), "nothing was sent")

		require.NoError(t, p.Ours.Close(), "the error was reported; Close just closes")
		require.ErrorIs(t, tlstest.Result(t, peerDone, "peer's read"), io.ErrUnexpectedEOF)
		require.Equal(t, int64(n), received.Load(), "the peer receives what Write reported")
	})
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(b []byte) (int, error) {
	w.n.Add(int64(len(b)))
	return len(b), nil
}

// TestShutdownOnceBeforeHandshake: nothing is sent, and the other shutdown
// calls fail the same way.
func TestShutdownOnceBeforeHandshake(t *testing.T) {
	for _, role := range tlstest.Roles {
		t.Run(role.String(), func(t *testing.T) {
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Role: role}})
			ours, peerSock := p.Ours, p.PeerSock

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
			require.NoError(t, peerSock.SetReadDeadline(time.Now().Add(tlstest.Timeout)))
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
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		p.Exchange(t)
		require.NoError(t, p.ResetPeer())

		_, readErr := p.Ours.Read(make([]byte, 10))
		require.ErrorIs(t, readErr, syscall.ECONNRESET)

		r1, err1 := p.Ours.ShutdownOnce()
		r2, err2 := p.Ours.ShutdownOnce()
		require.Equal(t, openssl.ShutdownFailed, r1)
		require.Equal(t, openssl.ShutdownFailed, r2)
		require.ErrorIs(t, err1, syscall.ECONNRESET)
		require.Same(t, err1, err2)
		var e *openssl.Error
		require.ErrorAs(t, err1, &e)
		require.Equal(t, "read", e.Op, "the error of the call that failed")
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.Equal(t, syscall.ECONNRESET, e.Errno)
		require.False(t, p.Ours.ShutdownState().Sent())
		require.ErrorIs(t, p.Ours.Shutdown(context.Background()), syscall.ECONNRESET)
	}, tlstest.Path.OnSocket)
}

// TestShutdownOnceApplicationDataAfterCloseNotify documents what a second
// SSL_shutdown does when the peer sends application data after our
// close_notify: OpenSSL 3.0 fails with SSL_ERROR_SSL, reason "application
// data after close notify" (SSL_R_APPLICATION_DATA_AFTER_CLOSE_NOTIFY). It
// is fatal: later calls, Read included, return that same error without
// calling OpenSSL. Shutdown avoids this by reading with SSL_read
// (TestShutdown/peer_keeps_sending).
func TestShutdownOnceApplicationDataAfterCloseNotify(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		p.Exchange(t)
		rec := &tlstest.Steps{Conn: p.Ours}
		_, err := rec.Once()
		require.NoError(t, err)
		tlstest.Wait(t, tlstest.Go(func() error {
			_, err := p.Peer.Write([]byte("more data"))
			return err
		}), "peer's write")
		require.NoError(t, tlstest.Poll(p.OurSock, unix.POLLIN, tlstest.Timeout))

		_, err2 := rec.Once()
		_, err3 := rec.Once()
		require.Equal(t, []string{"0", "-1/SSL", "-1/SSL"}, rec.Seq)
		var e *openssl.Error
		require.ErrorAs(t, err2, &e)
		require.Equal(t, "shutdown", e.Op)
		require.Equal(t, openssl.ErrorSSL, e.Code)
		require.Len(t, e.Queue, 1)
		require.Equal(t, "application data after close notify", e.Queue[0].ReasonText)
		require.Equal(t, "SSL routines", e.Queue[0].LibText)
		require.EqualError(t, err2, "openssl: shutdown: SSL error: application data after close notify")
		require.EqualError(t, err3, err2.Error())
		_, err4 := p.Ours.ShutdownOnce()
		require.Same(t, err3, err4, "the stored error, OpenSSL not called")
		_, readErr := p.Ours.Read(make([]byte, 10))
		require.Same(t, err3, readErr)
		require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())

		// The peer got our close_notify and nothing after it.
		require.NoError(t, tlstest.ReadEOF(p.Peer))
	})
}

// TestRetryBounds: Retry gives up when its context or the connection's
// deadline ends, with both the step's last error and the cause.
func TestRetryBounds(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		t.Run("context", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			rec := &tlstest.Steps{Conn: p.Ours}
			_, err := rec.Once()
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			defer cancel()
			tlstest.Within(t, shortTimeout+boundMargin, "Retry", func() { err = p.Ours.Retry(ctx, rec.Step) })
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, openssl.ErrWantRead)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			require.Equal(t, "0", rec.Seq[0])
			for _, s := range rec.Seq[1:] {
				require.Equal(t, "-1/WANT_READ", s)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			rec := &tlstest.Steps{Conn: p.Ours}
			_, err := rec.Once()
			require.NoError(t, err)
			require.NoError(t, p.Ours.SetDeadline(time.Now().Add(shortTimeout)))
			tlstest.Within(t, shortTimeout+boundMargin, "Retry", func() { err = p.Ours.Retry(context.Background(), rec.Step) })
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.ErrorIs(t, err, openssl.ErrWantRead)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
		})
		t.Run("nil context", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			called := false
			err := p.Ours.Retry(nil, func() error { called = true; return nil }) //nolint:staticcheck // nil ctx on purpose
			require.ErrorIs(t, err, openssl.ErrNilContext)
			require.False(t, called)
		})
	}, tlstest.Path.OnSocket)
}

// TestShutdown covers the bidirectional Shutdown against each kind of peer,
// over every Path. The peer reads while we shut down: over net.Pipe, our
// alert's Write waits for it.
func TestShutdown(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		t.Run("peer answers", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			data := tlstest.Pattern(256 << 10)
			peer := tlstest.Go(func() error {
				got, err := io.ReadAll(p.Peer) // up to our close_notify
				if err != nil {
					return err
				}
				if string(got) != string(data) {
					return errors.New("peer received other bytes than we wrote")
				}
				return p.Peer.Close()
			})
			_, err := p.Ours.Write(data)
			require.NoError(t, err)
			require.NoError(t, p.Ours.Shutdown(tlstest.Context(t)))
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
			require.Zero(t, p.Ours.DiscardedBytes())
			// Twice: nothing more to do.
			require.NoError(t, p.Ours.Shutdown(tlstest.Context(t)))
			_, err = p.Ours.Write([]byte("x"))
			require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)
			n, err := p.Ours.Read(make([]byte, 1))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		})
		t.Run("peer closes without close_notify", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			p.Exchange(t)
			peer := tlstest.Go(func() error {
				if err := tlstest.ReadEOF(p.Peer); err != nil { // our close_notify
					return err
				}
				return p.PeerEnd.Close() // FIN (or the outer alert), no alert of its own
			})
			err := p.Ours.Shutdown(tlstest.Context(t))
			tlstest.Wait(t, peer, "peer")
			require.ErrorIs(t, err, openssl.ErrTruncated)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.Equal(t, openssl.ErrorSyscall, asError(t, err).Code)
			require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
		})
		// The peer reads our alert and never answers.
		neverAnswers := func(t *testing.T, shutdown func(p *tlstest.Pair) error) error {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			p.Exchange(t)
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.Peer) })
			var err error
			tlstest.Within(t, shortTimeout+boundMargin, "Shutdown", func() { err = shutdown(p) })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			require.True(t, asError(t, err).Timeout())
			require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
			tlstest.Wait(t, peer, "peer's read of our close_notify") // our alert did go out
			return err
		}
		t.Run("peer never answers, context", func(t *testing.T) {
			err := neverAnswers(t, func(p *tlstest.Pair) error {
				ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
				defer cancel()
				return p.Ours.Shutdown(ctx)
			})
			require.ErrorIs(t, err, context.DeadlineExceeded)
		})
		t.Run("peer never answers, deadline", func(t *testing.T) {
			err := neverAnswers(t, func(p *tlstest.Pair) error {
				require.NoError(t, p.Ours.SetDeadline(time.Now().Add(shortTimeout)))
				return p.Ours.Shutdown(context.Background())
			})
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
		})
		t.Run("peer keeps sending", func(t *testing.T) {
			const n = 4 << 20
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			peer := tlstest.Go(func() error {
				if err := tlstest.ReadEOF(p.Peer); err != nil { // our close_notify
					return err
				}
				// crypto/tls still writes after the peer's close_notify.
				if _, err := p.Peer.Write(tlstest.Pattern(n)); err != nil {
					return err
				}
				return p.Peer.Close()
			})
			require.NoError(t, p.Ours.Shutdown(tlstest.Context(t)))
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, int64(n), p.Ours.DiscardedBytes())
			require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
		})
		t.Run("after Read returned io.EOF", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			p.Exchange(t)
			peer := tlstest.Go(func() error {
				if path.Buffers() {
					return p.Peer.Close()
				}
				// Our answer needs a reader on an open pipe.
				if err := p.Peer.CloseWrite(); err != nil {
					return err
				}
				return tlstest.ReadEOF(p.Peer)
			})
			n, err := p.Ours.Read(make([]byte, 10))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
			require.Equal(t, "sent=false received=true", p.Ours.ShutdownState().String())
			// A context that would outlast the test: Shutdown must not wait.
			tlstest.Within(t, boundMargin, "Shutdown", func() { err = p.Ours.Shutdown(context.Background()) })
			require.NoError(t, err)
			require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
			tlstest.Wait(t, peer, "peer")
		})
		t.Run("nil context", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			require.ErrorIs(t, p.Ours.Shutdown(nil), openssl.ErrNilContext) //nolint:staticcheck // nil ctx on purpose
			require.Equal(t, "sent=false received=false", p.Ours.ShutdownState().String())
		})
	})
}

// TestCloseWrite: half-close in both directions, over every Path. Our
// CloseWrite also half-closes a conn that has a CloseWrite of its own
// (Path.HalfCloses): the peer's end then reads EOF below crypto/tls.
func TestCloseWrite(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		t.Run("request then response", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			_, halfCloses := p.Ours.NetConn().(interface{ CloseWrite() error })
			require.Equal(t, path.HalfCloses(), halfCloses)
			request, response := tlstest.Pattern(100<<10), tlstest.Pattern(300 << 10)[7:]
			peer := tlstest.Go(func() error {
				got, err := io.ReadAll(p.Peer) // the request, up to our close_notify
				if err != nil {
					return err
				}
				if string(got) != string(request) {
					return errors.New("peer received other bytes than the request")
				}
				if halfCloses {
					if n, err := p.PeerEnd.Read(make([]byte, 1)); n != 0 || err != io.EOF {
						return fmt.Errorf("below the alert: %d bytes, %v; want the inner conn's EOF", n, err)
					}
				}
				if _, err := p.Peer.Write(response); err != nil {
					return err
				}
				return p.Peer.Close()
			})
			_, err := p.Ours.Write(request)
			require.NoError(t, err)
			require.NoError(t, p.Ours.CloseWrite())
			require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
			_, err = p.Ours.Write([]byte("x"))
			require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

			got, err := io.ReadAll(p.Ours)
			require.NoError(t, err, "io.EOF after the response")
			require.Equal(t, response, got)
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
		})
		t.Run("peer half-closes, we keep writing", func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
			data := tlstest.Pattern(200 << 10)
			peer := make(chan []byte, 1)
			peerErr := tlstest.Go(func() error {
				if err := p.Peer.CloseWrite(); err != nil { // close_notify only
					return err
				}
				got, err := io.ReadAll(p.Peer)
				peer <- got
				return err
			})
			n, err := p.Ours.Read(make([]byte, 10))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
			require.Equal(t, "sent=false received=true", p.Ours.ShutdownState().String())
			_, err = p.Ours.Write(data)
			require.NoError(t, err)
			require.NoError(t, p.Ours.Close())
			tlstest.Wait(t, peerErr, "peer's read")
			require.Equal(t, data, <-peer)
		})
	})
}

// TestShutdownOnceDuringParkedWrite: while a Write is parked mid-record
// (the peer does not read), ShutdownOnce must not put the alert behind half
// a record. It returns -1/WANT_WRITE without calling SSL_shutdown; Retry
// waits for the Write to end (the peer starts reading), then sends the
// alert. The peer receives every byte written, then a clean close_notify.
func TestShutdownOnceDuringParkedWrite(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Transport: tlstest.Unix, OurSndBuf: 4096, PeerRcvBuf: 4096})
		p.Exchange(t)
		data := tlstest.Pattern(1 << 20)
		wrote := tlstest.Go(func() error {
			_, err := p.Ours.Write(data)
			return err
		})
		// Bytes in our send queue mean the Write holds the write lock: the
		// peer reads nothing, so it cannot finish.
		tlstest.PollUntil(t, "the Write to start", func() bool {
			n, err := p.Ours.SendQueueLen()
			return err == nil && n > 0
		})
		rec := &tlstest.Steps{Conn: p.Ours}
		_, err := rec.Once()
		require.ErrorIs(t, err, openssl.ErrWantWrite)
		require.Equal(t, openssl.ErrorWantWrite, asError(t, err).Code)
		require.False(t, p.Ours.ShutdownState().Sent(), "no SSL_shutdown while the Write is parked")

		ctx := tlstest.Context(t)
		retried := tlstest.Go(func() error { return p.Ours.Retry(ctx, rec.Step) })
		var got bytes.Buffer
		peerRead := tlstest.Go(func() error {
			_, err := io.Copy(&got, p.Peer)
			return err
		})
		tlstest.Wait(t, wrote, "the parked Write")
		tlstest.Wait(t, retried, "Retry of ShutdownOnce")
		require.Equal(t, "-1/WANT_WRITE", rec.Seq[0])
		require.Equal(t, "0", rec.Seq[len(rec.Seq)-1], "Retry ends when the alert is sent: %v", rec.Seq)
		tlstest.Wait(t, peerRead, "the peer's read up to close_notify")
		require.True(t, bytes.Equal(data, got.Bytes()), "the peer got %d of %d bytes", got.Len(), len(data))
	})
}

// TestShutdownCanceledIsNotTimeout: a Shutdown whose context is canceled
// while it waits for the peer's close_notify returns context.Canceled, not
// ErrShutdownTimeout, and its Timeout() is false.
func TestShutdownCanceledIsNotTimeout(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		p.Exchange(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := tlstest.Go(func() error { return p.Ours.Shutdown(ctx) })
		// The peer reads our close_notify; then nothing more can come.
		require.NoError(t, tlstest.ReadEOF(p.Peer))
		cancel()
		err := tlstest.Result(t, done, "Shutdown")
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, openssl.ErrShutdownTimeout)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.False(t, ne.Timeout())
	}, tlstest.Path.OnSocket)
}

// TestShutdownExpiredContextStillSendsAlert: a context that has already
// passed does not keep our close_notify from going out when the socket can
// take it; only the wait for the peer's times out.
func TestShutdownExpiredContextStillSendsAlert(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		p.Exchange(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer cancel()
		err := p.Ours.Shutdown(ctx)
		require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, p.Ours.ShutdownState().Sent())
		require.NoError(t, tlstest.ReadEOF(p.Peer), "the peer reads our close_notify")
	})
}
