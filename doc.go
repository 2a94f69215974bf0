// Package openssl puts the system's OpenSSL (libssl 3.0 or newer) behind
// Go's [net.Conn], for services that must behave exactly like their C
// neighbours: the same OpenSSL build, the same ciphers, the same
// certificate verification. It shuts TLS connections down correctly: every
// result of SSL_shutdown reaches the caller as a typed value, with the
// tools to act on it.
//
// A [Ctx] is a configuration (an SSL_CTX): certificates, trusted CAs,
// versions, ciphers, ALPN, the [ClosePolicy]. [Dial], [Client], [Server],
// [Listen] and [NewListener] make a [Conn] from it, which is a [net.Conn].
//
// # Design
//
// On a TCP or Unix stream socket, OpenSSL reads and writes the
// connection's own file descriptor (a socket BIO that never closes it);
// waiting goes through Go's netpoller ([syscall.RawConn]), so deadlines work
// everywhere, no goroutine is kept per connection, no thread is locked, and
// Read and Write allocate nothing in steady state.
//
// Each SSL operation is one C call that clears OpenSSL's error queue, makes
// the call, and returns its result, SSL_get_error's answer, errno and the
// queue together: a goroutine that moves to another OS thread never reads
// another call's errors.
//
// One Read and one Write may run at once, with Close, the deadline setters
// and Shutdown from other goroutines. Close wakes blocked calls
// ([net.ErrClosed]) and frees the SSL only once no goroutine can enter
// OpenSSL with it.
//
// # Around the handshake
//
// A client verifies the server's name with [Dial], [DialConfig] or
// [Conn.SetServerName], and resumes sessions with
// [Ctx.SetClientSessionCache] or [Conn.GetSession] and [DialSession]. A
// server chooses its certificate by SNI with [Ctx.SetServerNameCallback].
// Verification callbacks ([Ctx.SetVerify], [Ctx.SetVerifyPeerCertificate])
// and the key log ([Ctx.SetKeyLogWriter]) are Go functions that OpenSSL
// calls during the handshake, through a handle on the connection, never a
// Go pointer; a callback's panic fails the handshake, not the process.
//
// # Shutdown
//
// [Conn.ShutdownOnce] makes exactly one SSL_shutdown call and returns
// [ShutdownSent], [ShutdownComplete] or [ShutdownFailed] with an error
// wrapping [ErrWantRead], [ErrWantWrite] or a fatal cause; [Conn.Retry]
// waits in the netpoller and calls it again. Most programs want one of:
//   - [Conn.Shutdown]: send close_notify, then read until the peer's
//     arrives, bounded by a context; data that comes first is discarded
//     and counted ([Conn.DiscardedBytes]);
//   - [Conn.CloseWrite]: close_notify and a TCP half-close, reading goes on
//     until [io.EOF];
//   - [Conn.Close]: what the connection's [ClosePolicy] says (by default
//     close_notify without waiting, as crypto/tls), always closing the
//     socket within the policy's Timeout.
//
// Read returns [io.EOF] only for the peer's close_notify. A peer that
// closes TCP without it gives an error wrapping [ErrTruncated] (and
// [io.ErrUnexpectedEOF]).
//
// # Errors
//
// Every error is an [*Error] (errors.As) holding the operation, the
// [ErrorCode] from SSL_get_error, errno, OpenSSL's error queue and, for
// handshakes, the certificate [VerifyResult]. It wraps the package's
// sentinels ([ErrWantRead], [ErrTruncated], [ErrShutdownTimeout], ...) and
// the causes from Go ([os.ErrDeadlineExceeded], [context.DeadlineExceeded],
// [net.ErrClosed], syscall errnos) for errors.Is.
//
// # spacemonkeygo/openssl
//
// The names of spacemonkeygo/openssl's common calls are kept (NewCtx,
// NewCtxFromFiles, Dial, LoadCertificateFromPEM, GenerateRSAKey, ...), so
// that its users can switch by changing the import path; the README lists
// where a call means something else here.
package openssl
