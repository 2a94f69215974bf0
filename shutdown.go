package openssl

/*
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// ShutdownResult is what one SSL_shutdown call achieved.
type ShutdownResult int

const (
	// ShutdownFailed: SSL_shutdown returned -1; the error says why and what
	// to do (ErrWantRead, ErrWantWrite, or a fatal *Error).
	ShutdownFailed ShutdownResult = -1
	// ShutdownSent: SSL_shutdown returned 0. Our close_notify is in the
	// kernel; the peer's has not arrived. Next: Read until io.EOF (or
	// Shutdown), CloseWrite's half-close, or simply Close.
	ShutdownSent ShutdownResult = 0
	// ShutdownComplete: SSL_shutdown returned 1. Both close_notify alerts
	// have been exchanged.
	ShutdownComplete ShutdownResult = 1
)

func (r ShutdownResult) String() string {
	switch r {
	case ShutdownSent:
		return "sent"
	case ShutdownComplete:
		return "complete"
	case ShutdownFailed:
		return "failed"
	}
	return fmt.Sprintf("ShutdownResult(%d)", int(r))
}

// ShutdownState holds the flags of SSL_get_shutdown.
type ShutdownState int

// Sent reports whether our close_notify was sent (or queued to be sent),
// or a quiet shutdown was made.
func (s ShutdownState) Sent() bool { return s&C.SSL_SENT_SHUTDOWN != 0 }

// Received reports whether the peer's close_notify arrived (or a quiet
// shutdown was made).
func (s ShutdownState) Received() bool { return s&C.SSL_RECEIVED_SHUTDOWN != 0 }

func (s ShutdownState) String() string {
	return fmt.Sprintf("sent=%t received=%t", s.Sent(), s.Received())
}

// ShutdownState returns the connection's shutdown flags; after Close, the
// flags it had when Close freed the SSL (corresponds to SSL_get_shutdown).
func (c *Conn) ShutdownState() ShutdownState {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return c.finalState
	}
	return ShutdownState(C.SSL_get_shutdown(c.ssl))
}

// DiscardedBytes returns how many bytes of application data the peer sent
// after our close_notify that Shutdown, or a Close waiting for the peer, read
// and threw away. Use CloseWrite and Read to keep such data.
func (c *Conn) DiscardedBytes() int64 { return c.discarded.Load() }

// ShutdownOnce makes exactly one SSL_shutdown call and never waits:
//   - [ShutdownSent], nil: SSL_shutdown returned 0;
//   - [ShutdownComplete], nil: it returned 1;
//   - [ShutdownFailed] with an *Error whose Code is SSL_get_error's answer
//     when it returned -1: errors.Is(err, [ErrWantWrite]) means the alert is
//     not yet in the kernel, [ErrWantRead] that a later call waits for the
//     peer's close_notify; [Conn.Retry] waits for either. Other codes are
//     fatal.
//
// Other outcomes:
//   - before the handshake completed: [ErrHandshakeIncomplete], nothing sent;
//   - after a fatal error: that error, without calling OpenSSL;
//   - while a Write is in progress in another goroutine: ShutdownFailed with
//     ErrWantWrite and no call made, since the alert cannot follow half a
//     record; Retry waits for that Write to end;
//   - after a Write failed (its deadline passed, say): ShutdownFailed with
//     [ErrWriteIncomplete] and no call made. Part of a record may still be
//     inside OpenSSL, and the alert cannot follow it: OpenSSL 3.0 would
//     fail with "bad write retry", and 3.5 would drop the alert and then
//     wait for the peer's answer to it, which cannot come.
//
// On the generic path (see [Conn]) the net.Conn has no "would block":
//   - the call writes our alert with the net.Conn's Write, which may wait
//     (for net.Pipe, until the peer reads), bounded by the write deadline;
//   - -1/WANT_WRITE means that Write did not take all of the alert before
//     the deadline (or a Write is in progress); the rest is kept, and the
//     next call (or Retry) writes it and returns 0, or 1 when the peer's
//     close_notify is in, without calling SSL_shutdown, as OpenSSL does
//     when it resends a pending alert;
//   - the call never reads the net.Conn, so -1/WANT_READ means the peer's
//     close_notify is not among the bytes already read; Retry reads more.
//
// [Conn.Write] fails with [ErrWriteAfterShutdown] from the first call on. A
// second call reads the peer's close_notify itself and fails if application
// data comes first (OpenSSL's "application data after close notify"): to
// wait for the peer, prefer [Conn.Shutdown], which reads with SSL_read
// (corresponds to SSL_shutdown).
func (c *Conn) ShutdownOnce() (ShutdownResult, error) {
	if err := c.checkHandshake("shutdown"); err != nil {
		return ShutdownFailed, err
	}
	c.writeShut.Store(true)
	if !c.out.lock.TryLock() {
		return ShutdownFailed, &Error{Op: "shutdown", Code: ErrorWantWrite, Err: ErrWantWrite}
	}
	defer c.out.lock.Unlock()
	if err := c.writeFailedLocked(); err != nil {
		return ShutdownFailed, err
	}
	return c.shutdownCall()
}

// writeFailedLocked returns, with c.out.lock held, the error of a shutdown
// asked for after a Write failed: the connection's fatal error if it has
// one, else ErrWriteIncomplete.
func (c *Conn) writeFailedLocked() error {
	if c.out.err == nil {
		return nil
	}
	c.sslMu.Lock()
	fatal := c.fatalErr
	c.sslMu.Unlock()
	if fatal != nil {
		return fatal
	}
	return &Error{Op: "shutdown", Err: ErrWriteIncomplete}
}

// shutdownCall is ShutdownOnce's one SSL_shutdown call, made by the
// transport.
func (c *Conn) shutdownCall() (ShutdownResult, error) {
	var r sslResult
	if err := c.tr.shutdownOnce(&r); err != nil {
		return ShutdownFailed, c.ioError(opShutdown, err)
	}
	switch r.ret {
	case 1:
		return ShutdownComplete, nil
	case 0:
		return ShutdownSent, nil
	}
	return ShutdownFailed, sslError("shutdown", &r)
}

// checkHandshake returns the error of a shutdown asked for before the
// handshake completed: the handshake's own error when it failed,
// ErrHandshakeIncomplete otherwise.
func (c *Conn) checkHandshake(op string) error {
	if c.handshakeDone.Load() {
		return nil
	}
	if c.handshakeMu.TryLock() {
		err := c.handshakeErr
		c.handshakeMu.Unlock()
		if err != nil {
			return err
		}
	}
	return &Error{Op: op, Err: ErrHandshakeIncomplete}
}

// Retry runs op, a non-blocking step such as [Conn.ShutdownOnce], until it
// returns an error that is neither [ErrWantRead] nor [ErrWantWrite] (or
// nil), waiting in Go's netpoller until the socket is readable or writable
// as the error asks; on the generic path, reading the net.Conn once, or
// writing OpenSSL's pending output to it. Before waiting for a writable socket it waits for a
// Write in progress in another goroutine to end, so that it does not spin
// while that Write keeps the socket writable. When ctx ends or a deadline
// passes first, it returns an *Error wrapping both op's last error and the
// cause (ctx's error or [os.ErrDeadlineExceeded]). op must not block: Read
// and Write are not steps.
func (c *Conn) Retry(ctx context.Context, op func() error) error {
	if ctx == nil {
		return &Error{Op: "retry", Err: ErrNilContext}
	}
	if op == nil {
		return &Error{Op: "retry", Err: errors.New("openssl: nil step")}
	}
	stop := c.interruptOn(ctx, dirBoth)
	defer stop()
	for {
		err := op()
		wait := dirRead
		switch {
		case errors.Is(err, ErrWantRead):
		case errors.Is(err, ErrWantWrite):
			wait = dirWrite
		default:
			return err
		}
		if ctx.Err() != nil {
			return &Error{Op: "retry", Err: fmt.Errorf("%w (%w)", err, ctx.Err())}
		}
		werr := c.waitWriter(ctx, wait)
		if werr == nil {
			werr = c.tr.waitReady(wait)
		}
		if werr != nil {
			if ctx.Err() != nil {
				werr = ctx.Err()
			} else if c.closed.Load() {
				werr = net.ErrClosed
			}
			return &Error{Op: "retry", Err: fmt.Errorf("%w (%w)", err, werr)}
		}
	}
}

// waitWriter waits, for a write wait, until no Write holds the write lock.
func (c *Conn) waitWriter(ctx context.Context, wait direction) error {
	if wait != dirWrite {
		return nil
	}
	if err := c.out.lock.LockContext(ctx); err != nil {
		return err
	}
	c.out.lock.Unlock()
	return nil
}

// Shutdown shuts the TLS connection down in both directions: it sends our
// close_notify, waiting while the socket's send buffer is full, then reads
// until the peer's close_notify arrives. Application data the peer sends
// meanwhile is read and discarded (counted by [Conn.DiscardedBytes]): to
// keep it, use [Conn.CloseWrite] and [Conn.Read] instead. Shutdown never
// calls SSL_shutdown a second time, so such data cannot break it. It
// returns:
//   - nil when both alerts were exchanged (also when the peer's had already
//     arrived through Read);
//   - an *Error wrapping ErrTruncated when the peer closed TCP without
//     close_notify;
//   - an *Error wrapping ErrShutdownTimeout and the cause
//     (context.DeadlineExceeded or os.ErrDeadlineExceeded) when ctx's
//     deadline or the Conn's passed first;
//   - an *Error wrapping context.Canceled (not a timeout) when ctx was
//     canceled first;
//   - [ErrWriteIncomplete], with nothing sent, after a Write failed;
//   - ErrHandshakeIncomplete before the handshake completed, ErrNilContext
//     for a nil ctx, or the transport's or OpenSSL's error.
//
// It does not close the socket; [Conn.Close] does.
func (c *Conn) Shutdown(ctx context.Context) error {
	if ctx == nil {
		return &Error{Op: "shutdown", Err: ErrNilContext}
	}
	if err := c.checkHandshake("shutdown"); err != nil {
		return err
	}
	complete, err := c.sendCloseNotify(ctx)
	if err == nil && !complete {
		err = c.awaitCloseNotify(ctx)
	}
	return err
}

// markAlertFlushed records that our close_notify reached the kernel (or,
// on the generic path, the inner conn). Each transport decides when: see
// fdTransport.noteShutdown and bioTransport.flushAlert.
func (c *Conn) markAlertFlushed() {
	c.sslMu.Lock()
	c.alertFlushed = true
	c.sslMu.Unlock()
}

// sendCloseNotify sends our close_notify, unless it already reached the
// kernel, and reports whether the peer's had arrived too.
func (c *Conn) sendCloseNotify(ctx context.Context) (complete bool, err error) {
	c.writeShut.Store(true)
	if err := c.out.lock.LockContext(ctx); err != nil {
		return false, c.shutdownTimeout(ctx, err)
	}
	defer c.out.lock.Unlock()
	c.sslMu.Lock()
	flushed := c.alertFlushed
	c.sslMu.Unlock()
	if flushed {
		return c.ShutdownState().Received(), nil
	}
	if err := c.writeFailedLocked(); err != nil {
		return false, err
	}
	// The first attempt does not wait: the alert usually fits in the
	// socket's send buffer, and a deadline or context that has already
	// passed must not keep it from going out then. On the generic path it
	// is a Write to the inner conn, which can block (net.Pipe's until the
	// peer reads): ctx bounds it too.
	r := &c.out.step.res
	if _, generic := c.tr.(*bioTransport); generic {
		stop := c.interruptOn(ctx, dirWrite)
		err = c.tr.shutdownOnce(r)
		if stop() {
			err = ctx.Err()
		}
	} else {
		err = c.tr.shutdownOnce(r)
	}
	if err == nil && ErrorCode(r.ssl_error) == ErrorWantWrite {
		stop := c.interruptOn(ctx, dirWrite)
		err = c.out.step.run(opShutdown, nil, dirWrite)
		if stop() {
			err = ctx.Err()
		}
	}
	if err != nil {
		return false, c.shutdownError(ctx, err)
	}
	switch {
	case r.ret == 1:
		return true, nil
	case r.ret == 0 || ErrorCode(r.ssl_error) == ErrorWantRead:
		return false, nil
	}
	return false, sslError("shutdown", r)
}

// awaitCloseNotify reads, discarding application data, until the peer's
// close_notify arrives.
func (c *Conn) awaitCloseNotify(ctx context.Context) error {
	if err := c.in.lock.LockContext(ctx); err != nil {
		return c.shutdownTimeout(ctx, err)
	}
	defer c.in.lock.Unlock()
	stop := c.interruptOn(ctx, dirRead)
	err := c.discardUntilCloseNotify()
	if stop() {
		err = ctx.Err()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTruncated):
		return err
	}
	return c.shutdownError(ctx, err)
}

// discardUntilCloseNotify reads with c.in.lock held until Read would return
// io.EOF, and returns nil then; the peer's data is counted and dropped.
func (c *Conn) discardUntilCloseNotify() error {
	var scratch [16 << 10]byte
	for {
		n, err := c.readLocked(scratch[:])
		c.discarded.Add(int64(n))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// shutdownError turns the error of a shutdown wait into ErrShutdownTimeout
// when a context or deadline ended it.
func (c *Conn) shutdownError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return c.shutdownTimeout(ctx, err)
	}
	return c.ioError(opShutdown, err)
}

// shutdownTimeout is the error of a shutdown wait that ctx or a deadline
// ended: ErrShutdownTimeout and the deadline that passed, or ctx's
// cancellation, which is not a timeout.
func (c *Conn) shutdownTimeout(ctx context.Context, cause error) error {
	if ctx.Err() != nil {
		cause = ctx.Err()
	} else if errors.Is(cause, os.ErrDeadlineExceeded) {
		cause = os.ErrDeadlineExceeded
	}
	if errors.Is(cause, context.Canceled) {
		return &Error{Op: "shutdown", Err: cause}
	}
	return &Error{Op: "shutdown", Err: fmt.Errorf("%w: %w", ErrShutdownTimeout, cause)}
}

// CloseWrite sends our close_notify (waiting, within the write deadline,
// while the send buffer is full) and then half-closes the transport with
// the net.Conn's CloseWrite (shutdown(fd, SHUT_WR) for TCP): the peer sees
// close_notify followed by FIN. A net.Conn without CloseWrite (net.Pipe)
// gets the alert only. Read goes on returning the peer's data until its
// close_notify (io.EOF); Write returns ErrWriteAfterShutdown. Before the
// handshake completed it returns ErrHandshakeIncomplete, and after a failed
// Write [ErrWriteIncomplete], and sends nothing. A second call does nothing
// more.
func (c *Conn) CloseWrite() error {
	if err := c.checkHandshake("close write"); err != nil {
		return err
	}
	if _, err := c.sendCloseNotify(context.Background()); err != nil {
		return err
	}
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok {
		return nil // a conn that cannot half-close: the alert is all
	}
	if err := cw.CloseWrite(); err != nil {
		return c.ioError(opShutdown, err)
	}
	return nil
}
