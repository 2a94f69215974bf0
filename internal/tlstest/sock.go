package tlstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Sock is what the harness needs of a socket: *net.TCPConn and
// *net.UnixConn are both.
type Sock interface {
	net.Conn
	syscall.Conn
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
	CloseWrite() error
}

// Transport is how the two ends of a pair are connected.
type Transport int

const (
	// TCP connects over TCP on 127.0.0.1.
	TCP Transport = iota
	// Unix connects with a Unix stream socket pair. Unlike TCP, a Unix
	// socket refuses a write while the bytes the peer has not read exceed
	// SO_SNDBUF, whatever their alignment: see [Pair.FillSendQueue].
	Unix
)

// String returns "tcp" or "unix".
func (tr Transport) String() string {
	if tr == Unix {
		return "unix"
	}
	return "tcp"
}

// SocketPair returns two connected sockets: for TCP, the dialing end and
// the accepted one, with TCP_MAXSEG set to mss on both when mss is
// positive; for Unix, the two ends of a socket pair (mss must be 0).
// The caller closes both.
func SocketPair(tr Transport, mss int) (dialed, accepted Sock, err error) {
	return socketPair(tr, mss, nil)
}

// socketPair is SocketPair, the client dialing the address route returns
// for the listener's (TCP only; nil dials the listener).
func socketPair(tr Transport, mss int, route func(string) (string, error)) (dialed, accepted Sock, err error) {
	if tr == Unix {
		if mss != 0 || route != nil {
			return nil, nil, errors.New("tlstest: TCP_MAXSEG or a route on a Unix socket pair")
		}
		return unixPair()
	}
	ln, err := Listen(mss)
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if route != nil {
		if addr, err = route(addr); err != nil {
			return nil, nil, err
		}
	}
	type result struct {
		c   *net.TCPConn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := ln.AcceptTCP()
		acc <- result{c, err}
	}()
	c, err := Dial(addr, mss)
	if err != nil {
		ln.Close() // ends the Accept
		if a := <-acc; a.c != nil {
			a.c.Close()
		}
		return nil, nil, err
	}
	a := <-acc // the listener's deadline bounds Accept
	if a.err != nil {
		c.Close()
		return nil, nil, a.err
	}
	return c, a.c, nil
}

// Listen listens on a port of 127.0.0.1 that the kernel picks, with
// TCP_MAXSEG mss (inherited by accepted sockets) when mss is positive. The
// listener's deadline is [Timeout] from now, so that no Accept waits
// longer.
func Listen(mss int) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: mssControl(mss)}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln := l.(*net.TCPListener)
	if err := ln.SetDeadline(time.Now().Add(Timeout)); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Dial connects to addr over TCP within [Timeout], with TCP_MAXSEG mss
// when mss is positive.
func Dial(addr string, mss int) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: Timeout, Control: mssControl(mss)}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func unixPair() (a, b *net.UnixConn, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	conn := func(fd int) (*net.UnixConn, error) {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close() // FileConn dups the fd
		c, err := net.FileConn(f)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
	if a, err = conn(fds[0]); err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	if b, err = conn(fds[1]); err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// mssControl returns a net.Dialer or net.ListenConfig Control function
// that sets TCP_MAXSEG to mss, or nil when mss is not positive.
func mssControl(mss int) func(network, address string, c syscall.RawConn) error {
	if mss <= 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error { return SetMSS(c, mss) }
}

// Sizes for a pipe that a crypto/tls peer fills by not reading (the
// matrix's scenario 9, the demo's full-buffer case): set as Spec.OurSndBuf,
// PeerRcvBuf and MSS before the handshake.
const (
	// SmallBuffer is small enough that the peer's window, once shut, stays
	// shut: the kernel doubles it and applies its minimum. Larger buffers
	// reopen a little at the next zero-window probe (Linux collapses the
	// queued segments), which lets a small write through.
	SmallBuffer = 4096
	// EthernetMSS is Ethernet's segment size, instead of loopback's 64 KiB:
	// small buffers then hold several segments, as on a real network, and
	// once the peer reads again the sender resumes in about 150 ms rather
	// than 800 ms (it waits for its zero-window probe timer either way).
	EthernetMSS = 1460
)

// SetMSS sets TCP_MAXSEG, the largest segment the socket sends, to mss. It
// takes effect when set before connect or listen (accepted sockets inherit
// it). On loopback the default is about 64 KiB; 1460, Ethernet's, makes
// small buffers hold several segments, as on a real network.
func SetMSS(c syscall.RawConn, mss int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss)
	})
	return errors.Join(err, serr)
}

// FillRaw writes zero bytes on c, below any TLS, until the kernel takes not
// even one more byte, and returns how many it took. It halves the write
// size on EAGAIN down to one byte, so that the last unsent segment is full
// too. A peer that then reads TLS must first skip exactly that many bytes.
func FillRaw(c syscall.Conn) (int64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	var werr error
	buf := make([]byte, 64<<10)
	cerr := rc.Control(func(fd uintptr) {
		size := len(buf)
		// A send buffer holds far fewer than 1<<16 writes.
		for i := 0; size > 0 && i < 1<<16; i++ {
			n, err := unix.Write(int(fd), buf[:size])
			switch {
			case err == unix.EAGAIN:
				size /= 2
			case err == unix.EINTR:
			case err != nil:
				werr = err
				return
			default:
				total += int64(n)
			}
		}
	})
	return total, errors.Join(cerr, werr)
}

// Poll waits until poll(2) reports one of events on c's socket, at most
// timeout long. It reads nothing. With POLLRDHUP it waits for the peer's
// FIN: everything the peer sent before it is then in the receive queue.
func Poll(c syscall.Conn, events int16, timeout time.Duration) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var revents int16
	var perr error
	deadline := time.Now().Add(timeout)
	if err := rc.Control(func(fd uintptr) {
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
	}); err != nil {
		return err
	}
	if perr != nil {
		return perr
	}
	if revents&events == 0 {
		return fmt.Errorf("tlstest: poll events %#x did not happen within %v", events, timeout)
	}
	return nil
}

// TCPPair is [SocketPair] over TCP for tests: it fails tb on error and
// closes both sockets at cleanup.
func TCPPair(tb testing.TB) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	d, a, err := SocketPair(TCP, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close(); a.Close() })
	return d.(*net.TCPConn), a.(*net.TCPConn)
}
