package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/closenotify/openssl"
	"golang.org/x/sys/unix"
)

// maxSteps bounds the ShutdownOnce calls of one run; a run that needs more
// is spinning, which is itself a finding.
const maxSteps = 16

var (
	// errCallAgain stops Retry after a 0 (our alert is sent): the next
	// ShutdownOnce waits for the peer's, so the loop calls Retry again.
	errCallAgain = errors.New("close_notify sent; call again for the peer's")
	errTooMany   = fmt.Errorf("more than %d ShutdownOnce calls", maxSteps)
)

// shutdownSteps shuts r.ours down the step-by-step way: ShutdownOnce, and
// Conn.Retry to wait whenever it asks to. It records every result as the
// table shows it ("0", "-1/WANT_READ", "1", ...) and fires r.wantRead or
// r.wantWrite at the first of each.
//
// When ctx or the deadline ends first, Retry returns ShutdownOnce's last
// error and the cause; shutdownSteps reports that as ErrShutdownTimeout
// (still wrapping both), the way Shutdown does.
func shutdownSteps(ctx context.Context, r *run) ([]string, error) {
	var steps []string
	op := func() error {
		if len(steps) == maxSteps {
			return errTooMany
		}
		res, err := r.ours.ShutdownOnce()
		steps = append(steps, stepName(res, err))
		switch {
		case errors.Is(err, openssl.ErrWantRead):
			r.wantRead.fire()
		case errors.Is(err, openssl.ErrWantWrite):
			r.wantWrite.fire()
		case err == nil && res == openssl.ShutdownSent:
			return errCallAgain
		}
		return err
	}
	for {
		err := r.ours.Retry(ctx, op)
		switch {
		case err == errCallAgain:
			continue // bounded: op counts the calls
		case err != nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)):
			err = fmt.Errorf("%w: %w", openssl.ErrShutdownTimeout, err)
		}
		return steps, err
	}
}

// stepName is one ShutdownOnce result as the table shows it: "0", "1", or
// "-1/" and SSL_get_error's answer in OpenSSL's spelling.
func stepName(res openssl.ShutdownResult, err error) string {
	if err == nil {
		return fmt.Sprint(int(res))
	}
	var oe *openssl.Error
	if errors.As(err, &oe) && oe.Code != openssl.ErrorNone {
		return fmt.Sprintf("%d/%s", int(res), oe.Code.Name())
	}
	return fmt.Sprintf("%d/%s", int(res), errName(err))
}

// errName is the short form of a final error, found with errors.Is (the
// shutdown sentinels first: they also wrap their causes).
func errName(err error) string {
	named := []struct {
		target error
		name   string
	}{
		{openssl.ErrShutdownTimeout, "ErrShutdownTimeout"},
		{openssl.ErrTruncated, "ErrTruncated"},
		{openssl.ErrWriteAfterShutdown, "ErrWriteAfterShutdown"},
		{openssl.ErrHandshakeIncomplete, "ErrHandshakeIncomplete"},
		{openssl.ErrWantRead, "ErrWantRead"},
		{openssl.ErrWantWrite, "ErrWantWrite"},
		{syscall.ECONNRESET, "ECONNRESET"},
		{syscall.EPIPE, "EPIPE"},
		{os.ErrDeadlineExceeded, "ErrDeadlineExceeded"},
		{context.DeadlineExceeded, "DeadlineExceeded"},
		{net.ErrClosed, "ErrClosed"},
	}
	if err == nil {
		return "nil"
	}
	for _, n := range named {
		if errors.Is(err, n.target) {
			return n.name
		}
	}
	var oe *openssl.Error
	if errors.As(err, &oe) && oe.Code == openssl.ErrorSSL && len(oe.Queue) > 0 {
		return "SSL: " + oe.Queue[len(oe.Queue)-1].ReasonText
	}
	return err.Error()
}

// errText is the full error, for -v.
func errText(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// stateName is ShutdownState as the table shows it.
func stateName(s openssl.ShutdownState) string {
	var parts []string
	if s.Sent() {
		parts = append(parts, "sent")
	}
	if s.Received() {
		parts = append(parts, "received")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// fillPhase is how long one filling Write waits for room. A phase that
// writes nothing means the peer's window is shut and the pipe is full.
const fillPhase = 30 * time.Millisecond

// fillSendBuffer fills the TCP connection under r.ours, from a writer
// goroutine, until the peer's receive buffer and our send buffer are both
// full, and returns the number of bytes written. The bytes go straight to
// the socket, not through TLS: the peer skips exactly that many raw bytes
// before it reads TLS again, so the TLS stream stays intact. (Filling with
// Conn.Write would leave a half-sent record inside OpenSSL, which our
// close_notify would then have to wait behind.)
func fillSendBuffer(r *run) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := fill(r.ourRaw, r.deadline)
		res <- result{n, err}
	}()
	got := <-res // fill is bounded by r.deadline
	// Conn.SetWriteDeadline also restores the deadline Conn keeps.
	if err := r.ours.SetWriteDeadline(r.deadline); err != nil && got.err == nil {
		got.err = err
	}
	return got.n, got.err
}

func fill(conn *net.TCPConn, deadline time.Time) (int64, error) {
	chunk := make([]byte, 64<<10)
	var total int64
	for {
		if time.Now().After(deadline) {
			return total, errors.New("the send buffer did not fill before the deadline")
		}
		if err := conn.SetWriteDeadline(time.Now().Add(fillPhase)); err != nil {
			return total, err
		}
		n, err := conn.Write(chunk)
		total += int64(n)
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	// The netpoller reports room only when a good part of the buffer is
	// free; top it up byte by byte until the kernel takes nothing more.
	n, err := topUp(conn)
	return total + n, err
}

// topUp writes to the non-blocking socket until it returns EAGAIN even for
// a single byte (a send buffer holds far fewer than 1<<16 writes).
func topUp(conn *net.TCPConn) (int64, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	var werr error
	buf := make([]byte, 4096)
	cerr := raw.Control(func(fd uintptr) {
		size := len(buf)
		for i := 0; size > 0 && i < 1<<16; i++ {
			n, err := unix.Write(int(fd), buf[:size])
			switch {
			case err == unix.EAGAIN:
				size /= 2
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
