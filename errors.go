package openssl

/*
#include <stdlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// ErrorCode is SSL_get_error's answer for a failed call. Its constants have
// OpenSSL's values. Only the codes a Conn can meet are exported: the others
// (SSL_ERROR_WANT_CONNECT, _ACCEPT, _ASYNC, _ASYNC_JOB, _X509_LOOKUP,
// _CLIENT_HELLO_CB, _RETRY_VERIFY) need connecting BIOs, asynchronous
// engines or callbacks that ask to be called again, none of which this
// package uses; String and Name still name them.
type ErrorCode int

const (
	// ErrorNone: the call succeeded.
	ErrorNone ErrorCode = C.SSL_ERROR_NONE
	// ErrorSSL: a protocol error; the error queue says which. Fatal: the
	// connection makes no further SSL call.
	ErrorSSL ErrorCode = C.SSL_ERROR_SSL
	// ErrorWantRead: wait until the socket is readable and call again.
	ErrorWantRead ErrorCode = C.SSL_ERROR_WANT_READ
	// ErrorWantWrite: wait until the socket is writable and call again.
	ErrorWantWrite ErrorCode = C.SSL_ERROR_WANT_WRITE
	// ErrorSyscall: the transport failed (Errno says how; 0 means the peer
	// closed TCP without close_notify). Fatal.
	ErrorSyscall ErrorCode = C.SSL_ERROR_SYSCALL
	// ErrorZeroReturn: the peer's close_notify arrived; it sends no more data.
	ErrorZeroReturn ErrorCode = C.SSL_ERROR_ZERO_RETURN
)

var errorCodeNames = map[ErrorCode]string{
	ErrorNone:                        "none",
	ErrorSSL:                         "SSL error",
	ErrorWantRead:                    "want read",
	ErrorWantWrite:                   "want write",
	C.SSL_ERROR_WANT_X509_LOOKUP:     "want X509 lookup",
	ErrorSyscall:                     "syscall error",
	ErrorZeroReturn:                  "zero return (close_notify received)",
	C.SSL_ERROR_WANT_CONNECT:         "want connect",
	C.SSL_ERROR_WANT_ACCEPT:          "want accept",
	C.SSL_ERROR_WANT_ASYNC:           "want async",
	C.SSL_ERROR_WANT_ASYNC_JOB:       "want async job",
	C.SSL_ERROR_WANT_CLIENT_HELLO_CB: "want client hello callback",
	C.SSL_ERROR_WANT_RETRY_VERIFY:    "want retry verify",
}

// opensslNames are the SSL_ERROR_* names without their prefix.
var opensslNames = map[ErrorCode]string{
	ErrorNone:                        "NONE",
	ErrorSSL:                         "SSL",
	ErrorWantRead:                    "WANT_READ",
	ErrorWantWrite:                   "WANT_WRITE",
	C.SSL_ERROR_WANT_X509_LOOKUP:     "WANT_X509_LOOKUP",
	ErrorSyscall:                     "SYSCALL",
	ErrorZeroReturn:                  "ZERO_RETURN",
	C.SSL_ERROR_WANT_CONNECT:         "WANT_CONNECT",
	C.SSL_ERROR_WANT_ACCEPT:          "WANT_ACCEPT",
	C.SSL_ERROR_WANT_ASYNC:           "WANT_ASYNC",
	C.SSL_ERROR_WANT_ASYNC_JOB:       "WANT_ASYNC_JOB",
	C.SSL_ERROR_WANT_CLIENT_HELLO_CB: "WANT_CLIENT_HELLO_CB",
	C.SSL_ERROR_WANT_RETRY_VERIFY:    "WANT_RETRY_VERIFY",
}

// Name returns OpenSSL's name of the code without its SSL_ERROR_ prefix,
// such as "WANT_READ", as tables of SSL_shutdown results print it; an
// unknown code gives its number.
func (c ErrorCode) Name() string {
	if s, ok := opensslNames[c]; ok {
		return s
	}
	return fmt.Sprint(int(c))
}

// String returns a short description such as "want read".
func (c ErrorCode) String() string {
	if s, ok := errorCodeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("SSL_get_error %d", int(c))
}

// fatal reports whether OpenSSL forbids further calls after this code,
// SSL_shutdown included.
func (c ErrorCode) fatal() bool {
	return c == ErrorSSL || c == ErrorSyscall
}

// Sentinel errors, for errors.Is. Errors returned by this package wrap them.
var (
	// ErrWantRead: a non-blocking step must wait until the socket is
	// readable; Retry does that.
	ErrWantRead = errors.New("openssl: want read")
	// ErrWantWrite: a non-blocking step must wait until the socket is
	// writable; Retry does that.
	ErrWantWrite = errors.New("openssl: want write")
	// ErrTruncated: the peer closed TCP without close_notify, so the data
	// may have been cut short by an attacker. errors.Is(ErrTruncated,
	// io.ErrUnexpectedEOF) is true.
	ErrTruncated = fmt.Errorf("openssl: peer closed the connection without close_notify (possible truncation): %w", io.ErrUnexpectedEOF)
	// ErrShutdownTimeout: the peer's close_notify did not arrive (or ours
	// could not be sent) before the context's deadline, the Conn's deadline
	// or the close policy's timeout passed. The cause
	// (context.DeadlineExceeded or os.ErrDeadlineExceeded) is wrapped too.
	// A canceled context is not a timeout: that error wraps
	// context.Canceled instead.
	ErrShutdownTimeout = errors.New("openssl: shutdown timed out")
	// ErrHandshakeIncomplete: a shutdown was asked for before the handshake
	// finished, and nothing was sent; or a call that reads the
	// handshake's result (PeerCertificate, CurrentCipher) came before it.
	ErrHandshakeIncomplete = errors.New("openssl: handshake not complete")
	// ErrNoPeerCertificate: the peer sent no certificate.
	ErrNoPeerCertificate = errors.New("openssl: the peer sent no certificate")
	// ErrWriteIncomplete: a shutdown was asked for after a Write failed
	// (its deadline passed, say). Part of a record may still be inside
	// OpenSSL, and close_notify cannot follow it, so nothing was sent; the
	// peer will see the stream end inside a record. Close the connection.
	ErrWriteIncomplete = errors.New("openssl: a failed Write may have left part of a record unsent; close_notify cannot follow it")
	// ErrWriteAfterShutdown: Write after our close_notify was sent
	// (ShutdownOnce, Shutdown or CloseWrite).
	ErrWriteAfterShutdown = errors.New("openssl: write after shutdown")
	// ErrNilContext: a method that takes a context.Context was given nil.
	ErrNilContext = errors.New("openssl: nil context")
	// ErrHTTPRequest: a server's handshake found a plaintext HTTP request
	// where the ClientHello belongs (GET, POST, HEAD or PUT; OpenSSL 3.5
	// also recognises PATCH, OPTIONS, DELETE and TRACE); OpenSSL sent
	// nothing back (reason "http request"). An HTTPS server may answer in
	// plaintext on the net.Conn under the Conn, as net/http does with
	// crypto/tls (see the httpssl package), then close it.
	ErrHTTPRequest = errors.New("openssl: the client sent a plaintext HTTP request, not a TLS handshake")
	// ErrNoSocket: SetLinger or SendQueueLen on a Conn whose net.Conn has
	// no socket to reach (net.Pipe, a *tls.Conn, a wrapper that does not
	// expose syscall.Conn).
	ErrNoSocket = errors.New("openssl: the connection has no socket")
	// ErrVerification: PublicKey.VerifyPKCS1v15 found that the signature
	// does not match the data and key (or is damaged).
	ErrVerification = errors.New("openssl: signature does not verify")
)

// QueueEntry is one entry of OpenSSL's error queue.
type QueueEntry struct {
	Code   uint64 // packed code, as ERR_get_error returns it
	Lib    int    // ERR_GET_LIB(Code)
	Reason int    // ERR_GET_REASON(Code)
	// LibText and ReasonText are OpenSSL's names for Lib and Reason, such as
	// "SSL routines" and "unexpected eof while reading".
	LibText, ReasonText string
	// Data is the entry's extra text, if OpenSSL added one.
	Data string
}

// VerifyResult is the certificate verification result of a connection
// (SSL_get_verify_result); 0 means verified or not checked.
type VerifyResult int

// VerifyOK is the result of a successful verification.
const VerifyOK VerifyResult = C.X509_V_OK

// String returns OpenSSL's text, such as "certificate has expired".
func (v VerifyResult) String() string {
	return C.GoString(C.X509_verify_cert_error_string(C.long(v)))
}

// Error is an error reported by OpenSSL, or by this package about an SSL
// operation. Use errors.As to reach it and errors.Is to compare with the
// sentinels, syscall errnos, io.ErrUnexpectedEOF, os.ErrDeadlineExceeded,
// context.DeadlineExceeded and net.ErrClosed.
type Error struct {
	// Op is the operation: "handshake", "read", "write", "shutdown",
	// "close", or a Ctx method such as "set cipher list".
	Op string
	// Code is SSL_get_error's answer; ErrorNone for errors that did not come
	// from an SSL call (a timeout, a closed connection, a bad argument).
	Code ErrorCode
	// Errno is errno after the failed call (0 if none).
	Errno syscall.Errno
	// Queue is OpenSSL's error queue after the call, oldest first.
	Queue []QueueEntry
	// Verify is the certificate verification result for handshake errors.
	Verify VerifyResult
	// Err is what the error means for the caller: one of the sentinels, an
	// I/O error such as os.ErrDeadlineExceeded or net.ErrClosed, or nil.
	Err error

	// fipsRefusal: a handshake found no algorithm both sides accept
	// while FIPS mode was on; Error says so.
	fipsRefusal bool
}

// Error reads like "openssl: shutdown: want read (waiting for the peer's
// close_notify)" or "openssl: handshake: SSL error: certificate verify
// failed (certificate has expired)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("openssl: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	sep := ": "
	switch {
	case e.Err != nil:
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "openssl: "))
	case e.Code == ErrorNone && len(e.Queue) > 0:
		sep = "" // a set-up call, not an SSL one: the queue alone says why
	default:
		b.WriteString(e.Code.String())
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(" (" + hint + ")")
	}
	for _, q := range e.Queue {
		b.WriteString(sep)
		sep = ": "
		b.WriteString(q.ReasonText)
		if q.Data != "" {
			b.WriteString(" (" + q.Data + ")")
		}
	}
	if e.Verify != VerifyOK {
		b.WriteString(": certificate verification: " + e.Verify.String())
	}
	if e.Errno != 0 && !errors.Is(e.Err, e.Errno) {
		b.WriteString(": " + e.Errno.Error())
	}
	return b.String()
}

// hint says what a want-read or want-write means for a shutdown, the
// question OpenSSL users ask most, and that FIPS mode narrowed what a
// failed handshake could agree on.
func (e *Error) hint() string {
	if e.fipsRefusal {
		return "FIPS mode: only FIPS-approved algorithms are offered and accepted"
	}
	if e.Op != "shutdown" {
		return ""
	}
	switch e.Code {
	case ErrorWantRead:
		return "waiting for the peer's close_notify"
	case ErrorWantWrite:
		return "our close_notify is not yet in the kernel's send buffer"
	}
	return ""
}

// Unwrap returns Err and, when set, Errno.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	return errs
}

// Timeout reports whether the error is a deadline, context or shutdown
// timeout, for net.Error.
func (e *Error) Timeout() bool {
	return errors.Is(e.Err, os.ErrDeadlineExceeded) ||
		errors.Is(e.Err, context.DeadlineExceeded) ||
		errors.Is(e.Err, ErrShutdownTimeout)
}

// Temporary is false: no error of this package goes away by itself. It
// exists for net.Error.
func (e *Error) Temporary() bool { return false }

// sslError builds the Error for an SSL call that failed with r. OpenSSL
// reports a TCP EOF without close_notify in two ways (SSL_ERROR_SSL with
// reason "unexpected eof while reading", or SSL_ERROR_SYSCALL with errno 0
// and an empty queue); both become the same Error: Code ErrorSyscall, no
// Errno, no Queue, Err ErrTruncated.
func sslError(op string, r *sslResult) *Error {
	e := &Error{
		Op:    op,
		Code:  ErrorCode(r.ssl_error),
		Errno: syscall.Errno(r.err_no),
	}
	if e.Code != ErrorSyscall && !errors.Is(e.Errno, syscall.EAGAIN) {
		// errno is meaningful only after a transport failure.
		e.Errno = 0
	}
	if e.Code == ErrorWantRead || e.Code == ErrorWantWrite {
		e.Errno = 0
	}
	e.Queue = r.queue
	switch e.Code {
	case ErrorWantRead:
		e.Err = ErrWantRead
	case ErrorWantWrite:
		e.Err = ErrWantWrite
	case ErrorZeroReturn:
		e.Err = io.EOF
	case ErrorSyscall:
		if e.Errno == 0 && len(e.Queue) == 0 {
			e.Err = ErrTruncated
		}
	case ErrorSSL:
		switch {
		case e.hasReason(C.ERR_LIB_SSL, C.SSL_R_UNEXPECTED_EOF_WHILE_READING):
			e.Err = ErrTruncated
		case e.hasReason(C.ERR_LIB_SSL, C.SSL_R_HTTP_REQUEST):
			e.Err = ErrHTTPRequest
		}
	}
	if e.Err == ErrTruncated {
		return &Error{Op: op, Code: ErrorSyscall, Err: ErrTruncated}
	}
	return e
}

// takeQueue converts the error queue the shim copied out of a failed call
// and frees the shim's copy.
func takeQueue(r *C.go_ossl_result) []QueueEntry {
	if r.errors == 0 {
		return nil
	}
	first := C.go_ossl_errors_at(r.errors)
	defer func() {
		C.free(unsafe.Pointer(first))
		r.errors, r.nerrors = 0, 0
	}()
	entries := unsafe.Slice(first, int(r.nerrors))
	q := make([]QueueEntry, len(entries))
	for i := range q {
		ent := &entries[i]
		code := ent.code
		q[i] = QueueEntry{
			Code:       uint64(code),
			Lib:        int(C.ERR_GET_LIB(code)),
			Reason:     int(C.ERR_GET_REASON(code)),
			LibText:    cString(C.ERR_lib_error_string(code)),
			ReasonText: cString(C.ERR_reason_error_string(code)),
			Data:       C.GoString(&ent.data[0]),
		}
		if q[i].ReasonText == "" && q[i].Lib == C.ERR_LIB_SYS {
			// OpenSSL 3 keeps errno as the reason of system errors
			// and has no text for it.
			q[i].ReasonText = syscall.Errno(q[i].Reason).Error()
		}
		if q[i].ReasonText == "" {
			q[i].ReasonText = fmt.Sprintf("reason %d", q[i].Reason)
		}
	}
	return q
}

func cString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// hasReason reports whether the queue holds lib's reason.
func (e *Error) hasReason(lib, reason C.int) bool {
	for _, q := range e.Queue {
		if q.Lib == int(lib) && q.Reason == int(reason) {
			return true
		}
	}
	return false
}

// callError is the Error of a set-up call that returned failure without an
// SSL object to ask: the queue says why.
func callError(op string, r *C.go_ossl_result) *Error {
	e := &Error{Op: op, Queue: takeQueue(r)}
	if len(e.Queue) == 0 {
		e.Err = errors.New("openssl: failed without a reason in the error queue")
	}
	return e
}

// opError wraps an error that did not come from OpenSSL (a deadline, a
// closed connection, a bad argument) in an Error for op.
func opError(op string, err error) *Error {
	// An Error from an earlier call (a stored fatal error) keeps its Op.
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Op: op, Err: err}
}
