package tlstest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// TestPairShutdown connects every case over both transports, exchanges
// data, and shuts down step by step while the crypto/tls peer answers.
func TestPairShutdown(t *testing.T) {
	for _, tr := range []tlstest.Transport{tlstest.TCP, tlstest.Unix} {
		t.Run(tr.String(), func(t *testing.T) {
			tlstest.Each(t, func(t *testing.T, c tlstest.Case) {
				p := tlstest.Connect(t, tlstest.Spec{Case: c, Transport: tr, Record: true})
				require.Equal(t, c.Version, p.Peer.ConnectionState().Version)
				p.Exchange(t)
				mark := p.Rec.Mark()
				answered := p.PeerAnswer()
				steps := &tlstest.Steps{Conn: p.Ours}
				require.NoError(t, steps.Shutdown(tlstest.Context(t)), "steps %v", steps)
				tlstest.Wait(t, answered, "the peer's answer")
				require.Equal(t, "0", steps.Seq[0], "steps %v", steps)
				require.Equal(t, "1", steps.Seq[len(steps.Seq)-1], "steps %v", steps)
				for _, s := range steps.Seq[1 : len(steps.Seq)-1] {
					require.Equal(t, "-1/WANT_READ", s, "steps %v", steps)
				}
				require.Equal(t, "sent,received", tlstest.StateName(p.Ours.ShutdownState()))
				// The peer read one record after the pong: our alert, which
				// TLS 1.3 disguises as application data.
				types, _, err := tlstest.Records(p.Rec.Since(mark))
				require.NoError(t, err)
				want := byte(21)
				if c.Version == tls.VersionTLS13 {
					want = 23
				}
				require.Equal(t, []byte{want}, types)
			})
		})
	}
}

// TestPairMSS checks that Spec.MSS reaches both sockets.
func TestPairMSS(t *testing.T) {
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13}, MSS: 1000})
	for _, s := range []tlstest.Sock{p.OurSock, p.PeerSock} {
		rc, err := s.SyscallConn()
		require.NoError(t, err)
		var mss int
		var gerr error
		require.NoError(t, rc.Control(func(fd uintptr) {
			mss, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG)
		}))
		require.NoError(t, gerr)
		require.LessOrEqual(t, mss, 1000)
	}
}

// TestStepsShutdownFromFullBuffer runs Steps.Shutdown on a pair filled by
// FillSendQueue: it waits for room (-1/WANT_WRITE), sends the alert (0),
// and calls again for the answer (1).
func TestStepsShutdownFromFullBuffer(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, c tlstest.Case) {
		p := tlstest.Connect(t, tlstest.FillSpec(c))
		p.Exchange(t)
		p.FillSendQueue(t, make([]byte, tlstest.FillSize))
		// The peer reads only once our side waits for room.
		wantWrite := make(chan struct{})
		var once sync.Once
		steps := &tlstest.Steps{Conn: p.Ours, Notify: func(_ openssl.ShutdownResult, err error) {
			if errors.Is(err, openssl.ErrWantWrite) {
				once.Do(func() { close(wantWrite) })
			}
		}}
		answered := tlstest.Go(func() error {
			select {
			case <-wantWrite:
			case <-time.After(tlstest.Timeout):
				return errors.New("no -1/WANT_WRITE")
			}
			if _, err := io.CopyN(io.Discard, p.Peer, tlstest.FillSize); err != nil {
				return err
			}
			return <-p.PeerAnswer()
		})
		require.NoError(t, steps.Shutdown(tlstest.Context(t)), "steps %v", steps)
		tlstest.Wait(t, answered, "the peer's answer")
		require.Equal(t, "-1/WANT_WRITE", steps.Seq[0], "steps %v", steps)
		require.Contains(t, steps.Seq, "0", "steps %v", steps)
		require.Equal(t, "1", steps.Seq[len(steps.Seq)-1], "steps %v", steps)
	})
}

// TestFillRaw fills a socket whose peer does not read.
func TestFillRaw(t *testing.T) {
	a, b, err := tlstest.SocketPair(tlstest.TCP, 0)
	require.NoError(t, err)
	defer b.Close()
	defer a.Close()
	n, err := tlstest.FillRaw(a)
	require.NoError(t, err)
	require.Positive(t, n)
	// Not even one more byte fits.
	n2, err := tlstest.FillRaw(a)
	require.NoError(t, err)
	require.Zero(t, n2)
}

// TestProcessPeers connects to each process peer of internal/peer in
// every case: the handshake completes, the peer reports it where it does,
// and the version is the case's.
func TestProcessPeers(t *testing.T) {
	for _, tc := range []struct {
		kind    tlstest.PeerKind
		program string
	}{
		{tlstest.OpenSSLTool, "openssl"},
		{tlstest.GnuTLS, "gnutls-serv"},
		{tlstest.Python, "python3"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			if _, err := exec.LookPath(tc.program); err != nil {
				t.Skipf("%s is not installed", tc.program)
			}
			tlstest.Each(t, func(t *testing.T, c tlstest.Case) {
				p := tlstest.Connect(t, tlstest.Spec{Case: c, Peer: tc.kind})
				require.NotNil(t, p.Proc)
				require.Nil(t, p.Peer)
			})
		})
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		r    openssl.ShutdownResult
		err  error
		want string
	}{
		{openssl.ShutdownSent, nil, "0"},
		{openssl.ShutdownComplete, nil, "1"},
		{openssl.ShutdownFailed, &openssl.Error{Code: openssl.ErrorWantRead}, "-1/WANT_READ"},
		{openssl.ShutdownFailed, fmt.Errorf("x: %w", net.ErrClosed), "-1/net.ErrClosed"},
	} {
		require.Equal(t, tc.want, tlstest.StepName(tc.r, tc.err))
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "nil"},
		{fmt.Errorf("%w: %w", openssl.ErrShutdownTimeout, context.DeadlineExceeded), "ErrShutdownTimeout"},
		{syscall.ECONNRESET, "ECONNRESET"},
		{io.EOF, "io.EOF"},
		{errors.New("other"), "other"},
	} {
		require.Equal(t, tc.want, tlstest.ErrName(tc.err))
	}
}

func TestClientCtxIsPure(t *testing.T) {
	b := tlstest.DefaultPKI()
	before := *b
	for range 2 {
		_, err := tlstest.NewClientCtx(b)
		require.NoError(t, err)
	}
	require.Equal(t, before.CAFile, b.CAFile)
	require.Empty(t, b.CAFile)
}
