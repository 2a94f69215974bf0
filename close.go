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
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCloseTimeout bounds Close when ClosePolicy.Timeout is zero.
const DefaultCloseTimeout = 5 * time.Second

// ClosePolicy says what [Conn.Close] does before it closes the socket. The
// zero policy sends our close_notify (if the handshake completed), does not
// wait for the peer's, and closes. Every wait is bounded by Timeout.
// Lingering includes waiting for the peer, so WaitForPeer adds nothing to
// it; DrainSendQueue runs last and combines with either.
type ClosePolicy struct {
	// WaitForPeer: after sending our close_notify, wait for the peer's, as
	// Shutdown does, discarding data that arrives first.
	WaitForPeer bool
	// Quiet: send no close_notify and mark both directions shut
	// (SSL_set_quiet_shutdown). This breaks TLS; it suits peers known to
	// misbehave.
	Quiet bool
	// DrainSendQueue: after the alert, wait until the kernel's send queue is
	// empty (SendQueueLen 0: the peer's TCP acknowledged everything).
	DrainSendQueue bool
	// Lingering: after the alert, half-close TCP (CloseWrite), then read and
	// discard until the peer closes, so that unread input does not make the
	// kernel answer with RST and destroy data the peer has not read yet
	// (nginx's lingering close).
	Lingering bool
	// Timeout bounds the whole of Close; zero means DefaultCloseTimeout.
	Timeout time.Duration
}

func (p ClosePolicy) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultCloseTimeout
	}
	return p.Timeout
}

// SetClosePolicy sets the ClosePolicy of this connection; it starts as its
// Ctx's.
func (c *Conn) SetClosePolicy(p ClosePolicy) {
	c.policyMu.Lock()
	c.policy = p
	c.policyMu.Unlock()
}

// Close shuts the connection down as its [ClosePolicy] says, closes the
// socket, and frees the SSL object once no goroutine is inside OpenSSL with
// it. It always closes the socket and returns within the policy's Timeout
// (plus scheduling), even when the peer stops reading and the alert cannot
// be flushed. Goroutines blocked in Read, Write or Shutdown return errors
// wrapping [net.ErrClosed].
//
// No close_notify is sent:
//   - before the handshake completed;
//   - after a fatal error, or after [Conn.SetLinger](0);
//   - after a Write failed (a deadline, say), or while a Write is in
//     progress in another goroutine: a record may be half sent, and the
//     alert cannot follow it (crypto/tls skips the alert the same way).
//
// When Read has already returned io.EOF, the peer's close_notify is in, and
// Close completes the exchange without waiting. Close does not wait for the
// peer while a Read is in progress in another goroutine.
//
// It returns nil, or the error of the shutdown steps ([ErrShutdownTimeout],
// [ErrTruncated], a transport error), wrapped in an *Error for "close": the
// socket is closed all the same. A second Close returns an *Error wrapping
// net.ErrClosed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return &Error{Op: "close", Err: net.ErrClosed}
	}
	c.policyMu.Lock()
	p := c.policy
	c.policyMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
	defer cancel()
	bio, generic := c.tr.(*bioTransport)
	if generic {
		// Deadlines bound the steps below only when the inner conn
		// honours them: closing it when the timeout passes bounds them
		// in any case.
		defer context.AfterFunc(ctx, func() { c.closeConn() })()
	}

	var err error
	if c.handshakeDone.Load() && !c.abortive.Load() {
		err = c.closeTLS(ctx, p)
	}
	if cerr := c.closeConn(); err == nil && cerr != nil {
		err = cerr
	}
	if generic && bio.flushLock.LockContext(ctx) == nil {
		// Wait for a goroutine still writing OpenSSL's output: closing
		// the inner conn ended its Write. (If that conn's Close does not
		// wake its Write, Close returns at its timeout all the same; the
		// writer finds the SSL freed.)
		bio.flushLock.Unlock()
	}
	c.freeSSL()
	if err != nil {
		return &Error{Op: "close", Err: fmt.Errorf("%w (the connection was closed anyway)", err)}
	}
	return nil
}

// closeConn closes the inner conn once and returns that Close's error.
func (c *Conn) closeConn() error {
	c.connClose.Do(func() { c.connErr = c.conn.Close() })
	return c.connErr
}

// closeTLS runs the policy's steps before the socket is closed.
func (c *Conn) closeTLS(ctx context.Context, p ClosePolicy) error {
	c.sslMu.Lock()
	broken := c.fatalErr != nil
	c.sslMu.Unlock()
	if broken {
		return nil // OpenSSL forbids further calls; the error was reported
	}
	if p.Quiet {
		// A quiet SSL_shutdown only sets the flags and sends nothing, so
		// it need not wait for a Write in progress.
		c.writeShut.Store(true)
		c.sslMu.Lock()
		if c.ssl != nil {
			C.SSL_set_quiet_shutdown(c.ssl, 1)
		}
		c.sslMu.Unlock()
		_, err := c.shutdownCall()
		return err
	}
	if !c.out.lock.TryLock() {
		return nil // a Write is in flight: no alert
	}
	writeFailed := c.out.err != nil
	c.out.lock.Unlock()
	if writeFailed {
		// A failed Write may have left part of a record inside OpenSSL,
		// and the alert cannot be sent behind it.
		return nil
	}
	complete, err := c.sendCloseNotify(ctx)
	if err != nil {
		return err
	}
	switch {
	case complete:
	case p.Lingering:
		err = c.lingeringClose(ctx)
	case p.WaitForPeer:
		if !c.in.lock.TryLock() {
			break // a Read is in flight and will take the peer's alert
		}
		c.in.lock.Unlock()
		err = c.awaitCloseNotify(ctx)
	}
	if err == nil && p.DrainSendQueue {
		err = c.drainSendQueue(ctx)
	}
	return err
}

// lingeringClose half-closes TCP, then reads and discards until the peer
// closes or ctx ends: closing with unread input would make the kernel send
// RST.
func (c *Conn) lingeringClose(ctx context.Context) error {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return c.ioError(opShutdown, err)
		}
	}
	if !c.in.lock.TryLock() {
		return nil
	}
	defer c.in.lock.Unlock()
	stop := c.interruptOn(ctx, dirRead)
	err := c.discardUntilCloseNotify()
	if err == nil || errors.Is(err, ErrTruncated) {
		// After close_notify OpenSSL reads no more; the socket may still
		// hold bytes (or a FIN) that must be read for a clean close.
		_, err = io.Copy(io.Discard, c.conn)
	}
	if stop() {
		return c.shutdownTimeout(ctx, ctx.Err())
	}
	if err != nil && !errors.Is(err, ErrTruncated) {
		return c.shutdownError(ctx, err)
	}
	return nil
}

// drainSendQueue waits until the kernel's send queue is empty. The kernel
// has no readiness event for that, so it polls SIOCOUTQ with growing pauses.
// Without a socket (ErrNoSocket) there is nothing more to wait for: the
// alert has been written to the inner conn.
func (c *Conn) drainSendQueue(ctx context.Context) error {
	pause := time.Millisecond
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		n, err := c.SendQueueLen()
		if errors.Is(err, ErrNoSocket) {
			return nil
		}
		if err != nil || n == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return c.shutdownTimeout(ctx, ctx.Err())
		case <-timer.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
		timer.Reset(pause)
	}
}

// freeSSL frees the SSL object, keeping its shutdown flags for
// ShutdownState. Every call into the SSL holds sslMu and checks for nil, so
// none can use it afterwards.
func (c *Conn) freeSSL() {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return
	}
	c.finalState = ShutdownState(C.SSL_get_shutdown(c.ssl))
	C.SSL_free(c.ssl)
	c.ssl = nil
	if c.netBIO != nil {
		C.go_ossl_bio_free(c.netBIO)
		c.netBIO = nil
	}
	liveSSL.Add(-1)
	if c.idleTimer != nil {
		c.idleTimer.Stop() // it would find c.ssl nil, but need not fire at all
	}
	if c.hooks.handle != 0 {
		c.hooks.handle.Delete() // after SSL_free: no callback can run now
		c.hooks.switched = nil
	}
}

// SetLinger sets SO_LINGER on the socket, for [Conn.Close]:
//   - sec < 0 restores the default: close returns at once, the kernel sends
//     what is queued in the background;
//   - sec > 0 makes the socket's close wait up to sec seconds for queued
//     data;
//   - sec == 0 makes Close abortive: it sends no close_notify, and the
//     kernel drops queued data and sends RST.
//
// On the generic path the socket is the inner conn's when it exposes one
// (syscall.Conn, as a wrapper embedding *net.TCPConn does); without one,
// SetLinger returns an *Error wrapping [ErrNoSocket].
func (c *Conn) SetLinger(sec int) error {
	l := unix.Linger{Onoff: 1, Linger: int32(sec)}
	if sec < 0 {
		l = unix.Linger{}
	}
	raw, err := c.tr.socket()
	if err != nil {
		return &Error{Op: "set linger", Err: err}
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &l)
	}); err != nil {
		return c.ioError(opShutdown, err)
	}
	if serr != nil {
		return &Error{Op: "set linger", Err: serr}
	}
	c.abortive.Store(sec == 0)
	return nil
}

// SendQueueLen returns how many bytes the kernel holds that the peer's TCP
// has not yet acknowledged (ioctl SIOCOUTQ). 0 means everything written,
// close_notify included, reached the peer. Without a socket, as for
// [Conn.SetLinger], it returns an *Error wrapping [ErrNoSocket].
func (c *Conn) SendQueueLen() (int, error) {
	var n int
	raw, err := c.tr.socket()
	if err != nil {
		return 0, &Error{Op: "send queue", Err: err}
	}
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil {
		return 0, c.ioError(opShutdown, err)
	}
	if ierr != nil {
		return 0, &Error{Op: "send queue", Err: ierr}
	}
	return n, nil
}
