package openssl_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// requireTimeout asserts that err is our *Error for op reporting a passed
// deadline, as net.Error and os.ErrDeadlineExceeded.
func requireTimeout(t testing.TB, err error, op string) {
	t.Helper()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne), "%T is not a net.Error", err)
	require.True(t, ne.Timeout())
	require.Equal(t, op, asError(t, err).Op)
}

func TestReadDeadline(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		buf := make([]byte, 16)
		for _, set := range []func(time.Time) error{p.Ours.SetReadDeadline, p.Ours.SetDeadline} {
			start := time.Now()
			require.NoError(t, set(start.Add(50*time.Millisecond)))
			n, err := p.Ours.Read(buf)
			require.Zero(t, n)
			requireTimeout(t, err, "read")
			require.Less(t, time.Since(start), 50*time.Millisecond+tlstest.Timeout/2, "Read bounded by its deadline")

			// A deadline in the past fails at once, again without harm.
			require.NoError(t, set(time.Now().Add(-time.Second)))
			_, err = p.Ours.Read(buf)
			requireTimeout(t, err, "read")

			// The Conn still works: the peer writes, we read it.
			require.NoError(t, set(time.Time{}))
			_, err = p.Peer.Write([]byte("after"))
			require.NoError(t, err)
			n, err = io.ReadAtLeast(p.Ours, buf, 5)
			require.NoError(t, err)
			require.Equal(t, "after", string(buf[:n]))
		}
		// And in the other direction.
		echoOnce(t, p.Ours, p.Peer)
	})
}

// TestWriteDeadline: the peer does not read and the socket buffers are
// small, so a large Write blocks until its deadline.
func TestWriteDeadline(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, OurSndBuf: 8 << 10, PeerRcvBuf: 8 << 10})
		start := time.Now()
		require.NoError(t, p.Ours.SetWriteDeadline(start.Add(100*time.Millisecond)))
		big := make([]byte, 8<<20) // far more than both socket buffers hold
		n, err := p.Ours.Write(big)
		require.Less(t, n, len(big))
		requireTimeout(t, err, "write")
		require.Less(t, time.Since(start), 100*time.Millisecond+tlstest.Timeout/2, "Write bounded by its deadline")

		// Write timeouts are permanent: later Writes return the same error,
		// even with the deadline lifted.
		require.NoError(t, p.Ours.SetWriteDeadline(time.Time{}))
		for range 3 {
			n2, err2 := p.Ours.Write([]byte("x"))
			require.Zero(t, n2)
			require.Same(t, asError(t, err), asError(t, err2))
		}

		// Reading is not affected.
		_, err = p.Peer.Write([]byte("still"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(p.Ours, buf)
		require.NoError(t, err)
		require.Equal(t, "still", string(buf))
	})
}

// silentConn returns a TCP connection to a peer that accepts and never
// speaks.
func silentConn(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", silentListener(t), tlstest.Timeout)
	require.NoError(t, err)
	return c
}

// silentPair returns our Conn in role r on a TCP connection whose peer
// never speaks and never reads.
func silentPair(t testing.TB, r tlstest.Role) *openssl.Conn {
	t.Helper()
	var c *openssl.Conn
	var err error
	if r == tlstest.WeClient {
		c, err = openssl.Client(silentConn(t), tlstest.ClientCtx(t))
	} else {
		_, s := tlstest.TCPPair(t)
		c, err = openssl.Server(s, tlstest.ServerCtx(t))
	}
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHandshakeDeadline(t *testing.T) {
	for _, r := range tlstest.Roles {
		t.Run(r.String(), func(t *testing.T) {
			c := silentPair(t, r)
			start := time.Now()
			require.NoError(t, c.SetDeadline(start.Add(100*time.Millisecond)))
			err := c.Handshake()
			requireTimeout(t, err, "handshake")
			require.Less(t, time.Since(start), 100*time.Millisecond+tlstest.Timeout/2)
			require.False(t, c.ConnectionState().HandshakeComplete)

			// The handshake failed for good.
			require.NoError(t, c.SetDeadline(time.Time{}))
			require.Same(t, asError(t, err), asError(t, c.Handshake()))
			_, rerr := c.Read(make([]byte, 1))
			require.Same(t, asError(t, err), asError(t, rerr))
		})
	}
}

func TestHandshakeContext(t *testing.T) {
	for _, r := range tlstest.Roles {
		t.Run(r.String()+"/deadline", func(t *testing.T) {
			c := silentPair(t, r)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := c.HandshakeContext(ctx)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Equal(t, "handshake", asError(t, err).Op)
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout())
			require.Less(t, time.Since(start), 100*time.Millisecond+tlstest.Timeout/2)
			require.Same(t, asError(t, err), asError(t, c.Handshake()), "the failure is permanent")
		})
		t.Run(r.String()+"/cancel", func(t *testing.T) {
			c := silentPair(t, r)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- c.HandshakeContext(ctx) }()
			cancel()
			var err error
			tlstest.Within(t, tlstest.Timeout, "HandshakeContext after cancel", func() { err = <-errc })
			require.ErrorIs(t, err, context.Canceled)
			require.Equal(t, "handshake", asError(t, err).Op)
		})
		t.Run(r.String()+"/nil context", func(t *testing.T) {
			c := silentPair(t, r)
			//lint:ignore SA1012 a nil context is what is tested.
			err := c.HandshakeContext(nil) //nolint:staticcheck
			require.ErrorIs(t, err, openssl.ErrNilContext)
			// Nothing was started: a later handshake is still possible
			// (and bounded here by a deadline).
			require.NoError(t, c.SetDeadline(time.Now().Add(50*time.Millisecond)))
			requireTimeout(t, c.Handshake(), "handshake")
		})
	}
}

func TestHandshakeContextRestoresDeadlines(t *testing.T) {
	// A context that did not end leaves the caller's deadlines as they were:
	// none here, so a Read after the handshake waits for data.
	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeClient}})
		peerDone := make(chan error, 1)
		go func() { peerDone <- p.Peer.Handshake() }()
		ctx, cancel := context.WithTimeout(context.Background(), tlstest.Timeout)
		require.NoError(t, p.Ours.HandshakeContext(ctx))
		cancel() // after the handshake: must not touch our deadlines
		require.NoError(t, <-peerDone)
		_, err := p.Peer.Write([]byte("late"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(p.Ours, buf)
		require.NoError(t, err)
		require.Equal(t, "late", string(buf))
	})
}

func TestDialContextDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	before := liveSSL()
	start := time.Now()
	c, err := openssl.DialContext(ctx, "tcp", silentListener(t), tlstest.ClientCtx(t), openssl.InsecureSkipHostVerification)
	require.Nil(t, c)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, "handshake", asError(t, err).Op)
	require.Less(t, time.Since(start), 100*time.Millisecond+tlstest.Timeout/2)
	require.Equal(t, before, liveSSL(), "the failed Dial freed its SSL")
}
