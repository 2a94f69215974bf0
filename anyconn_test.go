package openssl_test

import (
	"bufio"
	"context"
	"crypto/tls"
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

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// Tests of the generic path: our Conn over net.Conns that are not exactly
// *net.TCPConn or *net.UnixConn (net.Pipe, wrappers over TCP, *tls.Conn),
// against crypto/tls peers, TLS 1.2 and 1.3, with our Conn as client and as
// server. Shutdown and close tests that only need a socket wrapped in a
// plain struct run on both paths in shutdown_test.go and close_test.go.

// countingConn is a wrapper that counts the bytes through its Read and
// Write. It embeds the net.Conn interface, so it exposes no socket.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

// tcpCountingConn embeds *net.TCPConn, as metrics and rate-limiting
// wrappers do, and has Read and Write of its own (counting ones): it exposes
// the socket (SyscallConn, CloseWrite are promoted) but must not be bypassed.
type tcpCountingConn struct {
	*net.TCPConn
	counts *countingConn // its Conn is the TCPConn
}

func (c *tcpCountingConn) Read(b []byte) (int, error)  { return c.counts.Read(b) }
func (c *tcpCountingConn) Write(b []byte) (int, error) { return c.counts.Write(b) }

// tlsCountingConn is tcpCountingConn's twin for a *tls.Conn: our Conn in
// TLS, with the outer connection's CloseWrite.
type tlsCountingConn struct {
	*tls.Conn
	counts *countingConn // its Conn is the *tls.Conn
}

func (c *tlsCountingConn) Read(b []byte) (int, error)  { return c.counts.Read(b) }
func (c *tlsCountingConn) Write(b []byte) (int, error) { return c.counts.Write(b) }

// optInConn is a tcpCountingConn that asks for the socket-fd path.
type optInConn struct{ *tcpCountingConn }

func (optInConn) UseSocketFD() bool { return true }

// innerKind is a kind of net.Conn our Conn runs over on the generic path.
type innerKind struct {
	name string
	// ends returns the client's and the server's end of a transport.
	ends func(t testing.TB) (client, server net.Conn)
	// wrap makes what our Conn is given from our end, and the counts of
	// the bytes that go through it.
	wrap func(net.Conn) (net.Conn, *countingConn)
}

var innerKinds = []innerKind{
	{"pipe", pipeEnds, wrapCounting},
	{"wrapper", tcpEnds, wrapCounting},
	{"tcp-embed", tcpEnds, func(c net.Conn) (net.Conn, *countingConn) {
		counts := &countingConn{Conn: c}
		return &tcpCountingConn{TCPConn: c.(*net.TCPConn), counts: counts}, counts
	}},
	// TLS in TLS: our Conn over a *tls.Conn.
	{"tls", tlsEnds, func(c net.Conn) (net.Conn, *countingConn) {
		counts := &countingConn{Conn: c}
		return &tlsCountingConn{Conn: c.(*tls.Conn), counts: counts}, counts
	}},
}

func pipeEnds(t testing.TB) (net.Conn, net.Conn) {
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func tcpEnds(t testing.TB) (net.Conn, net.Conn) {
	c, s := tlstest.TCPPair(t)
	return c, s
}

// tlsEnds is a crypto/tls connection over TCP; its handshakes run when the
// ends are first used.
func tlsEnds(t testing.TB) (net.Conn, net.Conn) {
	c, s := tlstest.TCPPair(t)
	client := tls.Client(c, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	server := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}})
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func wrapCounting(c net.Conn) (net.Conn, *countingConn) {
	counts := &countingConn{Conn: c}
	return counts, counts
}

// genEach runs f for every inner kind, TLS version and role.
func genEach(t *testing.T, f func(t *testing.T, tc tlstest.Case, k innerKind)) {
	for _, k := range innerKinds {
		t.Run(k.name, func(t *testing.T) {
			tlstest.Each(t, func(t *testing.T, tc tlstest.Case) { f(t, tc, k) })
		})
	}
}

// genPair is our Conn on the generic path facing a crypto/tls peer.
type genPair struct {
	ours       *openssl.Conn
	peer       *tls.Conn
	peerRaw    net.Conn          // the peer's end, below crypto/tls
	rec        *tlstest.Recorder // every byte the peer's crypto/tls read
	inner      net.Conn          // what our Conn runs over
	counts     *countingConn     // every byte through inner
	peerCounts *countingConn     // every byte through the peer's end
}

// genNewPair connects our Conn (over k's inner conn) and a crypto/tls peer
// and runs both handshakes. Every wait of the peer is bounded by
// tlstest.Timeout; both ends are closed at cleanup.
func genNewPair(t testing.TB, tc tlstest.Case, k innerKind, policy *openssl.ClosePolicy) *genPair {
	t.Helper()
	c, s := k.ends(t)
	ourRaw, peerRaw := c, s
	if tc.Role == tlstest.WeServer {
		ourRaw, peerRaw = s, c
	}
	require.NoError(t, peerRaw.SetDeadline(time.Now().Add(tlstest.Timeout)))
	inner, counts := k.wrap(ourRaw)
	p := &genPair{peerRaw: peerRaw, inner: inner, counts: counts, peerCounts: &countingConn{Conn: peerRaw}}
	p.rec = tlstest.NewRecorder(p.peerCounts)
	var err error
	if tc.Role == tlstest.WeServer {
		p.ours, err = openssl.Server(inner, tlstest.ServerCtx(t))
		p.peer = tls.Client(p.rec, &tls.Config{
			RootCAs: pki.Pool, ServerName: "localhost",
			MinVersion: tc.Version, MaxVersion: tc.Version,
		})
	} else {
		p.ours, err = openssl.Client(inner, tlstest.ClientCtx(t))
		p.peer = tls.Server(p.rec, &tls.Config{
			Certificates: []tls.Certificate{pki.TLSCert},
			MinVersion:   tc.Version, MaxVersion: tc.Version,
		})
	}
	require.NoError(t, err)
	// The peer's end first: over net.Pipe, a Close whose alert nobody reads
	// would wait for its timeout.
	t.Cleanup(func() { p.peerRaw.Close(); p.ours.Close() })
	if policy != nil {
		p.ours.SetClosePolicy(*policy)
	}
	genHandshake(t, p)
	require.Equal(t, tc.Version, p.ours.ConnectionState().Version)
	return p
}

// genHandshake runs both handshakes, which must succeed.
func genHandshake(t testing.TB, p *genPair) {
	t.Helper()
	ourErr, peerErr := (&tlstest.Pair{Ours: p.ours, Peer: p.peer}).Handshake()
	require.NoError(t, ourErr, "our handshake")
	require.NoError(t, peerErr, "peer handshake")
}

// exchange is tlstest's Exchange: ping, pong. Afterwards each side has read
// everything the other sent, TLS 1.3 session tickets included.
func (p *genPair) exchange(t testing.TB) {
	t.Helper()
	(&tlstest.Pair{Ours: p.ours, Peer: p.peer}).Exchange(t)
}

// peerAnswer: the peer reads up to our close_notify, then its Close sends
// its own.
func (p *genPair) peerAnswer() <-chan error {
	return (&tlstest.Pair{Peer: p.peer}).PeerAnswer()
}

// TestGenericPathChosen: wrappers go through their own Read and Write (the
// counts see the handshake), a SocketFD that opts in is bypassed (its counts
// stay 0), and data flows either way.
func TestGenericPathChosen(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		name := "tcp-embed"
		if optIn {
			name = "opt-in"
		}
		t.Run(name, func(t *testing.T) {
			c, s := tlstest.TCPPair(t)
			counts := &countingConn{Conn: c}
			var inner net.Conn = &tcpCountingConn{TCPConn: c, counts: counts}
			if optIn {
				inner = optInConn{inner.(*tcpCountingConn)}
			}
			ours, err := openssl.Client(inner, tlstest.ClientCtx(t))
			require.NoError(t, err)
			t.Cleanup(func() { ours.Close() })
			p := &genPair{ours: ours, peer: tls.Server(s, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}})}
			genHandshake(t, p)
			p.exchange(t)
			if optIn {
				require.Zero(t, counts.read.Load()+counts.written.Load())
			} else {
				require.Positive(t, counts.read.Load())
				require.Positive(t, counts.written.Load())
			}
		})
	}
}

// TestGenericShutdownOnceSequence: 0, then -1/WANT_READ, whether or not the
// peer's answer is already on its way: ShutdownOnce never reads the inner
// conn. Retry's first call still says -1/WANT_READ, Retry reads, and the
// next call returns 1. The peer reads from the start: over net.Pipe, a
// Write (ShutdownOnce's too) waits until the peer reads.
func TestGenericShutdownOnceSequence(t *testing.T) {
	genEach(t, func(t *testing.T, tc tlstest.Case, k innerKind) {
		p := genNewPair(t, tc, k, nil)
		p.exchange(t)
		peer := p.peerAnswer()
		rec := &tlstest.Steps{Conn: p.ours}
		r, err := rec.Once()
		require.NoError(t, err)
		require.Equal(t, openssl.ShutdownSent, r)
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
		r, err = rec.Once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantRead, openssl.ErrWantRead, wantReadMsg)
		_, err = p.ours.Write([]byte("x"))
		require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)

		require.NoError(t, p.ours.Retry(tlstest.Context(t), rec.Step))
		tlstest.Wait(t, peer, "peer's answer")
		require.Equal(t, []string{"0", "-1/WANT_READ", "-1/WANT_READ", "1"}, rec.Seq)
		require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		n, err := p.ours.Read(make([]byte, 10))
		require.Zero(t, n)
		require.Equal(t, io.EOF, err)
	})
}

// TestGenericShutdownOnceWantWrite: on the generic path WANT_WRITE means the
// inner conn's Write did not take the whole alert before the write
// deadline. Over net.Pipe that is a peer that does not read. The next call,
// once the peer reads, writes the rest and returns 0; the peer got one
// whole alert record.
func TestGenericShutdownOnceWantWrite(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := genNewPair(t, tc, innerKinds[0], nil) // net.Pipe
		p.exchange(t)
		mark := p.rec.Mark()
		rec := &tlstest.Steps{Conn: p.ours}
		require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
		r, err := rec.Once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantWrite, openssl.ErrWantWrite, wantWriteMsg)
		require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
		require.NoError(t, p.ours.SetWriteDeadline(time.Time{}))

		peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
		require.NoError(t, p.ours.Retry(tlstest.Context(t), rec.Step))
		require.Equal(t, []string{"-1/WANT_WRITE", "0"}, rec.Seq)
		tlstest.Wait(t, peer, "peer's read of our close_notify")
		requireOneAlertRecord(t, tc, p.rec.Since(mark))
	})
}

// TestGenericShutdown: the bidirectional Shutdown against each kind of peer.
func TestGenericShutdown(t *testing.T) {
	genEach(t, func(t *testing.T, tc tlstest.Case, k innerKind) {
		t.Run("peer answers", func(t *testing.T) {
			p := genNewPair(t, tc, k, nil)
			data := tlstest.Pattern(256 << 10)
			peer := tlstest.Go(func() error {
				got, err := io.ReadAll(p.peer)
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
			require.NoError(t, p.ours.Shutdown(tlstest.Context(t)))
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
			require.Zero(t, p.ours.DiscardedBytes())
			require.NoError(t, p.ours.Shutdown(tlstest.Context(t)))
		})
		t.Run("peer closes without close_notify", func(t *testing.T) {
			p := genNewPair(t, tc, k, nil)
			p.exchange(t)
			peer := tlstest.Go(func() error {
				if err := tlstest.ReadEOF(p.peer); err != nil {
					return err
				}
				return p.peerRaw.Close()
			})
			err := p.ours.Shutdown(tlstest.Context(t))
			tlstest.Wait(t, peer, "peer")
			require.ErrorIs(t, err, openssl.ErrTruncated)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.Equal(t, openssl.ErrorSyscall, asError(t, err).Code)
		})
		t.Run("peer never answers, context", func(t *testing.T) {
			p := genNewPair(t, tc, k, nil)
			p.exchange(t)
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			defer cancel()
			var err error
			tlstest.Within(t, shortTimeout+boundMargin, "Shutdown", func() { err = p.ours.Shutdown(ctx) })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.True(t, asError(t, err).Timeout())
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
			tlstest.Wait(t, peer, "peer's read of our close_notify")
		})
		t.Run("peer never answers, deadline", func(t *testing.T) {
			p := genNewPair(t, tc, k, nil)
			p.exchange(t)
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
			require.NoError(t, p.ours.SetDeadline(time.Now().Add(shortTimeout)))
			var err error
			tlstest.Within(t, shortTimeout+boundMargin, "Shutdown", func() { err = p.ours.Shutdown(context.Background()) })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
			tlstest.Wait(t, peer, "peer's read of our close_notify")
		})
		t.Run("peer keeps sending", func(t *testing.T) {
			const n = 4 << 20
			p := genNewPair(t, tc, k, nil)
			peer := tlstest.Go(func() error {
				if err := tlstest.ReadEOF(p.peer); err != nil {
					return err
				}
				if _, err := p.peer.Write(tlstest.Pattern(n)); err != nil {
					return err
				}
				return p.peer.Close()
			})
			require.NoError(t, p.ours.Shutdown(tlstest.Context(t)))
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, int64(n), p.ours.DiscardedBytes())
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
	})
}

// TestGenericCloseWrite: request, close_notify and, when the inner conn
// has one, its own CloseWrite (the peer's end then reads EOF below
// crypto/tls), then the whole response.
func TestGenericCloseWrite(t *testing.T) {
	genEach(t, func(t *testing.T, tc tlstest.Case, k innerKind) {
		p := genNewPair(t, tc, k, nil)
		_, halfCloses := p.inner.(interface{ CloseWrite() error })
		request, response := tlstest.Pattern(100<<10), tlstest.Pattern(300 << 10)[7:]
		peer := tlstest.Go(func() error {
			got, err := io.ReadAll(p.peer)
			if err != nil {
				return err
			}
			if string(got) != string(request) {
				return errors.New("peer received other bytes than the request")
			}
			if halfCloses {
				if n, err := p.peerRaw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					return fmt.Errorf("below the alert: %d bytes, %v; want the inner conn's EOF", n, err)
				}
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
		got, err := io.ReadAll(p.ours)
		require.NoError(t, err, "io.EOF after the response")
		require.Equal(t, response, got)
		tlstest.Wait(t, peer, "peer")
		require.Equal(t, k.name == "tcp-embed" || k.name == "tls", halfCloses)
	})
}

// TestGenericClose: each ClosePolicy over the generic path, judged by the
// records the peer read.
func TestGenericClose(t *testing.T) {
	genEach(t, func(t *testing.T, tc tlstest.Case, k innerKind) {
		t.Run("default", func(t *testing.T) {
			p := genNewPair(t, tc, k, nil)
			p.exchange(t)
			mark := p.rec.Mark()
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
			tlstest.Within(t, boundMargin, "Close", func() { require.NoError(t, p.ours.Close()) })
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=false", p.ours.ShutdownState().String())
			requireOneAlertRecord(t, tc, p.rec.Since(mark))
			require.ErrorIs(t, p.ours.Close(), net.ErrClosed)
		})
		t.Run("WaitForPeer", func(t *testing.T) {
			p := genNewPair(t, tc, k, &openssl.ClosePolicy{WaitForPeer: true, Timeout: tlstest.Timeout})
			p.exchange(t)
			peer := p.peerAnswer()
			require.NoError(t, p.ours.Close())
			tlstest.Wait(t, peer, "peer's answer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
		t.Run("WaitForPeer, peer never answers", func(t *testing.T) {
			p := genNewPair(t, tc, k, &openssl.ClosePolicy{WaitForPeer: true, Timeout: shortTimeout})
			p.exchange(t)
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
			var err error
			tlstest.Within(t, shortTimeout+boundMargin, "Close", func() { err = p.ours.Close() })
			require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
			require.Equal(t, "close", asError(t, err).Op)
			tlstest.Wait(t, peer, "peer")
		})
		t.Run("Quiet", func(t *testing.T) {
			p := genNewPair(t, tc, k, &openssl.ClosePolicy{Quiet: true})
			p.exchange(t)
			mark := p.rec.Mark()
			peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.peer) })
			require.NoError(t, p.ours.Close())
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
			require.Empty(t, p.rec.Since(mark))
		})
		t.Run("Lingering and DrainSendQueue", func(t *testing.T) {
			p := genNewPair(t, tc, k, &openssl.ClosePolicy{Lingering: true, DrainSendQueue: true, Timeout: tlstest.Timeout})
			p.exchange(t)
			peer := p.peerAnswer()
			require.NoError(t, p.ours.Close())
			tlstest.Wait(t, peer, "peer")
			require.Equal(t, "sent=true received=true", p.ours.ShutdownState().String())
		})
	})
}

// TestGenericSocketOptions: SetLinger and SendQueueLen reach the socket of
// a wrapper that exposes one, and fail with ErrNoSocket otherwise.
func TestGenericSocketOptions(t *testing.T) {
	for _, k := range innerKinds {
		t.Run(k.name, func(t *testing.T) {
			p := genNewPair(t, tlstest.Case{Version: tls.VersionTLS13}, k, nil)
			p.exchange(t)
			n, qerr := p.ours.SendQueueLen()
			lerr := p.ours.SetLinger(0)
			if k.name != "tcp-embed" {
				for _, err := range []error{qerr, lerr} {
					require.ErrorIs(t, err, openssl.ErrNoSocket)
					require.Contains(t, err.Error(), "openssl: ")
				}
				require.Equal(t, "send queue", asError(t, qerr).Op)
				require.Equal(t, "set linger", asError(t, lerr).Op)
				return
			}
			require.NoError(t, qerr)
			require.Zero(t, n, "the pong acknowledged everything")
			require.NoError(t, lerr)
			require.NoError(t, p.ours.Close())
			require.False(t, p.ours.ShutdownState().Sent(), "abortive: no alert")
			_, err := p.peer.Read(make([]byte, 10))
			require.ErrorIs(t, err, syscall.ECONNRESET)
		})
	}
}

// TestGenericCloseWakesBlockedCalls: Close ends a Read waiting in the inner
// conn and a Write whose peer does not read.
func TestGenericCloseWakesBlockedCalls(t *testing.T) {
	for _, k := range innerKinds {
		t.Run(k.name, func(t *testing.T) {
			p := genNewPair(t, tlstest.Case{Version: tls.VersionTLS13}, k, &openssl.ClosePolicy{Timeout: shortTimeout})
			p.exchange(t)
			read := tlstest.Go(func() error {
				_, err := p.ours.Read(make([]byte, 16))
				return err
			})
			wrote := tlstest.Go(func() error {
				_, err := p.ours.Write(make([]byte, 64<<20)) // more than any pipe holds
				return err
			})
			// Each call is blocked once the peer stops hearing from us: the
			// Write's first records are in flight, the Read has nothing.
			require.Eventually(t, func() bool { return p.counts.written.Load() > 0 }, tlstest.Timeout, time.Millisecond)
			tlstest.Within(t, shortTimeout+boundMargin, "Close", func() { p.ours.Close() })
			for op, ch := range map[string]<-chan error{"read": read, "write": wrote} {
				err := tlstest.Result(t, ch, op)
				require.ErrorIs(t, err, net.ErrClosed, op)
				require.Equal(t, op, asError(t, err).Op)
			}
		})
	}
}

// TestGenericCountsEveryByte: every byte of the TLS stream goes through the
// wrapper, both ways: what it counts is exactly what the peer's end carried,
// handshake and both close_notify alerts included.
func TestGenericCountsEveryByte(t *testing.T) {
	genEach(t, func(t *testing.T, tc tlstest.Case, k innerKind) {
		p := genNewPair(t, tc, k, &openssl.ClosePolicy{WaitForPeer: true, Timeout: tlstest.Timeout})
		up, down := tlstest.Pattern(300<<10), tlstest.Pattern(200 << 10)[3:]
		peer := tlstest.Go(func() error {
			got := make([]byte, len(up))
			if _, err := io.ReadFull(p.peer, got); err != nil {
				return err
			}
			if string(got) != string(up) {
				return errors.New("peer received other bytes than we wrote")
			}
			if _, err := p.peer.Write(down); err != nil {
				return err
			}
			if err := tlstest.ReadEOF(p.peer); err != nil {
				return err
			}
			return p.peer.Close()
		})
		_, err := p.ours.Write(up)
		require.NoError(t, err)
		got := make([]byte, len(down))
		_, err = io.ReadFull(p.ours, got)
		require.NoError(t, err)
		require.Equal(t, down, got)
		require.NoError(t, p.ours.Close())
		tlstest.Wait(t, peer, "peer")
		require.Greater(t, p.counts.written.Load(), int64(len(up)))
		require.Greater(t, p.counts.read.Load(), int64(len(down)))
		require.Equal(t, p.peerCounts.read.Load(), p.counts.written.Load(), "bytes we sent")
		require.Equal(t, p.peerCounts.written.Load(), p.counts.read.Load(), "bytes we received")
	})
}

// TestGenericSniffingListener: a cmux-style listener peeks at the first
// bytes through bufio to choose a protocol, then hands over a conn whose
// Read returns the buffered bytes first. Our server reads them through it,
// and the handshake completes.
func TestGenericSniffingListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	ln := openssl.NewListener(&sniffingListener{Listener: l}, tlstest.ServerCtx(t))

	client := tlstest.Go(func() error {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		return tlstest.ReadEOF(c) // up to our close_notify
	})
	conn, err := ln.Accept()
	require.NoError(t, err)
	ours := conn.(*openssl.Conn)
	sniffed := ours.NetConn().(*sniffedConn)
	require.Positive(t, sniffed.buffered, "the listener kept bytes of the ClientHello")
	require.NoError(t, ours.SetDeadline(time.Now().Add(tlstest.Timeout)))
	buf := make([]byte, 5)
	_, err = io.ReadFull(ours, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	require.NoError(t, ours.Close())
	tlstest.Wait(t, client, "client")
}

// sniffingListener peeks at each connection's first bytes, as cmux does.
type sniffingListener struct{ net.Listener }

func (l *sniffingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(tlstest.Timeout))
	head, err := br.Peek(3)
	c.SetReadDeadline(time.Time{})
	if err != nil || head[0] != 0x16 { // a TLS handshake record
		c.Close()
		return nil, errors.New("not TLS")
	}
	return &sniffedConn{Conn: c, r: br, buffered: br.Buffered()}, nil
}

// sniffedConn reads through the bufio.Reader that holds the sniffed bytes.
type sniffedConn struct {
	net.Conn
	r        *bufio.Reader
	buffered int // bytes the listener held when it handed the conn over
}

func (c *sniffedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
