package openssl_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
)

// Helpers for shutdown_test.go and close_test.go. Their names start with
// "sd" so that they cannot collide with the helpers of the other test files.

// sdCase is one cell of the shutdown tables: a TLS version and our role.
type sdCase struct {
	version uint16
	server  bool // we are the TLS server, the crypto/tls peer the client
}

func (c sdCase) String() string {
	role := "we-client"
	if c.server {
		role = "we-server"
	}
	return tls.VersionName(c.version) + "/" + role
}

// sdEach runs f as a subtest for TLS 1.2 and 1.3, each with our Conn as
// client and as server.
func sdEach(t *testing.T, f func(t *testing.T, tc sdCase)) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, server := range []bool{false, true} {
			tc := sdCase{version: v, server: server}
			t.Run(tc.String(), func(t *testing.T) { f(t, tc) })
		}
	}
}

// sdOpts adjusts a pair before its handshake.
type sdOpts struct {
	// unix connects the two sides with a Unix stream socket pair instead of
	// TCP on 127.0.0.1; see fill for why.
	unix bool
	// ourSndBuf and peerRcvBuf, when positive, set SO_SNDBUF on our socket
	// and SO_RCVBUF on the peer's. The kernel locks a size set this way (no
	// autotuning).
	ourSndBuf, peerRcvBuf int
	policy                *openssl.ClosePolicy // set on our Conn when non-nil
}

// sdSock is what tests need of a socket: *net.TCPConn and *net.UnixConn.
type sdSock interface {
	net.Conn
	syscall.Conn
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
	CloseWrite() error
}

// sdPair is our Conn facing a crypto/tls peer, plus both sockets and a
// record of every byte the peer's TLS layer read from its socket.
type sdPair struct {
	ours     *openssl.Conn
	peer     *tls.Conn
	ourSock  sdSock
	peerSock sdSock
	rec      *sdRecorder
}

// sdNewPair connects our Conn and a crypto/tls peer and runs both
// handshakes. Our Conn is closed at cleanup, and so are the sockets.
func sdNewPair(t testing.TB, tc sdCase, o sdOpts) *sdPair {
	t.Helper()
	var c, s sdSock
	if o.unix {
		c, s = sdUnixPair(t)
	} else {
		c, s = tcpPair(t)
	}
	ourSock, peerSock := c, s
	if tc.server {
		ourSock, peerSock = s, c
	}
	if o.ourSndBuf > 0 {
		require.NoError(t, ourSock.SetWriteBuffer(o.ourSndBuf))
	}
	if o.peerRcvBuf > 0 {
		require.NoError(t, peerSock.SetReadBuffer(o.peerRcvBuf))
	}
	p := &sdPair{ourSock: ourSock, peerSock: peerSock, rec: &sdRecorder{Conn: peerSock}}
	var err error
	if tc.server {
		p.ours, err = openssl.Server(ourSock, serverCtx(t))
		require.NoError(t, err)
		p.peer = tls.Client(p.rec, &tls.Config{
			RootCAs: pki.Pool, ServerName: "localhost",
			MinVersion: tc.version, MaxVersion: tc.version,
		})
	} else {
		p.ours, err = openssl.Client(ourSock, clientCtx(t))
		require.NoError(t, err)
		p.peer = tls.Server(p.rec, &tls.Config{
			Certificates: []tls.Certificate{pki.TLSCert},
			MinVersion:   tc.version, MaxVersion: tc.version,
		})
	}
	t.Cleanup(func() { p.ours.Close() })
	if o.policy != nil {
		p.ours.SetClosePolicy(*o.policy)
	}
	handshakeBoth(t, p.ours, p.peer)
	require.Equal(t, tc.version, p.ours.ConnectionState().Version)
	return p
}

// sdUnixPair returns the two ends of a Unix stream socket pair.
func sdUnixPair(t testing.TB) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// peerTCP returns the peer's TCP socket (pairs made without sdOpts.unix).
func (p *sdPair) peerTCP() *net.TCPConn { return p.peerSock.(*net.TCPConn) }

// exchange sends "ping" to the peer and reads its "pong". Afterwards each
// side has read everything the other sent so far, the TLS 1.3 session
// tickets included (they precede the data), and our TCP has an ACK for all
// it sent (the pong carries it): nothing unread can turn a later close into
// a reset, and the send queue is empty.
func (p *sdPair) exchange(t testing.TB) {
	t.Helper()
	done := sdGo(func() error {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(p.peer, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("peer read %q", buf)
		}
		_, err := p.peer.Write([]byte("pong"))
		return err
	})
	_, err := p.ours.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(p.ours, buf)
	require.NoError(t, err)
	require.Equal(t, "pong", string(buf))
	sdWait(t, done, "peer's ping-pong")
}

// peerAnswer makes the crypto/tls peer answer our close_notify the only way
// it can: its Read returns io.EOF, then its Close sends close_notify.
func (p *sdPair) peerAnswer() <-chan error {
	return sdGo(func() error {
		if err := sdReadEOF(p.peer); err != nil {
			return err
		}
		return p.peer.Close()
	})
}

// sdReadEOF reads from r until an error, expecting io.EOF and no data.
func sdReadEOF(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("read %d unexpected bytes before EOF", n)
	}
	return nil
}

// fill writes data to the peer, which does not read, and then shrinks our
// SO_SNDBUF below what the kernel already holds for the peer, so that the
// next write(2) on our socket fails with EAGAIN: SSL_shutdown's write of the
// alert gets SSL_ERROR_WANT_WRITE with the whole alert record pending in
// OpenSSL. Once the peer reads, the kernel frees the buffers and the alert
// goes out. The pair must be made with sdOpts{unix: true, ourSndBuf:
// fillOurSndBuf}.
//
// Why this is deterministic, and why on a Unix socket pair:
//   - Filling with Write until a write deadline passes would leave part of
//     an application-data record inside OpenSSL, and OpenSSL cannot send an
//     alert behind it (the retry fails with "bad write retry", see
//     TestShutdownOnceAfterTimedOutWrite). Here every Write completes (data
//     fits in our large send buffer), so the stream ends on a record
//     boundary.
//   - On TCP, Linux appends a small write to the last unsent segment
//     (up to 64 KiB) without looking at SO_SNDBUF, so a 24-31 byte alert
//     usually still fits however full the buffer is: whether SSL_shutdown
//     sees EAGAIN depends on where the last segment ends. A Unix stream
//     socket allocates a new buffer for every write and refuses it while
//     the bytes the peer has not read yet exceed SO_SNDBUF, whatever their
//     alignment.
//   - SetWriteBuffer(1) makes the limit SOCK_MIN_SNDBUF (about 4.5 KiB),
//     far below the 128 KiB the peer has not read.
func (p *sdPair) fill(t testing.TB, data []byte) {
	t.Helper()
	require.NoError(t, p.ours.SetWriteDeadline(time.Now().Add(testTimeout)))
	_, err := p.ours.Write(data)
	require.NoError(t, err, "the fill must fit in our send buffer")
	require.NoError(t, p.ours.SetWriteDeadline(time.Time{}))
	require.NoError(t, p.ourSock.SetWriteBuffer(1))
	n, err := p.ours.SendQueueLen()
	require.NoError(t, err)
	require.Greater(t, n, 16<<10, "the fill must wait in the kernel for the peer")
}

// fillSize and the buffer size used with fill: 128 KiB fits in our send
// buffer (SO_SNDBUF 1 MiB, doubled by the kernel) and far exceeds
// SOCK_MIN_SNDBUF.
const (
	fillSize      = 128 << 10
	fillOurSndBuf = 1 << 20
)

// sdFillOpts are the options of a pair that fill works on.
var sdFillOpts = sdOpts{unix: true, ourSndBuf: fillOurSndBuf}

// sdPattern returns n bytes that are not all alike, so that a lost or
// reordered chunk shows.
func sdPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// sdRecorder is the peer's transport as crypto/tls sees it; it keeps a copy
// of every byte crypto/tls reads, so tests can look at the raw records.
type sdRecorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer // protected by mu
}

func (r *sdRecorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.buf.Write(b[:n])
	r.mu.Unlock()
	return n, err
}

// mark returns the number of bytes read so far.
func (r *sdRecorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

// since returns a copy of the bytes read after mark m.
func (r *sdRecorder) since(m int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes()[m:])
}

// sdRecords splits raw TLS records into their content types, failing on a
// partial record.
func sdRecords(t testing.TB, raw []byte) (types []byte, lengths []int) {
	t.Helper()
	for len(raw) > 0 {
		require.GreaterOrEqual(t, len(raw), 5, "partial record header")
		n := int(raw[3])<<8 | int(raw[4])
		require.GreaterOrEqual(t, len(raw), 5+n, "partial record")
		types = append(types, raw[0])
		lengths = append(lengths, n)
		raw = raw[5+n:]
	}
	return types, lengths
}

// sdGo runs f in a goroutine and delivers its error.
func sdGo(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// sdWait waits for ch, bounded by testTimeout, and requires a nil error.
func sdWait(t testing.TB, ch <-chan error, what string) {
	t.Helper()
	require.NoError(t, sdResult(t, ch, what), what)
}

// sdResult waits for ch, bounded by testTimeout, and returns its error.
func sdResult(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testTimeout):
		t.Fatalf("%s: no result within %v", what, testTimeout)
		return nil
	}
}

// sdPoll waits, bounded by testTimeout, until poll(2) reports one of events
// on conn's socket. It reads nothing. With POLLRDHUP it waits for the
// peer's FIN: everything the peer sent before it is then in our receive
// queue.
func sdPoll(t testing.TB, conn syscall.Conn, events int16) {
	t.Helper()
	raw, err := conn.SyscallConn()
	require.NoError(t, err)
	var revents int16
	var perr error
	deadline := time.Now().Add(testTimeout)
	require.NoError(t, raw.Control(func(fd uintptr) {
		for time.Now().Before(deadline) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
			var n int
			n, perr = unix.Poll(fds, int(time.Until(deadline)/time.Millisecond)+1)
			if errors.Is(perr, unix.EINTR) {
				continue
			}
			if perr != nil || n > 0 {
				revents = fds[0].Revents
				return
			}
		}
	}))
	require.NoError(t, perr)
	require.NotZero(t, revents&events, "poll: events %#x did not happen within %v", events, testTimeout)
}

// sdStepRec records what each ShutdownOnce call returned, for Retry.
type sdStepRec struct {
	c   *openssl.Conn
	seq []string
}

// step is a Retry step: one ShutdownOnce call, recorded.
func (s *sdStepRec) step() error {
	r, err := s.c.ShutdownOnce()
	s.seq = append(s.seq, sdOutcome(r, err))
	return err
}

// once makes one recorded ShutdownOnce call.
func (s *sdStepRec) once() (openssl.ShutdownResult, error) {
	r, err := s.c.ShutdownOnce()
	s.seq = append(s.seq, sdOutcome(r, err))
	return r, err
}

// sdOutcome writes a ShutdownOnce result as OpenSSL users read it: "0",
// "1", "-1/want read", "-1/want write", "-1/SSL error", ...
func sdOutcome(r openssl.ShutdownResult, err error) string {
	var e *openssl.Error
	switch {
	case r != openssl.ShutdownFailed && err == nil:
		return fmt.Sprint(int(r))
	case r == openssl.ShutdownFailed && errors.As(err, &e):
		return "-1/" + e.Code.String()
	}
	return fmt.Sprintf("%d/%v", int(r), err)
}

// sdWithin runs f and fails if it takes longer than d: the only timing
// assertion these tests make, an upper bound proving that f is bounded.
func sdWithin(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > d {
		t.Fatalf("%s took %v, want at most %v", what, took, d)
	}
}
