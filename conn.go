package openssl

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a TLS connection made by OpenSSL over a net.Conn. It implements
// [net.Conn]. It takes one of two paths, with the same API and semantics:
//   - the socket-fd path, for a *net.TCPConn, a stream *net.UnixConn, or a
//     conn that opts in with [SocketFD]: OpenSSL reads and writes the
//     socket's file descriptor itself, and waits happen in Go's netpoller;
//   - the generic path, for every other net.Conn (net.Pipe, wrappers that
//     count or shape traffic, a listener's conn holding sniffed bytes, a
//     *tls.Conn): OpenSSL works on a BIO pair in memory, and the Conn moves
//     the bytes with the net.Conn's own Read and Write, whose deadlines
//     bound every wait.
//
// One Read and one Write may run at once, together with Close, the deadline
// setters, Shutdown, ShutdownOnce, ShutdownState and ConnectionState from
// other goroutines:
//   - readers ([Conn.Read], the waits inside [Conn.Shutdown] and
//     [Conn.Close]) are serialised with each other by in.lock;
//   - writers ([Conn.Write], [Conn.CloseWrite], [Conn.ShutdownOnce], the
//     alert sent by Shutdown and Close) by out.lock;
//   - a reader never waits for a writer, nor a writer for a reader.
//
// Lock order: handshakeMu, then in.lock or out.lock (never both at once),
// then the generic path's fillLock or flushLock, then sslMu. sslMu,
// deadlineMu and policyMu are leaves: nothing else is locked while one is
// held, and none is held while waiting for the peer.
type Conn struct {
	conn   net.Conn  // constant
	tr     transport // constant; how the SSL reaches conn
	sslCtx *Ctx      // constant; the SSL_CTX the SSL references

	// sslMu serialises every call into ssl. It is held for one C call at a
	// time, never while waiting for the socket.
	sslMu        sync.Mutex
	ssl          *C.SSL        // protected by sslMu; nil once Close freed it
	netBIO       *C.BIO        // protected by sslMu; the generic path's half of the BIO pair; nil on the socket-fd path and once Close freed it
	fatalErr     error         // protected by sslMu; first SSL_ERROR_SSL or SSL_ERROR_SYSCALL
	alertFlushed bool          // protected by sslMu; our close_notify reached the kernel
	finalState   ShutdownState // protected by sslMu; SSL_get_shutdown when ssl was freed
	// idleTimer, waitedOnce, idleArmed and waitedAgain are the idle
	// release's state (see armIdleRelease), protected by sslMu.
	idleTimer   *time.Timer
	waitedOnce  bool // a Read waited for the peer before
	idleArmed   bool // idleTimer is running
	waitedAgain bool // a Read waited since idleTimer started or fired

	handshakeMu   sync.Mutex      // serialises handshakes
	handshakeErr  error           // protected by handshakeMu; sticky
	handshakeStep sslStep         // protected by handshakeMu
	state         ConnectionState // written under handshakeMu before handshakeDone is set; constant after
	handshakeDone atomic.Bool

	// waits counts the SSL calls of either direction that waited for the
	// socket (see schedSlice).
	waits atomic.Uint64

	in  halfConn // reading: Read, and the waits of Shutdown and Close
	out halfConn // writing: Write, CloseWrite, and the alerts of Shutdown and Close

	// writeShut is set once our close_notify is asked for: Write returns
	// ErrWriteAfterShutdown from then on.
	writeShut atomic.Bool
	closed    atomic.Bool // Close was called
	connClose sync.Once   // closes conn: at the end of Close, or when its timeout passes (generic path)
	connErr   error       // conn.Close's error; written inside connClose
	abortive  atomic.Bool // SetLinger(0): Close sends no alert, TCP sends RST
	discarded atomic.Int64

	deadlineMu    sync.Mutex // guards the socket's deadlines against Shutdown's context handling
	readDeadline  time.Time  // protected by deadlineMu
	writeDeadline time.Time  // protected by deadlineMu

	policyMu sync.Mutex  // guards policy
	policy   ClosePolicy // protected by policyMu

	hooks connHooks // what Go callbacks need; each field says its lock (callback.go)
}

// halfConn is one direction of a Conn.
type halfConn struct {
	lock gate    // serialises this direction; held while waiting for the socket
	step sslStep // protected by lock
	err  error   // protected by lock; first permanent error, returned by every later call
}

// SocketFD is implemented by a net.Conn that asks for the socket-fd path
// although it is neither a *net.TCPConn nor a *net.UnixConn: a wrapper whose
// Read and Write are exactly its socket's. On that path OpenSSL reads and
// writes the descriptor of SyscallConn itself and never calls the wrapper's
// Read and Write. UseSocketFD reports whether that is right for this conn
// (false, say, while the wrapper holds bytes it has read ahead).
type SocketFD interface {
	net.Conn
	syscall.Conn
	UseSocketFD() bool
}

// Client returns a TLS client on conn. The handshake runs on the first
// Read, Write or Handshake. sslCtx's verify mode applies, and under
// [VerifyNone] any certificate is accepted: call [Conn.SetServerName]
// before the handshake for SNI and host name verification, as [Dial] does.
// The Conn owns conn: Close closes it. Which path the Conn takes is
// described on [Conn]; a packet conn (UDP, a datagram Unix socket) or a nil
// argument is an *Error.
func Client(conn net.Conn, sslCtx *Ctx) (*Conn, error) {
	return newConn(conn, sslCtx, false)
}

// Server returns a TLS server on conn, as [Client] does for clients. sslCtx
// needs a certificate and key ([Ctx.UseCertificate], [Ctx.UsePrivateKey])
// for the handshake to succeed.
func Server(conn net.Conn, sslCtx *Ctx) (*Conn, error) {
	return newConn(conn, sslCtx, true)
}

func newConn(conn net.Conn, sslCtx *Ctx, server bool) (*Conn, error) {
	const op = "new conn"
	if conn == nil || sslCtx == nil {
		return nil, &Error{Op: op, Err: errors.New("openssl: nil net.Conn or Ctx")}
	}
	raw, fd, err := socketPath(conn)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	c := &Conn{conn: conn, sslCtx: sslCtx, policy: sslCtx.getClosePolicy()}
	var r C.go_ossl_result
	isServer := C.int(0)
	if server {
		isServer = 1
	}
	sslCtx.mu.RLock()
	if raw != nil {
		c.ssl = C.go_ossl_new_ssl(sslCtx.sslCtx, C.int(fd), isServer, &r)
		c.tr = &fdTransport{c: c, raw: raw}
	} else {
		c.ssl = C.go_ossl_new_ssl_bio_pair(sslCtx.sslCtx, isServer, bioBufSize, &c.netBIO, &r)
		c.tr = newBIOTransport(c)
	}
	sslCtx.mu.RUnlock()
	if c.ssl == nil {
		return nil, callError(op, &r)
	}
	liveSSL.Add(1)
	if err := c.attachHandle(); err != nil {
		c.freeSSL()
		return nil, err
	}
	c.in.step.init(c)
	c.out.step.init(c)
	c.handshakeStep.init(c)
	return c, nil
}

// socketPath returns the socket and its descriptor when conn takes the
// socket-fd path: exactly a *net.TCPConn or *net.UnixConn, or a SocketFD
// that asks for it; nil for the generic path. A conn on the socket-fd path
// must be a stream socket; a packet conn is refused on either path.
func socketPath(conn net.Conn) (syscall.RawConn, uintptr, error) {
	var sc syscall.Conn
	switch conn := conn.(type) {
	case *net.TCPConn:
		sc = conn
	case *net.UnixConn:
		sc = conn
	case SocketFD:
		if !conn.UseSocketFD() {
			return nil, 0, nil
		}
		sc = conn
	case net.PacketConn:
		return nil, 0, fmt.Errorf("openssl: %T is not a stream socket (TLS needs TCP or a Unix stream socket)", conn)
	default:
		return nil, 0, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var fd uintptr
	var sockType int
	var sockErr error
	if err := raw.Control(func(f uintptr) {
		fd = f
		sockType, sockErr = unix.GetsockoptInt(int(f), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return nil, 0, err
	}
	if sockErr != nil || sockType != unix.SOCK_STREAM {
		return nil, 0, fmt.Errorf("openssl: %T is not a stream socket (TLS needs TCP or a Unix stream socket)", conn)
	}
	return raw, fd, nil
}

// Read reads application data into b, running the handshake first if
// needed. It returns:
//   - [io.EOF] once the peer's close_notify arrived (and on every later
//     call);
//   - an *Error wrapping [ErrTruncated] (and [io.ErrUnexpectedEOF]) when the
//     peer closed TCP without close_notify, or io.EOF for that with
//     [IgnoreUnexpectedEOF];
//   - an *Error wrapping [os.ErrDeadlineExceeded] (Timeout() true) when the
//     read deadline passed; the Conn stays usable;
//   - an *Error wrapping [net.ErrClosed] after [Conn.Close], also for a Read
//     that Close woke up;
//   - an *Error wrapping [syscall.ECONNRESET] when the peer reset the
//     connection, or OpenSSL's error.
//
// All errors but the deadline are permanent (corresponds to SSL_read_ex).
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.in.lock.Lock()
	defer c.in.lock.Unlock()
	return c.readLocked(b)
}

// readLocked is Read with c.in.lock held.
func (c *Conn) readLocked(b []byte) (int, error) {
	if c.in.err != nil {
		return 0, c.in.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if err := c.in.step.run(opRead, b, dirRead); err != nil {
		err = c.ioError(opRead, err)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			c.in.err = err
		}
		return 0, err
	}
	r := &c.in.step.res
	if r.ret == 1 {
		return int(r.n), nil
	}
	err := sslError("read", r)
	if err.Code == ErrorZeroReturn {
		c.in.err = io.EOF
	} else {
		c.in.err = err
	}
	return 0, c.in.err
}

// Write writes all of b, running the handshake first if needed, and returns
// len(b) or an error with the count written before it. It returns an *Error
// wrapping:
//   - [ErrWriteAfterShutdown] after our close_notify ([Conn.CloseWrite],
//     [Conn.Shutdown], [Conn.ShutdownOnce]);
//   - [net.ErrClosed] after [Conn.Close];
//   - [os.ErrDeadlineExceeded] when the write deadline passed;
//   - [syscall.EPIPE] or [syscall.ECONNRESET] on a reset connection (never
//     a SIGPIPE), or OpenSSL's error.
//
// Every error is permanent: a Write that fails, or whose deadline passes,
// may have left part of a record inside OpenSSL, so every later Write
// returns the same error, as in crypto/tls (corresponds to SSL_write_ex).
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.out.lock.Lock()
	defer c.out.lock.Unlock()
	if c.out.err != nil {
		return 0, c.out.err
	}
	if c.closed.Load() {
		// Close sets writeShut too when it sends close_notify.
		return 0, &Error{Op: "write", Err: net.ErrClosed}
	}
	if c.writeShut.Load() {
		return 0, &Error{Op: "write", Err: ErrWriteAfterShutdown}
	}
	n := 0
	for n < len(b) {
		if err := c.out.step.run(opWrite, b[n:], dirWrite); err != nil {
			c.out.err = c.ioError(opWrite, err)
			return n, c.out.err
		}
		r := &c.out.step.res
		if r.ret == 1 {
			n += int(r.n)
			continue
		}
		err := sslError("write", r)
		if c.writeShut.Load() {
			err.Err = ErrWriteAfterShutdown
		}
		c.out.err = err
		return n, err
	}
	return n, nil
}

// ioError turns a failed wait or a skipped call into the error for op.
func (c *Conn) ioError(op sslOp, err error) error {
	if c.closed.Load() && !errors.Is(err, net.ErrClosed) {
		err = net.ErrClosed
	}
	return opError(op.String(), err)
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// NetConn returns the underlying connection. Reading or writing it directly
// corrupts the TLS stream.
func (c *Conn) NetConn() net.Conn { return c.conn }

// SetDeadline sets the read and write deadlines. They bound every operation
// that waits for the socket, the handshake and shutdown included; a zero
// value means no deadline. After Close the deadline setters return an *Error
// wrapping net.ErrClosed.
func (c *Conn) SetDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.readDeadline, c.writeDeadline = t, t
	return deadlineError(c.conn.SetDeadline(t))
}

// SetReadDeadline sets the deadline of Read, and of the waits for the
// peer's close_notify in Shutdown and Close. A Read that times out leaves
// the Conn usable.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.readDeadline = t
	return deadlineError(c.conn.SetReadDeadline(t))
}

// deadlineError wraps the socket's error of a deadline setter (net.ErrClosed
// after Close) in an *Error, as every error of a Conn is.
func deadlineError(err error) error {
	if err == nil {
		return nil
	}
	return opError("set deadline", err)
}

// SetWriteDeadline sets the deadline of Write and of sending close_notify. A
// Write that times out makes every later Write fail.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.writeDeadline = t
	return deadlineError(c.conn.SetWriteDeadline(t))
}
