package peer

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// StartTimeout bounds how long the server constructors (OpenSSLServer,
// GnuTLSServer, PythonServer) wait for the server to listen.
const StartTimeout = 10 * time.Second

// LingerTime is how long s_server and s_client 3.0 keep a connection's
// socket open after sending FIN while the peer keeps TCP open: after the
// close_notify exchange they shut down their sending side, read and discard
// for up to LingerTime, and only then close the socket and go on or exit.
// The tests prove the wait; that the peer's EOF ends it early is from the
// source (apps/lib/s_socket.c), not tested.
const LingerTime = 500 * time.Millisecond

// Strings printed by openssl s_server 3.0 (default mode, without -quiet),
// each on a line of its own. The tests of this package check every one; the
// output of a Process mixes standard output and standard error, so these
// docs do not say which stream carries what.
const (
	// ServerAccept starts the line s_server prints when it listens:
	// "ACCEPT 127.0.0.1:PORT", naming the port the kernel chose.
	ServerAccept = "ACCEPT"

	// ServerDone is printed when SSL_read reports the peer's close_notify
	// (SSL_ERROR_ZERO_RETURN), and also for the stdin commands Q and q and
	// at end of stdin.
	ServerDone = "DONE\n"

	// ServerError is printed when SSL_read fails, for example when the
	// peer closed TCP without close_notify; OpenSSL's error queue follows.
	ServerError = "ERROR\n"

	// UnexpectedEOF is the reason OpenSSL 3.0 prints, in an error-queue
	// line, when the peer closed TCP (FIN) without sending close_notify
	// (SSL_R_UNEXPECTED_EOF_WHILE_READING), for TLS 1.2 and 1.3 alike.
	// s_server prints it with or without -quiet, s_client without. A TCP
	// reset is reported differently (see OpenSSLServer, OpenSSLClient).
	UnexpectedEOF = "unexpected eof while reading"

	// ServerShuttingDown is printed before s_server calls SSL_shutdown on
	// a connection, whatever ended it.
	ServerShuttingDown = "shutting down SSL\n"

	// ServerConnectionClosed is printed when a connection is finished.
	// -rev prints it too, on CLOSE or at the end of the connection.
	ServerConnectionClosed = "CONNECTION CLOSED\n"

	// ServerAcceptSocketClosed is printed when the Q command or end of
	// stdin makes s_server stop listening and exit after this connection.
	ServerAcceptSocketClosed = "shutdown accept socket\n"

	// ServerKeyUpdated is printed after the k and K commands have sent a
	// KeyUpdate message.
	ServerKeyUpdated = "SSL_do_handshake -> 1\n"

	// ServerReadBlock is printed when a record arrived but carried no
	// application data, such as the peer's KeyUpdate answering K.
	ServerReadBlock = "Read BLOCK\n"

	// ServerCloseNotifyReceived is what s_server prints, in this order,
	// when the peer's close_notify ends a connection (and, identically,
	// after the q command).
	ServerCloseNotifyReceived = ServerDone + ServerShuttingDown + ServerConnectionClosed

	// RevConnectionEstablished is printed by s_server -rev when the
	// handshake is complete.
	RevConnectionEstablished = "CONNECTION ESTABLISHED\n"
)

// Commands that s_server reads from its standard input (without -quiet).
// Send each as a line of its own, as the constants are; other lines are sent
// to the client as application data.
const (
	// ServerCmdQuit ("Q") closes the TCP connection without sending
	// close_notify, stops listening and makes s_server exit with code 0.
	ServerCmdQuit = "Q\n"
	// ServerCmdClose ("q") closes the TCP connection without sending
	// close_notify; s_server goes on accepting while -naccept allows.
	ServerCmdClose = "q\n"
	// ServerCmdKeyUpdate ("k") sends a TLS 1.3 KeyUpdate that does not
	// request one back.
	ServerCmdKeyUpdate = "k\n"
	// ServerCmdKeyUpdateRequest ("K") sends a TLS 1.3 KeyUpdate that
	// requests the peer to update its keys too.
	ServerCmdKeyUpdateRequest = "K\n"
)

// Strings printed by openssl s_client 3.0 (without -quiet), each on a line
// of its own.
const (
	// ClientConnected starts the line printed when the TCP connection is
	// made, before the handshake: "CONNECTED(00000003)".
	ClientConnected = "CONNECTED("

	// ClientVerifyOK is printed after a handshake whose certificate
	// chain verified.
	ClientVerifyOK = "Verify return code: 0 (ok)"

	// ClientClosed is printed when SSL_read reports the peer's
	// close_notify. s_client then sends its own close_notify, closes the
	// connection and exits with code 0.
	ClientClosed = "closed\n"

	// ClientDone is printed when end of stdin or the Q command makes
	// s_client send close_notify and exit with code 0.
	ClientDone = "DONE\n"

	// ClientReadErrno starts the line printed when SSL_read fails with a
	// system error, such as "read:errno=104" for a TCP reset
	// (ECONNRESET); s_client then exits with the errno as its code.
	ClientReadErrno = "read:errno="

	// ClientKeyUpdate is printed when the k or K command sends a
	// KeyUpdate.
	ClientKeyUpdate = "KEYUPDATE\n"

	// ClientReadBlock is printed when a record arrived but carried no
	// application data, such as the peer's KeyUpdate answering K. It also
	// appears, though not always, after a TLS 1.3 handshake.
	ClientReadBlock = "read R BLOCK\n"
)

// Commands that s_client reads from its standard input (without -quiet or
// -ign_eof). Send each as a line of its own, as the constants are; other
// lines, "q" included, are sent as application data.
const (
	// ClientCmdQuit ("Q") sends close_notify and exits, like end of stdin.
	ClientCmdQuit = "Q\n"
	// ClientCmdKeyUpdate ("k") sends a KeyUpdate not requesting one back.
	ClientCmdKeyUpdate = "k\n"
	// ClientCmdKeyUpdateRequest ("K") sends a KeyUpdate requesting one.
	ClientCmdKeyUpdateRequest = "K\n"
)

// OpenSSLServer runs
//
//	openssl s_server -accept 127.0.0.1:0 -cert certFile -key keyFile -naccept 1 extra...
//
// and returns once it listens; Addr then returns "127.0.0.1:PORT", the port
// the kernel picked. Options in extra override the ones before them
// (-naccept 2 accepts two connections). The program runs under "stdbuf -oL"
// when stdbuf is installed, so that every line reaches the output when it
// is printed: s_server flushes only some of its messages.
//
// OpenSSLServer waits for the ServerAccept line, at most StartTimeout and
// never past ctx. With -quiet in extra s_server prints nothing, so
// OpenSSLServer looks for the process's listening socket in /proc instead.
// On error the process is killed and the error quotes its output.
//
// Observed behaviour of s_server 3.0 with a crypto/tls client (each case is
// a test in this package):
//
//   - Peer sends close_notify (TLS 1.2 and 1.3): prints
//     ServerCloseNotifyReceived, answers with its own close_notify, then
//     sends FIN and lingers (see LingerTime). With -naccept 1 it then
//     exits with code 0.
//   - Peer closes TCP without close_notify (TLS 1.2 and 1.3): prints
//     ServerError, an error line containing UnexpectedEOF,
//     ServerShuttingDown and ServerConnectionClosed; exit code 0. Nothing
//     in the exit code tells a truncation from a clean close.
//   - Peer resets TCP (RST; Linux sends one when a socket is closed with
//     unread input, or with SO_LINGER 0): prints ServerError directly
//     followed by ServerShuttingDown, with no OpenSSL reason; exit code 0.
//   - Q on stdin, and end of stdin: prints ServerDone and
//     ServerAcceptSocketClosed, closes TCP without sending close_notify
//     (the peer sees a truncation), and exits with code 0 whatever
//     -naccept says. -ign_eof does not change this.
//   - q on stdin: the same without ServerAcceptSocketClosed; s_server
//     keeps accepting while -naccept allows.
//   - k and K on stdin: send a KeyUpdate and print ServerKeyUpdated;
//     after K the peer's KeyUpdate arrives and ServerReadBlock is printed.
//     Data keeps flowing both ways.
//   - -naccept N: exit with code 0 after N connections; the default here
//     is 1, and -naccept in extra overrides it.
//   - -quiet: the output is exactly the application data received, plus
//     the error-queue line of a truncation (no ServerAccept, ServerDone
//     or ServerError). close_notify is answered as without -quiet. The
//     stdin commands are off (Q and q are sent as data), and end of stdin
//     sends close_notify, closes, and (with -naccept 1) exits with code 0.
//   - -ign_eof: end of stdin still acts as Q. With -rev, CLOSE becomes
//     an ordinary line (echoed as "ESOLC").
//   - -rev: echoes each line reversed. A line "CLOSE" makes it send
//     close_notify and print ServerConnectionClosed, then wait for the
//     peer's close_notify or FIN before it sends its FIN: a peer that does
//     neither keeps it waiting.
//   - -www: answers "GET / HTTP/1.0" with an HTTP/1.0 status page
//     ("HTTP/1.0 200 ok"), sends close_notify, then waits for the peer's
//     close_notify like -rev.
func OpenSSLServer(ctx context.Context, certFile, keyFile string, extra ...string) (*Process, error) {
	args := []string{"s_server", "-accept", "127.0.0.1:0", "-cert", certFile, "-key", keyFile, "-naccept", "1"}
	p, err := startOpenSSL(ctx, append(args, extra...))
	if err != nil {
		return nil, err
	}
	if slices.Contains(extra, "-quiet") {
		return listening(ctx, p, waitListening)
	}
	return listening(ctx, p, waitAccept)
}

// waitAccept waits for s_server's ACCEPT line and returns the address it
// names.
func waitAccept(p *Process, timeout time.Duration) (string, error) {
	rest, err := waitLine(p, ServerAccept, timeout)
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(rest)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("peer: s_server printed %q, not \"ACCEPT host:port\": %w", ServerAccept+rest, err)
	}
	return addr, nil
}

// OpenSSLClient runs
//
//	openssl s_client -connect addr -CAfile caFile -verify_return_error extra...
//
// and returns as soon as it has started, without waiting for the
// connection or the handshake (wait for ClientVerifyOK for that).
// -verify_return_error makes a certificate that does not verify against
// caFile end the handshake: s_client prints "verify error:num=...", then
// "Verify return code: N (...)" with N not 0, and exits with code 1. (Its
// TLS 1.3 alert goes out before s_client switches to the handshake keys,
// so a crypto/tls server reports "bad record MAC", not the alert.) Like
// OpenSSLServer, it runs under "stdbuf -oL" when stdbuf is installed. Start
// errors are returned as by Start.
//
// Observed behaviour of s_client 3.0 with a crypto/tls server (each case is
// a test in this package):
//
//   - Peer sends close_notify (TLS 1.2 and 1.3): prints ClientClosed,
//     answers with its own close_notify, sends FIN, lingers (see
//     LingerTime) and exits with code 0.
//   - Peer closes TCP without close_notify (TLS 1.2 and 1.3): prints an
//     error line containing UnexpectedEOF (and not ClientClosed) and
//     exits with code 1.
//   - Peer resets TCP: prints ClientReadErrno+"104" and exits with code
//     104 (ECONNRESET).
//   - End of stdin, or Q on stdin: prints ClientDone, sends close_notify,
//     sends FIN and exits with code 0, without waiting for the peer's
//     close_notify. This is how to make s_client close cleanly.
//   - k and K on stdin: send a KeyUpdate and print ClientKeyUpdate; data
//     keeps flowing. q is not a command: it is sent as data.
//   - -ign_eof: end of stdin is ignored and the commands are off (Q is
//     sent as data); s_client runs until the peer closes.
//   - -quiet: like -ign_eof, and the output is only the verify callback's
//     lines ("depth=N ...", "verify return:1"), a line "Can't use
//     SSL_get_servername" unless -servername is given, and the
//     application data received; not even ClientClosed.
func OpenSSLClient(ctx context.Context, addr string, caFile string, extra ...string) (*Process, error) {
	args := []string{"s_client", "-connect", addr, "-CAfile", caFile, "-verify_return_error"}
	return startOpenSSL(ctx, append(args, extra...))
}

// startOpenSSL starts openssl with args, under "stdbuf -oL" if stdbuf is
// installed: openssl's standard output is a stdio stream, fully buffered
// on a pipe, and s_server and s_client flush only some of their messages.
func startOpenSSL(ctx context.Context, args []string) (*Process, error) {
	display := "openssl " + args[0]
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil {
		return start(ctx, display, stdbuf, append([]string{"-oL", "openssl"}, args...))
	}
	return start(ctx, display, "openssl", args)
}
