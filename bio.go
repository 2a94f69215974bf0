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
	"sync/atomic"
	"syscall"
	"unsafe"
)

// bioBufSize is the size of each of the generic path's four buffers: the
// two of the BIO pair and the Conn's own two. It holds the largest TLS
// record (about 18 KiB), so that a record usually crosses in one inner Read
// or Write.
const bioBufSize = 32 << 10

// maxEmptyReads bounds how often fill retries an inner Read that returned
// neither bytes nor an error before it gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// bioTransport is the generic path, for any net.Conn. OpenSSL reads and
// writes one half of a BIO pair in memory; the Conn moves the bytes between
// the other half (Conn.netBIO) and the inner conn:
//   - when OpenSSL asks to read, one Read of the inner conn goes into the
//     BIO (fill);
//   - after every SSL call, what OpenSSL wrote into the BIO is written to
//     the inner conn (flush). Write, the handshake's flights and our
//     close_notify wait for that; the output of a Read (a KeyUpdate
//     answer, say) and the last flight of a handshake (a client's Finished,
//     a server's session tickets) are written by a goroutine of their own
//     (kick), so that a reader never waits for the peer to read.
//
// Waiting is the inner conn's blocking Read and Write, bounded by its
// deadlines; Close closes the inner conn, which wakes them. Reading the
// inner conn and writing it are serialised separately, by fillLock and
// flushLock, and neither I/O is done holding sslMu.
type bioTransport struct {
	c *Conn // constant

	// fillLock serialises reading the inner conn and giving the bytes to
	// OpenSSL, so that they reach the BIO in the order they arrived.
	fillLock gate
	inBuf    []byte // protected by fillLock; what the last inner Read returned
	inPend   []byte // protected by fillLock; the part of inBuf the BIO had no room for yet
	inEOF    bool   // protected by fillLock; the inner conn returned io.EOF
	// fed counts the times fill gave OpenSSL bytes. A step loads it before
	// its SSL call; fill reads nothing when it has changed since, because
	// the new bytes may be what the call was missing.
	fed atomic.Uint64
	// shutdownFed is fed as the last ShutdownOnce (or Retry's wait) saw it.
	shutdownFed atomic.Uint64

	// flushLock serialises taking OpenSSL's output from the BIO and writing
	// it to the inner conn, so that records leave in the order OpenSSL made
	// them.
	flushLock gate
	outBuf    []byte // protected by flushLock
	outPend   []byte // protected by flushLock; taken from the BIO, not yet written (an inner Write failed)
	// flushWanted is set by every goroutine before it tries to flush and
	// cleared by the one that drains the BIO. A flusher that finds it set
	// after unlocking drains again: the output of a goroutine whose TryLock
	// failed meanwhile is never left behind.
	flushWanted atomic.Bool

	// alertPending: ShutdownOnce queued our close_notify but could not
	// write all of it to the inner conn before the write deadline.
	alertPending bool // protected by c.out.lock
}

func newBIOTransport(c *Conn) *bioTransport {
	return &bioTransport{
		c:      c,
		inBuf:  make([]byte, bioBufSize),
		outBuf: make([]byte, bioBufSize),
	}
}

// run makes the call, writes what it produced, and reads the inner conn
// when OpenSSL asks to, until OpenSSL stops asking. A shutdown that asks to
// read has written its alert: run returns then. OpenSSL's pair never asks
// to wait for writing except when its buffer is full, and a flush empties
// it. wait does not matter here: every call is made at once.
func (t *bioTransport) run(s *sslStep, _ direction) error {
	c := t.c
	for {
		fed := t.fed.Load()
		if err := c.callSSL(s.op, s.buf, &s.res); err != nil {
			return err
		}
		code := ErrorCode(s.res.ssl_error)
		final := code != ErrorWantRead && code != ErrorWantWrite
		switch {
		case s.op == opRead && code != ErrorWantWrite,
			s.op == opHandshake && final,
			code.fatal():
			// Nobody waits for this output: a reader must not wait for
			// the peer to read, a handshake is done, an error is final.
			t.kick()
		default:
			if err := t.flush(); err != nil {
				return c.transportError(s.op, err)
			}
			if s.op == opShutdown && code != ErrorWantWrite {
				// 0, 1 or WANT_READ: the alert was in what went out.
				t.alertPending = false
				c.markAlertFlushed()
			}
		}
		switch code {
		case ErrorWantRead:
			if s.op == opShutdown {
				return nil
			}
			// The inner conn's Read parks the goroutine when nothing
			// is there, as the netpoller does on the socket-fd path.
			c.waits.Add(1)
			if err := t.fill(fed); err != nil {
				return c.transportError(s.op, err)
			}
		case ErrorWantWrite:
			// The pair's buffer was full; the flush emptied it.
		default:
			return nil
		}
	}
}

// shutdownOnce makes ShutdownOnce's call on the generic path. The inner
// conn has no "would block", so the call writes our alert to it within the
// write deadline: when the alert does not all go through in time, the
// outcome is SSL_ERROR_WANT_WRITE and the rest is kept; the next call
// writes it and returns what SSL_shutdown would then return (0, or 1 when
// the peer's close_notify is in), without calling it, as OpenSSL does when
// it resends a pending alert. The call never reads the inner conn.
func (t *bioTransport) shutdownOnce(r *sslResult) error {
	c := t.c
	if t.alertPending {
		if err := t.flushAlert(r); err != nil {
			return err
		}
		if ErrorCode(r.ssl_error) == ErrorNone {
			r.ret = 0
			if c.ShutdownState().Received() {
				r.ret = 1
			}
		}
		return nil
	}
	t.shutdownFed.Store(t.fed.Load())
	if err := c.callSSL(opShutdown, nil, r); err != nil {
		return err
	}
	switch code := ErrorCode(r.ssl_error); {
	case code.fatal():
		t.kick()
		return nil
	case code == ErrorWantWrite:
		// The pair's buffer is full and the alert waits inside OpenSSL:
		// make room for the next call.
		if err := t.flush(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return c.transportError(opShutdown, err)
		}
		return nil
	}
	// 0, 1 or WANT_READ: the alert is in the pair.
	return t.flushAlert(r)
}

// flushAlert writes our queued close_notify (and what precedes it) to the
// inner conn. When the write deadline passes first, it turns r into
// SSL_ERROR_WANT_WRITE and remembers that the alert is pending.
func (t *bioTransport) flushAlert(r *sslResult) error {
	err := t.flush()
	switch {
	case err == nil:
		t.alertPending = false
		t.c.markAlertFlushed()
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && !t.c.closed.Load():
		t.alertPending = true
		*r = sslResult{shimResult: shimResult{ret: -1, ssl_error: C.SSL_ERROR_WANT_WRITE}}
		return nil
	}
	return t.c.transportError(opShutdown, err)
}

// waitReady is Retry's wait. Writable: OpenSSL's output has been written to
// the inner conn. Readable: the inner conn returned bytes (or EOF) and they
// are in the BIO; it returns at once when another goroutine gave OpenSSL
// bytes since ShutdownOnce's call, since they may hold the peer's
// close_notify.
func (t *bioTransport) waitReady(dir direction) error {
	if dir == dirWrite {
		return t.flush()
	}
	seen := t.shutdownFed.Load()
	if now := t.fed.Load(); now != seen {
		// Once only: a step other than ShutdownOnce must not spin here.
		t.shutdownFed.Store(now)
		return nil
	}
	return t.fill(seen)
}

// socket returns the inner conn's socket when it exposes one (a wrapper
// that embeds *net.TCPConn, say): SO_LINGER and SIOCOUTQ mean the same
// below a wrapper.
func (t *bioTransport) socket() (syscall.RawConn, error) {
	sc, ok := t.c.conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w (%T)", ErrNoSocket, t.c.conn)
	}
	return sc.SyscallConn()
}

// fill gives OpenSSL more of the peer's bytes: the rest of the last inner
// Read, or one more inner Read, followed by the inner conn's EOF once it
// came. It reads nothing when another goroutine gave OpenSSL bytes since the
// caller loaded fed.
func (t *bioTransport) fill(fed uint64) error {
	t.fillLock.Lock()
	defer t.fillLock.Unlock()
	if t.fed.Load() != fed {
		return nil
	}
	if len(t.inPend) == 0 && !t.inEOF {
		n, err := t.readInner()
		t.inPend = t.inBuf[:n]
		switch {
		case err == io.EOF:
			t.inEOF = true
		case err != nil && n == 0:
			return err
		}
		// Bytes with an error other than EOF: give the bytes now; the
		// next Read returns the error again.
	}
	return t.give()
}

// readInner reads the inner conn once, retrying a bounded number of reads
// that return neither bytes nor an error.
func (t *bioTransport) readInner() (int, error) {
	for range maxEmptyReads {
		n, err := t.c.conn.Read(t.inBuf)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// give puts inPend, then the inner conn's EOF, into the BIO.
func (t *bioTransport) give() error {
	c := t.c
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return net.ErrClosed
	}
	if len(t.inPend) > 0 {
		n := C.go_ossl_bio_give(c.netBIO, (*C.uchar)(unsafe.SliceData(t.inPend)), C.int(len(t.inPend)))
		t.inPend = t.inPend[n:]
	}
	if len(t.inPend) == 0 && t.inEOF {
		C.go_ossl_bio_close_write(c.netBIO)
	}
	t.fed.Add(1)
	return nil
}

// flush writes all of OpenSSL's output to the inner conn before it
// returns, waiting for a flush in progress in another goroutine.
func (t *bioTransport) flush() error {
	t.flushWanted.Store(true)
	t.flushLock.Lock()
	return t.drainAndRecheck()
}

// kick has OpenSSL's output written without waiting for it: when there is
// some and nobody is writing already, a goroutine of its own writes it
// (and flushLock passes to that goroutine). A failure there other than a
// timeout is stored as the Conn's fatal error; after a timeout, the bytes
// stay for the next flush.
func (t *bioTransport) kick() {
	t.flushWanted.Store(true)
	for t.flushWanted.Load() && t.flushLock.TryLock() {
		t.flushWanted.Store(false)
		if len(t.outPend) == 0 {
			n, err := t.take()
			if err != nil || n == 0 {
				t.flushLock.Unlock()
				continue
			}
			t.outPend = t.outBuf[:n]
		}
		go func() {
			if err := t.drainAndRecheck(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.c.transportError(opWrite, err)
			}
		}()
		return
	}
}

// drainAndRecheck drains with flushLock held and unlocks it; it drains again
// while another goroutine asked for a flush meanwhile and nobody took it.
func (t *bioTransport) drainAndRecheck() error {
	for {
		err := t.drainLocked()
		t.flushLock.Unlock()
		if err != nil || !t.flushWanted.Load() || !t.flushLock.TryLock() {
			return err
		}
	}
}

// drainLocked writes to the inner conn until the BIO is empty. Bytes taken
// but not written (the inner Write failed) stay in outPend for the next
// flush, so that the stream stays whole.
func (t *bioTransport) drainLocked() error {
	t.flushWanted.Store(false)
	for {
		if len(t.outPend) == 0 {
			n, err := t.take()
			if err != nil || n == 0 {
				return err
			}
			t.outPend = t.outBuf[:n]
		}
		n, err := t.c.conn.Write(t.outPend)
		t.outPend = t.outPend[n:]
		if err != nil {
			return err
		}
	}
}

// take moves OpenSSL's output from the BIO into outBuf.
func (t *bioTransport) take() (int, error) {
	c := t.c
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return 0, net.ErrClosed
	}
	return int(C.go_ossl_bio_take(c.netBIO, (*C.uchar)(unsafe.SliceData(t.outBuf)), C.int(len(t.outBuf)))), nil
}

// transportError classifies an inner conn's error for op. A timeout, and
// any error once the Conn is closed, pass through: the first leaves the
// Conn usable for Read. Any other failure is fatal, as SSL_ERROR_SYSCALL is
// on the socket-fd path: it becomes an *Error with Code ErrorSyscall (and
// Errno when the inner conn reported one), stored so that every later SSL
// call returns it.
func (c *Conn) transportError(op sslOp, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || c.closed.Load() || errors.Is(err, net.ErrClosed) {
		return err
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	e := &Error{Op: op.String(), Code: ErrorSyscall, Err: err}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Errno = errno
	}
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.fatalErr == nil {
		c.fatalErr = e
	}
	return c.fatalErr
}
