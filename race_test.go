package openssl_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestConcurrentReadWrite runs one Read loop and one Write loop on the same
// Conn at once against a crypto/tls echo peer: 2000 messages of varying
// size, at most window of them in flight, each checked as it comes back.
// It runs on the socket-fd path and on the generic path.
func TestConcurrentReadWrite(t *testing.T) {
	tlstest.EachPath(t, concurrentReadWrite, tlstest.Path.OnSocket)
}

func concurrentReadWrite(t *testing.T, path tlstest.Path) {
	const (
		messages = 2000
		window   = 8
	)
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		before := liveSSL()
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		require.NoError(t, p.Ours.SetDeadline(time.Now().Add(4*tlstest.Timeout)))
		require.NoError(t, p.PeerTCP().SetDeadline(time.Now().Add(4*tlstest.Timeout)))
		echoDone := make(chan error, 1)
		go func() {
			_, err := io.Copy(p.Peer, p.Peer) // until our close_notify
			echoDone <- err
		}()

		message := func(i int) []byte {
			body := randomBytes(uint64(i), 1+(i*7919)%3000)
			m := binary.BigEndian.AppendUint32(nil, uint32(i))
			m = binary.BigEndian.AppendUint16(m, uint16(len(body)))
			return append(m, body...)
		}
		tokens := make(chan struct{}, window)
		for range window {
			tokens <- struct{}{}
		}
		stopWriter := make(chan struct{})
		writeDone := make(chan error, 1)
		go func() {
			for i := range messages {
				select {
				case <-tokens:
				case <-stopWriter:
					writeDone <- errors.New("stopped")
					return
				}
				if _, err := p.Ours.Write(message(i)); err != nil {
					writeDone <- err
					return
				}
			}
			writeDone <- nil
		}()

		readAll := func() error {
			hdr := make([]byte, 6)
			for i := range messages {
				if _, err := io.ReadFull(p.Ours, hdr); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
				body := make([]byte, binary.BigEndian.Uint16(hdr[4:]))
				if _, err := io.ReadFull(p.Ours, body); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
				want := message(i)
				if got := append(hdr, body...); !bytes.Equal(got, want) {
					return fmt.Errorf("message %d: got %d bytes, want %d, or different content", i, len(got), len(want))
				}
				hdr = make([]byte, 6)
				tokens <- struct{}{}
			}
			return nil
		}
		err := readAll()
		close(stopWriter)
		require.NoError(t, err)
		require.NoError(t, <-writeDone)

		// Our close_notify ends the echo loop.
		require.NoError(t, p.Ours.Close())
		require.NoError(t, <-echoDone)
		require.Equal(t, before, liveSSL())
	})
}

// TestCloseWakesBlockedCalls: Close from another goroutine ends a Read that
// waits for data and a Write that waits because the peer does not read,
// alone or both at once. They report net.ErrClosed, Close stays bounded, and
// the SSL is freed.
func TestCloseWakesBlockedCalls(t *testing.T) {
	for _, blocked := range []struct {
		name        string
		read, write bool
	}{
		{"Read", true, false},
		{"Write", false, true},
		{"Read and Write", true, true},
	} {
		t.Run(blocked.name, func(t *testing.T) {
			tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
				before := liveSSL()
				p := tlstest.Connect(t, tlstest.Spec{Case: tc, OurSndBuf: 8 << 10, PeerRcvBuf: 8 << 10})
				type result struct {
					n   int
					err error
				}
				big := make([]byte, 8<<20) // more than the pipe holds
				readRes, writeRes := make(chan result, 1), make(chan result, 1)
				if blocked.read {
					go func() {
						n, err := p.Ours.Read(make([]byte, 16)) // the peer sends nothing
						readRes <- result{n, err}
					}()
					waitParked(t, "openssl.(*Conn).Read(", "TestCloseWakesBlockedCalls")
				}
				if blocked.write {
					go func() {
						n, err := p.Ours.Write(big)
						writeRes <- result{n, err}
					}()
					waitParked(t, "openssl.(*Conn).Write(", "TestCloseWakesBlockedCalls")
				}

				tlstest.Within(t, openssl.DefaultCloseTimeout+2*time.Second, "Close", func() { p.Ours.Close() })
				if blocked.read {
					var res result
					tlstest.Within(t, tlstest.Timeout, "the blocked Read", func() { res = <-readRes })
					require.Zero(t, res.n)
					require.ErrorIs(t, res.err, net.ErrClosed)
					require.Equal(t, "read", asError(t, res.err).Op)
				}
				if blocked.write {
					var res result
					tlstest.Within(t, tlstest.Timeout, "the blocked Write", func() { res = <-writeRes })
					require.Less(t, res.n, len(big))
					require.ErrorIs(t, res.err, net.ErrClosed)
					require.Equal(t, "write", asError(t, res.err).Op)
				}
				require.Equal(t, before, liveSSL(), "Close freed the SSL")
			})
		})
	}
}

// waitParked waits until a goroutine started by creator (a function name)
// is inside fn (a frame such as "openssl.(*Conn).Read(") and parked in the
// netpoller, so that a test knows a call really blocks rather than has not
// started yet. It inspects the stacks, bounded by tlstest.Timeout.
func waitParked(t testing.TB, fn, creator string) {
	t.Helper()
	deadline := time.Now().Add(tlstest.Timeout)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "runtime_pollWait") &&
				strings.Contains(g, "created by ") && strings.Contains(g, creator) {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no goroutine of %s parked in %s within %v", creator, fn, tlstest.Timeout)
}

func TestCloseTwice(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		before := liveSSL()
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		require.NoError(t, p.Ours.Close())
		err := p.Ours.Close()
		require.ErrorIs(t, err, net.ErrClosed)
		require.Equal(t, "close", asError(t, err).Op)
		require.Equal(t, "openssl: close: "+net.ErrClosed.Error(), err.Error())
		require.Equal(t, before, liveSSL())
	}, tlstest.Path.OnSocket)
}

func TestUseAfterClose(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		before := liveSSL()
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		require.NoError(t, p.Ours.Close())
		require.Equal(t, before, liveSSL())

		_, err := p.Ours.Read(make([]byte, 1))
		require.ErrorIs(t, err, net.ErrClosed)
		require.Equal(t, "read", asError(t, err).Op)

		_, err = p.Ours.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed)
		require.Equal(t, "write", asError(t, err).Op)

		res, err := p.Ours.ShutdownOnce()
		require.Equal(t, openssl.ShutdownFailed, res)
		require.ErrorIs(t, err, net.ErrClosed)
		require.Equal(t, "shutdown", asError(t, err).Op)

		// The state is still there, frozen at Close: our alert went out.
		require.True(t, p.Ours.ConnectionState().HandshakeComplete)
		require.True(t, p.Ours.ShutdownState().Sent())
	}, tlstest.Path.OnSocket)
}

func TestUseAfterCloseBeforeHandshake(t *testing.T) {
	for _, r := range tlstest.Roles {
		t.Run(r.String(), func(t *testing.T) {
			before := liveSSL()
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Role: r}})
			require.NoError(t, p.Ours.Close())
			require.Equal(t, before, liveSSL())
			err := p.Ours.Handshake()
			require.ErrorIs(t, err, net.ErrClosed)
			require.Equal(t, "handshake", asError(t, err).Op)
			_, err = p.Ours.Read(make([]byte, 1))
			require.ErrorIs(t, err, net.ErrClosed)
			_, err = p.Ours.Write([]byte("x"))
			require.ErrorIs(t, err, net.ErrClosed)
		})
	}
}
