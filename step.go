package openssl

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sslOp names the SSL operations that do I/O on the socket.
type sslOp int

const (
	opHandshake sslOp = iota
	opRead
	opWrite
	opShutdown
)

var opNames = [...]string{opHandshake: "handshake", opRead: "read", opWrite: "write", opShutdown: "shutdown"}

func (op sslOp) String() string { return opNames[op] }

// direction is the socket readiness an operation waits for: readable,
// writable, or (for a context that interrupts waits) both.
type direction uint8

const (
	dirRead direction = 1 << iota
	dirWrite
	dirBoth = dirRead | dirWrite
)

// shimResult is the shim's go_ossl_result, named for embedding.
type shimResult = C.go_ossl_result

// sslResult is the outcome of one SSL call: the shim's fields (ret,
// ssl_error, err_no, n) and the error queue of a failed call, converted
// once into Go memory, where the shim's copy of it is freed at once.
type sslResult struct {
	shimResult
	queue []QueueEntry
}

// callSSL makes one SSL call with c.sslMu held and leaves its outcome in r.
// It returns net.ErrClosed without calling OpenSSL once Close freed the SSL,
// and the stored error once an earlier call failed fatally: OpenSSL forbids
// further calls then.
func (c *Conn) callSSL(op sslOp, buf []byte, r *sslResult) error {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return net.ErrClosed
	}
	if c.fatalErr != nil {
		return c.fatalErr
	}
	// A typed byte pointer, not unsafe.Pointer: cgo's pointer check would
	// inspect the whole object around an unsafe.Pointer, and the caller's
	// buffer may live inside a struct holding Go pointers.
	ptr := (*C.uchar)(unsafe.SliceData(buf))
	switch op {
	case opHandshake:
		C.go_ossl_do_handshake(c.ssl, &r.shimResult)
	case opRead:
		C.go_ossl_read(c.ssl, ptr, C.size_t(len(buf)), &r.shimResult)
		if ErrorCode(r.ssl_error) == ErrorWantRead {
			c.armIdleRelease()
		}
	case opWrite:
		C.go_ossl_write(c.ssl, ptr, C.size_t(len(buf)), &r.shimResult)
	case opShutdown:
		C.go_ossl_shutdown(c.ssl, &r.shimResult)
	}
	r.queue = takeQueue(&r.shimResult)
	if ErrorCode(r.ssl_error).fatal() {
		c.fatalErr = sslError(op.String(), r)
	}
	return nil
}

// idleRelease is how long a Read waits for the peer before OpenSSL's
// buffers are released (at most twice that: see armIdleRelease).
const idleRelease = time.Millisecond

// armIdleRelease, called with c.sslMu held when a Read is about to wait for
// the peer, arranges for OpenSSL's buffers (about 17 KiB each way) to be
// released: the read waits until the peer sends more, which on an idle
// connection may be never.
//   - The first wait, usually the one right after the handshake, releases
//     them at once. That costs one free and one allocation of each buffer
//     per connection, little next to a handshake, and a connection that
//     goes idle then holds no more than it must, nor a timer (which, made
//     for every connection, measured 2 KiB of resident memory each).
//   - A later wait starts a timer, or, when one is running, only notes
//     that it waited. Releasing at once would cost every wait a free and an
//     allocation, and a busy connection (a request and its answer) waits on
//     every exchange; pushing a timer back on every wait cost a timer
//     update each (3% of a 64-byte ping-pong's CPU). The timer, when it
//     fires, looks again later if the connection waited meanwhile, and
//     releases the buffers if not: idleRelease to twice that after the
//     last wait began, and one timer event per idleRelease on a busy
//     connection.
func (c *Conn) armIdleRelease() {
	switch {
	case !c.waitedOnce:
		c.waitedOnce = true
		C.go_ossl_release_buffers(c.ssl)
	case c.idleArmed:
		c.waitedAgain = true
	case c.idleTimer == nil:
		c.idleArmed = true
		c.idleTimer = time.AfterFunc(idleRelease, c.idleTick)
	default:
		c.idleArmed = true
		c.idleTimer.Reset(idleRelease)
	}
}

// idleTick is the idle timer's event: it releases OpenSSL's buffers unless
// a Read waited again since the timer started or last fired (see
// armIdleRelease). After Close it does nothing.
func (c *Conn) idleTick() {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return
	}
	if c.waitedAgain {
		c.waitedAgain = false
		c.idleTimer.Reset(idleRelease)
		return
	}
	c.idleArmed = false
	C.go_ossl_release_buffers(c.ssl)
}

// transport is how a Conn's SSL object reaches the peer and how a Conn
// waits for it. There are two:
//   - fdTransport, the socket-fd path: OpenSSL reads and writes the socket's
//     descriptor itself, and waits happen in Go's netpoller;
//   - bioTransport, the generic path: OpenSSL reads and writes a BIO pair in
//     memory, and the Conn moves the bytes between it and any net.Conn with
//     that conn's blocking Read and Write.
type transport interface {
	// run makes s's call until OpenSSL stops asking to wait (see
	// [sslStep.run]).
	run(s *sslStep, wait direction) error
	// shutdownOnce makes ShutdownOnce's call, which never waits for the
	// peer, and leaves its outcome in r. The error is non-nil only when no
	// outcome could be had (a closed connection, a transport failure).
	shutdownOnce(r *sslResult) error
	// waitReady is Retry's wait for dir (dirRead or dirWrite).
	waitReady(dir direction) error
	// socket returns the connection's socket, for SetLinger and
	// SendQueueLen, or an error wrapping ErrNoSocket.
	socket() (syscall.RawConn, error)
}

// sslStep runs one SSL operation to completion through its Conn's transport.
// Each direction of a Conn owns one, built once, so that Read and Write
// allocate nothing.
type sslStep struct {
	c       *Conn
	op      sslOp
	buf     []byte
	res     sslResult
	skipped error // callSSL's error: the call was not made

	// slice times the calls between waits (see schedSlice).
	slice schedSlice

	// onReadable and onWritable are the syscall.RawConn callbacks of the
	// socket-fd path. Each reports "not done" only when OpenSSL's socket
	// read (or write) hit EAGAIN, as the edge-triggered netpoller requires.
	onReadable, onWritable func(fd uintptr) bool
}

func (s *sslStep) init(c *Conn) {
	s.c = c
	s.onReadable = func(uintptr) bool { return s.callUnlessWant(ErrorWantRead) }
	s.onWritable = func(uintptr) bool { return s.callUnlessWant(ErrorWantWrite) }
}

// callUnlessWant makes the step's call inside a RawConn callback and
// reports whether it is done: it is not when OpenSSL asks for want, the
// readiness the callback's netpoller wait is for. The netpoller then parks
// the goroutine, which the Conn counts as a wait (see schedSlice).
func (s *sslStep) callUnlessWant(want ErrorCode) bool {
	s.skipped = s.c.callSSL(s.op, s.buf, &s.res)
	if s.skipped == nil && ErrorCode(s.res.ssl_error) == want {
		s.c.waits.Add(1)
		return false
	}
	return true
}

// run makes the call until OpenSSL stops asking to wait. A read may ask to
// write and a write to read; run follows. A shutdown that asks to read has
// sent its alert: run returns then rather than wait for the peer's.
//
// wait is the readiness to wait for before the first call: dirWrite for
// writes and shutdowns, dirRead otherwise. The error is non-nil only when
// the call was skipped or the wait failed (deadline, closed connection);
// otherwise s.res holds the outcome.
//
// Afterwards the goroutine yields the processor if its direction has made
// calls for a whole time slice without waiting (see schedSlice).
func (s *sslStep) run(op sslOp, buf []byte, wait direction) error {
	s.op, s.buf = op, buf
	defer func() { s.buf = nil }()
	err := s.c.tr.run(s, wait)
	s.slice.endCall(s.c.waits.Load())
	return err
}

// fdTransport is the socket-fd path: OpenSSL's socket BIO reads and writes
// the descriptor, and the Conn waits in Go's netpoller.
type fdTransport struct {
	c   *Conn           // constant
	raw syscall.RawConn // constant
}

// run makes the call inside a RawConn callback, which holds a reference on
// the fd, so the fd number cannot be closed and reused while OpenSSL uses
// it.
func (t *fdTransport) run(s *sslStep, wait direction) error {
	for {
		var err error
		if wait == dirWrite {
			err = t.raw.Write(s.onWritable)
		} else {
			err = t.raw.Read(s.onReadable)
		}
		if s.skipped != nil {
			return s.skipped
		}
		if err != nil {
			return err
		}
		if s.op == opShutdown {
			t.noteShutdown(&s.res)
		}
		switch ErrorCode(s.res.ssl_error) {
		case ErrorWantRead:
			if s.op == opShutdown {
				return nil
			}
			wait = dirRead
		case ErrorWantWrite:
			wait = dirWrite
		default:
			return nil
		}
	}
}

// shutdownOnce makes the SSL_shutdown call inside a RawConn callback, so
// that the fd stays open during it.
func (t *fdTransport) shutdownOnce(r *sslResult) error {
	var skipped error
	if err := t.raw.Control(func(uintptr) { skipped = t.c.callSSL(opShutdown, nil, r) }); err != nil {
		return err
	}
	if skipped == nil {
		t.noteShutdown(r)
	}
	return skipped
}

// noteShutdown records, after an SSL_shutdown call that was made, whether
// our close_notify reached the kernel: 0 and 1 say so, and so does
// WANT_READ, which only a later call (one that reads) can return. The
// generic path records it once the pair's output is written (flushAlert).
func (t *fdTransport) noteShutdown(r *sslResult) {
	if r.ret >= 0 || ErrorCode(r.ssl_error) == ErrorWantRead {
		t.c.markAlertFlushed()
	}
}

// waitReady waits until the socket is readable or writable, as dir says.
// The poll inside the callback catches readiness that arrived before the
// netpoller was armed, which the edge-triggered netpoller would not report.
func (t *fdTransport) waitReady(dir direction) error {
	polled := false
	ready := func(fd uintptr) bool {
		if polled {
			return true
		}
		polled = true
		events := int16(unix.POLLIN)
		if dir == dirWrite {
			events = unix.POLLOUT
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	if dir == dirWrite {
		return t.raw.Write(ready)
	}
	return t.raw.Read(ready)
}

func (t *fdTransport) socket() (syscall.RawConn, error) { return t.raw, nil }

// aLongTimeAgo is a deadline that has passed: setting it wakes waiters.
var aLongTimeAgo = time.Unix(1, 0)

// interruptOn makes the deadline of dir (read, write or both) expire when
// ctx ends, so that a wait in the netpoller returns. The returned stop
// undoes that, restoring the caller's deadlines, and reports whether ctx had
// ended.
func (c *Conn) interruptOn(ctx context.Context, dir direction) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	fired := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(fired)
		c.deadlineMu.Lock()
		defer c.deadlineMu.Unlock()
		if dir&dirRead != 0 {
			c.conn.SetReadDeadline(aLongTimeAgo)
		}
		if dir&dirWrite != 0 {
			c.conn.SetWriteDeadline(aLongTimeAgo)
		}
	})
	return func() bool {
		if stopAfter() {
			return false
		}
		<-fired
		c.deadlineMu.Lock()
		defer c.deadlineMu.Unlock()
		if dir&dirRead != 0 {
			c.conn.SetReadDeadline(c.readDeadline)
		}
		if dir&dirWrite != 0 {
			c.conn.SetWriteDeadline(c.writeDeadline)
		}
		return true
	}
}
