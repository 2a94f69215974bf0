package openssl_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
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
// server: what only the generic path does. Shutdown and close tests run
// over every tlstest.Path in shutdown_test.go and close_test.go.

// TestGenericPathChosen: wrappers go through their own Read and Write (the
// counts see the handshake), a SocketFD that opts in is bypassed (its counts
// stay 0), and data flows either way.
func TestGenericPathChosen(t *testing.T) {
	for _, k := range []tlstest.Path{tlstest.TCPEmbed, tlstest.OptIn} {
		t.Run(k.String(), func(t *testing.T) {
			p := tlstest.Connect(t, tlstest.Spec{Path: k})
			p.Exchange(t)
			if k == tlstest.OptIn {
				require.Zero(t, p.OurCount.BytesRead.Load()+p.OurCount.BytesWritten.Load())
			} else {
				require.Positive(t, p.OurCount.BytesRead.Load())
				require.Positive(t, p.OurCount.BytesWritten.Load())
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
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, k tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: k})
		p.Exchange(t)
		peer := p.PeerAnswer()
		rec := shutdownOnceTwice(t, p)
		require.NoError(t, p.Ours.Retry(tlstest.Context(t), rec.Step))
		tlstest.Wait(t, peer, "peer's answer")
		requireShutdownDone(t, p, rec, "0", "-1/WANT_READ", "-1/WANT_READ", "1")
	}, tlstest.Path.Counts)
}

// TestGenericShutdownOnceWantWrite: on the generic path WANT_WRITE means the
// inner conn's Write did not take the whole alert before the write
// deadline. Over net.Pipe that is a peer that does not read. The next call,
// once the peer reads, writes the rest and returns 0; the peer got one
// whole alert record.
func TestGenericShutdownOnceWantWrite(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: tlstest.Pipe, Record: true})
		p.Exchange(t)
		mark := p.Rec.Mark()
		rec := &tlstest.Steps{Conn: p.Ours}
		require.NoError(t, p.Ours.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
		r, err := rec.Once()
		require.Equal(t, openssl.ShutdownFailed, r)
		requireShutdownError(t, err, openssl.ErrorWantWrite, openssl.ErrWantWrite, wantWriteMsg)
		require.Equal(t, "sent=true received=false", p.Ours.ShutdownState().String())
		require.NoError(t, p.Ours.SetWriteDeadline(time.Time{}))

		peer := tlstest.Go(func() error { return tlstest.ReadEOF(p.Peer) })
		require.NoError(t, p.Ours.Retry(tlstest.Context(t), rec.Step))
		require.Equal(t, []string{"-1/WANT_WRITE", "0"}, rec.Seq)
		tlstest.Wait(t, peer, "peer's read of our close_notify")
		requireOneAlertRecord(t, tc, p.Rec.Since(mark))
	})
}

// TestGenericCloseLingeringDrainSendQueue: the policies that act on a
// socket (Lingering half-closes it, DrainSendQueue asks its send queue)
// over conns without one or with TLS above it: Close still completes the
// exchange. TestCloseLingering and TestCloseDrainSendQueue test what they
// do to a socket.
func TestGenericCloseLingeringDrainSendQueue(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, k tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: k, Policy: &openssl.ClosePolicy{Lingering: true, DrainSendQueue: true, Timeout: tlstest.Timeout}})
		p.Exchange(t)
		peer := p.PeerAnswer()
		require.NoError(t, p.Ours.Close())
		tlstest.Wait(t, peer, "peer")
		require.Equal(t, "sent=true received=true", p.Ours.ShutdownState().String())
	}, tlstest.Path.Counts)
}

// TestGenericSocketOptions: SetLinger and SendQueueLen reach the socket of
// a wrapper that exposes one, and fail with ErrNoSocket otherwise.
func TestGenericSocketOptions(t *testing.T) {
	tlstest.EachPath(t, func(t *testing.T, k tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13}, Path: k})
		p.Exchange(t)
		n, qerr := p.Ours.SendQueueLen()
		lerr := p.Ours.SetLinger(0)
		if k != tlstest.TCPEmbed {
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
		require.NoError(t, p.Ours.Close())
		require.False(t, p.Ours.ShutdownState().Sent(), "abortive: no alert")
		_, err := p.Peer.Read(make([]byte, 10))
		require.ErrorIs(t, err, syscall.ECONNRESET)
	}, tlstest.Path.Counts)
}

// TestGenericCloseWakesBlockedCalls: Close ends a Read waiting in the inner
// conn and a Write whose peer does not read.
func TestGenericCloseWakesBlockedCalls(t *testing.T) {
	tlstest.EachPath(t, func(t *testing.T, k tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13}, Path: k, Policy: &openssl.ClosePolicy{Timeout: shortTimeout}})
		p.Exchange(t)
		read := tlstest.Go(func() error {
			_, err := p.Ours.Read(make([]byte, 16))
			return err
		})
		wrote := tlstest.Go(func() error {
			_, err := p.Ours.Write(make([]byte, 64<<20)) // more than any pipe holds
			return err
		})
		// Each call is blocked once the peer stops hearing from us: the
		// Write's first records are in flight, the Read has nothing.
		require.Eventually(t, func() bool { return p.OurCount.BytesWritten.Load() > 0 }, tlstest.Timeout, time.Millisecond)
		tlstest.Within(t, shortTimeout+boundMargin, "Close", func() { p.Ours.Close() })
		for op, ch := range map[string]<-chan error{"read": read, "write": wrote} {
			err := tlstest.Result(t, ch, op)
			require.ErrorIs(t, err, net.ErrClosed, op)
			require.Equal(t, op, asError(t, err).Op)
		}
	}, tlstest.Path.Counts)
}

// TestGenericCountsEveryByte: every byte of the TLS stream goes through the
// wrapper, both ways: what it counts is exactly what the peer's end carried,
// handshake and both close_notify alerts included.
func TestGenericCountsEveryByte(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, k tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: k, Policy: &openssl.ClosePolicy{WaitForPeer: true, Timeout: tlstest.Timeout}})
		up, down := tlstest.Pattern(300<<10), tlstest.Pattern(200 << 10)[3:]
		peer := tlstest.Go(func() error {
			got := make([]byte, len(up))
			if _, err := io.ReadFull(p.Peer, got); err != nil {
				return err
			}
			if string(got) != string(up) {
				return errors.New("peer received other bytes than we wrote")
			}
			if _, err := p.Peer.Write(down); err != nil {
				return err
			}
			if err := tlstest.ReadEOF(p.Peer); err != nil {
				return err
			}
			return p.Peer.Close()
		})
		_, err := p.Ours.Write(up)
		require.NoError(t, err)
		got := make([]byte, len(down))
		_, err = io.ReadFull(p.Ours, got)
		require.NoError(t, err)
		require.Equal(t, down, got)
		require.NoError(t, p.Ours.Close())
		tlstest.Wait(t, peer, "peer")
		require.Greater(t, p.OurCount.BytesWritten.Load(), int64(len(up)))
		require.Greater(t, p.OurCount.BytesRead.Load(), int64(len(down)))
		require.Equal(t, p.PeerCount.BytesRead.Load(), p.OurCount.BytesWritten.Load(), "bytes we sent")
		require.Equal(t, p.PeerCount.BytesWritten.Load(), p.OurCount.BytesRead.Load(), "bytes we received")
	}, tlstest.Path.Counts)
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
