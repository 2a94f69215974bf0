package openssl_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestErrorCodeValues(t *testing.T) {
	// OpenSSL's SSL_ERROR_* numbers (include/openssl/ssl.h.in).
	for _, tc := range []struct {
		code openssl.ErrorCode
		want int
		text string
	}{
		{openssl.ErrorNone, 0, "none"},
		{openssl.ErrorSSL, 1, "SSL error"},
		{openssl.ErrorWantRead, 2, "want read"},
		{openssl.ErrorWantWrite, 3, "want write"},
		{openssl.ErrorSyscall, 5, "syscall error"},
		{openssl.ErrorZeroReturn, 6, "zero return (close_notify received)"},
		// Codes a Conn never meets, not exported, still named.
		{openssl.ErrorCode(4), 4, "want X509 lookup"},
		{openssl.ErrorCode(7), 7, "want connect"},
		{openssl.ErrorCode(12), 12, "want retry verify"},
	} {
		require.Equal(t, tc.want, int(tc.code))
		require.Equal(t, tc.text, tc.code.String())
	}
	require.Equal(t, "SSL_get_error 99", openssl.ErrorCode(99).String())
}

func TestVerifyResultString(t *testing.T) {
	require.Equal(t, 0, int(openssl.VerifyOK))
	require.Equal(t, "ok", openssl.VerifyOK.String())
	require.Equal(t, "certificate has expired", openssl.VerifyResult(10).String())
	require.Equal(t, "hostname mismatch", openssl.VerifyResult(62).String())
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  *openssl.Error
		want string
	}{
		{&openssl.Error{Op: "shutdown", Code: openssl.ErrorWantRead, Err: openssl.ErrWantRead},
			"openssl: shutdown: want read (waiting for the peer's close_notify)"},
		{&openssl.Error{Op: "shutdown", Code: openssl.ErrorWantWrite, Err: openssl.ErrWantWrite},
			"openssl: shutdown: want write (our close_notify is not yet in the kernel's send buffer)"},
		{&openssl.Error{Op: "read", Code: openssl.ErrorWantRead, Err: openssl.ErrWantRead},
			"openssl: read: want read"},
		{&openssl.Error{Op: "read", Code: openssl.ErrorSyscall, Errno: syscall.ECONNRESET},
			"openssl: read: syscall error: " + syscall.ECONNRESET.Error()},
		{&openssl.Error{Op: "write", Code: openssl.ErrorSyscall, Errno: syscall.EPIPE, Err: syscall.EPIPE},
			"openssl: write: " + syscall.EPIPE.Error()},
		{&openssl.Error{Op: "handshake", Code: openssl.ErrorSSL, Verify: 10,
			Queue: []openssl.QueueEntry{{ReasonText: "certificate verify failed"}}},
			"openssl: handshake: SSL error: certificate verify failed: certificate verification: certificate has expired"},
		{&openssl.Error{Op: "set groups", Queue: []openssl.QueueEntry{{ReasonText: "passed invalid argument", Data: "group 'x' cannot be set"}}},
			"openssl: set groups: passed invalid argument (group 'x' cannot be set)"},
		{&openssl.Error{Op: "close", Err: net.ErrClosed},
			"openssl: close: use of closed network connection"},
	} {
		require.Equal(t, tc.want, tc.err.Error())
	}
}

// TestErrorsFromRealCalls checks the messages and identities of errors the
// package returned, not ones built by hand.
func TestErrorsFromRealCalls(t *testing.T) {
	sslCtx, err := openssl.NewCtx()
	require.NoError(t, err)
	ctxErrs := map[string]error{
		"set cipher list":   sslCtx.SetCipherList("NO-SUCH-CIPHER"),
		"set cipher suites": sslCtx.SetCipherSuites("TLS_NO_SUCH_SUITE"),
		"set groups":        sslCtx.SetGroups("NO-SUCH-GROUP"),
		"set next protos":   sslCtx.SetNextProtos(nil),
	}
	for op, err := range ctxErrs {
		e := asError(t, err)
		require.Equal(t, op, e.Op)
		require.True(t, strings.HasPrefix(err.Error(), "openssl: "+op+": "), err.Error())
		require.NotContains(t, err.Error(), ": none:", "no SSL_get_error code for a Ctx call")
		require.False(t, e.Timeout())
		require.False(t, e.Temporary())
	}
	require.Equal(t, "openssl: set cipher list: no cipher match", ctxErrs["set cipher list"].Error())

	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: v, Role: tlstest.WeClient}})

		// ShutdownOnce: our alert is out; a second call finds nothing to
		// read yet.
		res, err := p.Ours.ShutdownOnce()
		require.NoError(t, err)
		require.Equal(t, openssl.ShutdownSent, res)
		res, err = p.Ours.ShutdownOnce()
		require.Equal(t, openssl.ShutdownFailed, res)
		require.ErrorIs(t, err, openssl.ErrWantRead)
		e := asError(t, err)
		require.Equal(t, openssl.ErrorWantRead, e.Code)
		require.Equal(t, "openssl: shutdown: want read (waiting for the peer's close_notify)", err.Error())

		_, err = p.Ours.Write([]byte("x"))
		require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)
		require.Equal(t, "openssl: write: write after shutdown", err.Error())
	})
}

// TestErrorWrapping: errors.Is and errors.As see through fmt.Errorf("%w")
// wrapping of the package's errors, once and twice.
func TestErrorWrapping(t *testing.T) {
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}})
	p.SyncPeer(t)
	require.NoError(t, p.PeerTCP().Close())
	_, truncated := p.Ours.Read(make([]byte, 1))

	p2 := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeServer}})
	p2.SyncPeer(t)
	require.NoError(t, p2.ResetPeer())
	_, reset := p2.Ours.Read(make([]byte, 1))

	c := silentPair(t, tlstest.WeClient)
	hctx, cancel := context.WithCancel(context.Background())
	cancel()
	canceled := c.HandshakeContext(hctx)

	for _, tc := range []struct {
		name   string
		err    error
		op     string
		is     []error
		isNot  []error
		code   openssl.ErrorCode
		errno  syscall.Errno
		expire bool
	}{
		{"truncated", truncated, "read",
			[]error{openssl.ErrTruncated, io.ErrUnexpectedEOF}, []error{io.EOF, net.ErrClosed},
			openssl.ErrorSyscall, 0, false},
		{"reset", reset, "read",
			[]error{syscall.ECONNRESET}, []error{openssl.ErrTruncated, io.EOF},
			openssl.ErrorSyscall, syscall.ECONNRESET, false},
		{"canceled handshake", canceled, "handshake",
			[]error{context.Canceled}, []error{os.ErrDeadlineExceeded},
			openssl.ErrorNone, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, tc.err)
			once := fmt.Errorf("layer one: %w", tc.err)
			twice := fmt.Errorf("layer two: %w", once)
			joined := errors.Join(errors.New("other"), twice)
			for _, err := range []error{tc.err, once, twice, joined} {
				var e *openssl.Error
				require.True(t, errors.As(err, &e), "errors.As through %q", err)
				require.Same(t, asError(t, tc.err), e)
				require.Equal(t, tc.op, e.Op)
				require.Equal(t, tc.code, e.Code)
				require.Equal(t, tc.errno, e.Errno)
				for _, target := range tc.is {
					require.ErrorIs(t, err, target)
				}
				for _, target := range tc.isNot {
					require.NotErrorIs(t, err, target)
				}
				var ne net.Error
				require.True(t, errors.As(err, &ne))
				require.Equal(t, tc.expire, ne.Timeout())
			}
			require.True(t, strings.HasPrefix(tc.err.Error(), "openssl: "+tc.op+": "), tc.err.Error())
		})
	}
}

func TestSentinelIdentities(t *testing.T) {
	require.ErrorIs(t, openssl.ErrTruncated, io.ErrUnexpectedEOF)
	for _, s := range []error{
		openssl.ErrWantRead, openssl.ErrWantWrite, openssl.ErrTruncated, openssl.ErrShutdownTimeout,
		openssl.ErrHandshakeIncomplete, openssl.ErrWriteAfterShutdown, openssl.ErrNilContext,
		openssl.ErrHTTPRequest,
	} {
		require.True(t, strings.HasPrefix(s.Error(), "openssl: "), s.Error())
		e := &openssl.Error{Op: "op", Err: s}
		require.ErrorIs(t, fmt.Errorf("x: %w", e), s)
		require.Equal(t, []error{s}, e.Unwrap())
	}
	e := &openssl.Error{Op: "read", Code: openssl.ErrorSyscall, Errno: syscall.ECONNRESET, Err: net.ErrClosed}
	require.Equal(t, []error{net.ErrClosed, syscall.ECONNRESET}, e.Unwrap())
	require.Empty(t, (&openssl.Error{Op: "x"}).Unwrap())

	// Timeout is true for deadline, context and shutdown timeouts.
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{os.ErrDeadlineExceeded, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("%w: %w", openssl.ErrShutdownTimeout, context.Canceled), true},
		{context.Canceled, false},
		{net.ErrClosed, false},
		{openssl.ErrTruncated, false},
	} {
		require.Equal(t, tc.want, (&openssl.Error{Op: "x", Err: tc.err}).Timeout(), "%v", tc.err)
	}
}

func TestErrorCodeName(t *testing.T) {
	for code, want := range map[openssl.ErrorCode]string{
		openssl.ErrorWantRead:   "WANT_READ",
		openssl.ErrorWantWrite:  "WANT_WRITE",
		openssl.ErrorSyscall:    "SYSCALL",
		openssl.ErrorSSL:        "SSL",
		openssl.ErrorZeroReturn: "ZERO_RETURN",
		openssl.ErrorCode(99):   "99",
	} {
		if got := code.Name(); got != want {
			t.Errorf("ErrorCode(%d).Name() = %q, want %q", int(code), got, want)
		}
	}
}
