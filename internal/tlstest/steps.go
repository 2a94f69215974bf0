package tlstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/closenotify/openssl"
)

// Steps records what each [openssl.Conn.ShutdownOnce] call returned.
type Steps struct {
	Conn *openssl.Conn
	// Max bounds the calls; 0 means 64. A shutdown that needs more is
	// spinning, which is itself a finding: the call after the last one
	// returns an error instead of calling ShutdownOnce.
	Max int
	// Notify, when set, is called after each call with its result.
	Notify func(openssl.ShutdownResult, error)
	// Seq holds each call's result as StepName spells it.
	Seq []string
}

// Once makes one recorded ShutdownOnce call.
func (s *Steps) Once() (openssl.ShutdownResult, error) {
	max := s.Max
	if max == 0 {
		max = 64
	}
	if len(s.Seq) >= max {
		return openssl.ShutdownFailed, fmt.Errorf("tlstest: more than %d ShutdownOnce calls", max)
	}
	r, err := s.Conn.ShutdownOnce()
	s.Seq = append(s.Seq, StepName(r, err))
	if s.Notify != nil {
		s.Notify(r, err)
	}
	return r, err
}

// Step is Once as an operation for [openssl.Conn.Retry].
func (s *Steps) Step() error {
	_, err := s.Once()
	return err
}

// Shutdown shuts the Conn down the step-by-step way: ShutdownOnce, through
// Retry whenever it asks to wait, until it returns 1 or fails. After a 0
// (our close_notify is out) it calls Retry again for the peer's. It
// returns Retry's error: the last call's, joined with ctx's or the
// deadline's when those ended the wait.
func (s *Steps) Shutdown(ctx context.Context) error {
	for {
		if err := s.Conn.Retry(ctx, s.Step); err != nil {
			return err
		}
		if s.Seq[len(s.Seq)-1] == "1" {
			return nil
		}
	}
}

// String returns the sequence, such as "0, -1/WANT_READ, 1".
func (s *Steps) String() string { return strings.Join(s.Seq, ", ") }

// StepName spells one ShutdownOnce result: "0", "1", or "-1/" followed by
// SSL_get_error's answer in OpenSSL's spelling ([openssl.ErrorCode.Name],
// such as "-1/WANT_READ"). An error that is not an *openssl.Error, or
// carries no code, follows "-1/" by its [ErrName].
func StepName(r openssl.ShutdownResult, err error) string {
	if err == nil {
		return fmt.Sprint(int(r))
	}
	var e *openssl.Error
	if errors.As(err, &e) && e.Code != openssl.ErrorNone {
		return fmt.Sprintf("%d/%s", int(r), e.Code.Name())
	}
	return fmt.Sprintf("%d/%s", int(r), ErrName(err))
}

// errNames are the identities ErrName looks for, in order: the shutdown
// sentinels first, since they also wrap their causes.
var errNames = []struct {
	target error
	name   string
}{
	{openssl.ErrShutdownTimeout, "ErrShutdownTimeout"},
	{openssl.ErrTruncated, "ErrTruncated"},
	{openssl.ErrWriteAfterShutdown, "ErrWriteAfterShutdown"},
	{openssl.ErrWriteIncomplete, "ErrWriteIncomplete"},
	{openssl.ErrHandshakeIncomplete, "ErrHandshakeIncomplete"},
	{openssl.ErrWantRead, "ErrWantRead"},
	{openssl.ErrWantWrite, "ErrWantWrite"},
	{syscall.ECONNRESET, "ECONNRESET"},
	{syscall.EPIPE, "EPIPE"},
	{os.ErrDeadlineExceeded, "os.ErrDeadlineExceeded"},
	{context.DeadlineExceeded, "context.DeadlineExceeded"},
	{context.Canceled, "context.Canceled"},
	{net.ErrClosed, "net.ErrClosed"},
	{io.EOF, "io.EOF"},
}

// ErrName is the short name of err for tables and observations: "nil",
// the first identity errors.Is finds among this package's sentinels
// ("ErrTruncated"), errnos ("ECONNRESET") and the standard library's
// ("net.ErrClosed", "io.EOF"), else "SSL: " and OpenSSL's last reason for
// an SSL error, else err's text.
func ErrName(err error) string {
	if err == nil {
		return "nil"
	}
	for _, n := range errNames {
		if errors.Is(err, n.target) {
			return n.name
		}
	}
	var e *openssl.Error
	if errors.As(err, &e) && e.Code == openssl.ErrorSSL && len(e.Queue) > 0 {
		return "SSL: " + e.Queue[len(e.Queue)-1].ReasonText
	}
	return err.Error()
}

// StateName spells a ShutdownState for tables: "none", "sent",
// "received" or "sent,received".
func StateName(s openssl.ShutdownState) string {
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
