package openssl

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"net"
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

// callSSL makes one SSL call with c.sslMu held and leaves its outcome in r.
// It returns net.ErrClosed without calling OpenSSL once Close freed the SSL,
// and the stored error once an earlier call failed fatally: OpenSSL forbids
// further calls then.
func (c *Conn) callSSL(op sslOp, buf []byte, r *C.go_ossl_result) error {
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
		C.go_ossl_do_handshake(c.ssl, r)
	case opRead:
		C.go_ossl_read(c.ssl, ptr, C.size_t(len(buf)), r)
	case opWrite:
		C.go_ossl_write(c.ssl, ptr, C.size_t(len(buf)), r)
	case opShutdown:
		C.go_ossl_shutdown(c.ssl, r)
		// 0 and 1 mean our alert reached the kernel; so does WANT_READ, which
		// only a later call (one that reads) can return.
		if r.ret >= 0 || ErrorCode(r.ssl_error) == ErrorWantRead {
			c.alertFlushed = true
		}
	}
	if ErrorCode(r.ssl_error).fatal() {
		c.fatalErr = sslError(op.String(), r)
	}
	return nil
}

// sslStep runs one SSL operation to completion, waiting in Go's netpoller for
// whichever readiness OpenSSL asks for. Each direction of a Conn owns one,
// built once, so that Read and Write allocate nothing.
type sslStep struct {
	c       *Conn
	op      sslOp
	buf     []byte
	res     C.go_ossl_result
	skipped error // callSSL's error: the call was not made

	// onReadable and onWritable are the syscall.RawConn callbacks. Each
	// reports "not done" only when OpenSSL's socket read (or write) hit
	// EAGAIN, as the edge-triggered netpoller requires.
	onReadable, onWritable func(fd uintptr) bool
}

func (s *sslStep) init(c *Conn) {
	s.c = c
	s.onReadable = func(uintptr) bool {
		s.skipped = s.c.callSSL(s.op, s.buf, &s.res)
		return s.skipped != nil || ErrorCode(s.res.ssl_error) != ErrorWantRead
	}
	s.onWritable = func(uintptr) bool {
		s.skipped = s.c.callSSL(s.op, s.buf, &s.res)
		return s.skipped != nil || ErrorCode(s.res.ssl_error) != ErrorWantWrite
	}
}

// run makes the call until OpenSSL stops asking to wait. The call runs inside
// a RawConn callback, which holds a reference on the fd, so the fd number
// cannot be closed and reused while OpenSSL uses it. A read may ask to write
// and a write to read; run follows. A shutdown that asks to read has sent its
// alert: run returns then rather than wait for the peer's.
//
// wait is the readiness to wait for before the first call: dirWrite for
// writes and shutdowns, dirRead otherwise. The error is non-nil only when
// the call was skipped or the wait failed (deadline, closed connection);
// otherwise s.res holds the outcome.
func (s *sslStep) run(op sslOp, buf []byte, wait direction) error {
	s.op, s.buf = op, buf
	defer func() { s.buf = nil }()
	for {
		var err error
		if wait == dirWrite {
			err = s.c.raw.Write(s.onWritable)
		} else {
			err = s.c.raw.Read(s.onReadable)
		}
		if s.skipped != nil {
			return s.skipped
		}
		if err != nil {
			return err
		}
		switch ErrorCode(s.res.ssl_error) {
		case ErrorWantRead:
			if op == opShutdown {
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

// waitReady waits until the socket is readable or writable, as dir says:
// Retry's wait. The poll inside the callback catches readiness that arrived
// before the netpoller was armed, which the edge-triggered netpoller would
// not report.
func (c *Conn) waitReady(dir direction) error {
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
		return c.raw.Write(ready)
	}
	return c.raw.Read(ready)
}

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
