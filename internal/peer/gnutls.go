package peer

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"
)

// GnuTLSPackage is the Debian package that provides gnutls-serv and
// gnutls-cli.
const GnuTLSPackage = "gnutls-bin"

// Priority strings for gnutls-serv and gnutls-cli (--priority) that allow
// exactly one TLS version.
const (
	GnuTLSPriorityTLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
	GnuTLSPriorityTLS13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3"
)

// Strings printed by gnutls-serv 3.7 in echo mode (--echo), each on a line
// of its own unless said otherwise. The output of a Process mixes standard
// output and standard error.
const (
	// GnuTLSServerListening starts the line gnutls-serv prints when it
	// sets up its IPv4 socket: "Echo Server listening on IPv4 0.0.0.0
	// port 0...done": the port given with -p, not the one the kernel
	// chose. It listens on all addresses (0.0.0.0 and ::), never on
	// 127.0.0.1 alone.
	GnuTLSServerListening = "Echo Server listening on IPv4 "

	// GnuTLSServerListenDone ends the GnuTLSServerListening line once the
	// socket listens.
	GnuTLSServerListenDone = "...done\n"

	// GnuTLSServerAccepted starts the line printed when a TCP connection
	// is accepted, before the handshake.
	GnuTLSServerAccepted = "* Accepted connection from "

	// GnuTLSServerReceiveError is printed when receiving fails, for
	// example when the peer closed TCP without close_notify. The line
	// "Error: " followed by GnuTLS's message comes next.
	GnuTLSServerReceiveError = "Error while receiving data\n"

	// GnuTLSPrematureEOF is GnuTLS's message for a TCP EOF without
	// close_notify (GNUTLS_E_PREMATURE_TERMINATION), TLS 1.2 and 1.3
	// alike. gnutls-serv prints it after "Error: ", gnutls-cli after
	// "*** Fatal error: ".
	GnuTLSPrematureEOF = "The TLS connection was non-properly terminated."

	// GnuTLSPullError is GnuTLS's message when reading from the socket
	// fails, as with a TCP reset (GNUTLS_E_PULL_ERROR).
	GnuTLSPullError = "Error in the pull function."
)

// Commands that gnutls-serv --echo recognises in the data it receives
// (it prints "*** Processing N bytes command: ..." for every record).
const (
	// GnuTLSServerCmdRehandshake makes gnutls-serv call
	// gnutls_rehandshake: under TLS 1.2 it sends a HelloRequest.
	GnuTLSServerCmdRehandshake = "**REHANDSHAKE**\n"
)

// Strings printed by gnutls-cli 3.7, each on a line of its own.
const (
	// GnuTLSClientHandshakeDone is printed when the handshake is complete
	// and the certificate verified.
	GnuTLSClientHandshakeDone = "- Handshake was completed\n"

	// GnuTLSClientSimpleMode follows GnuTLSClientHandshakeDone: from now
	// on gnutls-cli copies standard input to the connection and the
	// connection to standard output.
	GnuTLSClientSimpleMode = "- Simple Client Mode:\n"

	// GnuTLSClientPeerClosed is printed when the peer's close_notify
	// arrives (gnutls_record_recv returns 0). gnutls-cli then closes TCP
	// without answering with its own close_notify and exits with code 0.
	GnuTLSClientPeerClosed = "- Peer has closed the GnuTLS connection\n"

	// GnuTLSClientFatal starts the line printed when receiving fails; the
	// GnuTLS message follows (GnuTLSPrematureEOF, GnuTLSPullError).
	GnuTLSClientFatal = "*** Fatal error: "

	// GnuTLSClientAbnormal follows the GnuTLSClientFatal line when the
	// connection ended without close_notify; gnutls-cli exits with code 1.
	GnuTLSClientAbnormal = "*** Server has terminated the connection abnormally.\n"
)

// GnuTLSServer runs
//
//	gnutls-serv --echo -p 0 --x509certfile certFile --x509keyfile keyFile extra...
//
// and returns once it listens; Addr then returns "127.0.0.1:PORT". The
// kernel picks the port; gnutls-serv prints 0 rather than the port, so
// GnuTLSServer finds the port of the process's listening IPv4 socket in
// /proc. gnutls-serv listens on all
// addresses, IPv4 and IPv6, and accepts any number of connections until
// it is killed; pass "--priority", GnuTLSPriorityTLS12 (or 13) in extra to
// fix the version. It runs under "stdbuf -oL" when stdbuf is installed.
// It waits at most StartTimeout and never past ctx; on error the process
// is killed and the error quotes its output. If gnutls-serv is not
// installed, the error names GnuTLSPackage.
//
// In echo mode gnutls-serv sends back every record of data it receives.
// Observed behaviour of gnutls-serv 3.7 with a crypto/tls client (each
// case is a test in this package):
//
//   - Peer sends close_notify (TLS 1.2 and 1.3): answers with its own
//     close_notify and sends FIN at once; prints nothing about it.
//   - Peer closes TCP without close_notify (TLS 1.2 and 1.3): prints
//     GnuTLSServerReceiveError, then "Error: " + GnuTLSPrematureEOF.
//   - Peer resets TCP: prints GnuTLSServerReceiveError, then "Error: " +
//     GnuTLSPullError.
//   - In every case it keeps running and accepting connections.
//   - GnuTLSServerCmdRehandshake, received as data under TLS 1.2, sends a
//     HelloRequest (a crypto/tls client that does not renegotiate fails
//     with "tls: no renegotiation").
func GnuTLSServer(ctx context.Context, certFile, keyFile string, extra ...string) (*Process, error) {
	args := []string{"--echo", "-p", "0",
		"--x509certfile", certFile, "--x509keyfile", keyFile}
	p, err := startTool(ctx, "gnutls-serv", GnuTLSPackage, append(args, extra...))
	if err != nil {
		return nil, err
	}
	return listening(ctx, p, waitGnuTLSListening)
}

// waitGnuTLSListening waits for gnutls-serv's IPv4 listening line and
// returns 127.0.0.1 with the port it listens on.
func waitGnuTLSListening(p *Process, timeout time.Duration) (string, error) {
	start := time.Now()
	rest, err := waitLine(p, GnuTLSServerListening, timeout)
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(rest+"\n", GnuTLSServerListenDone) {
		return "", fmt.Errorf("peer: gnutls-serv could not listen: %q; output was:\n%s", GnuTLSServerListening+rest, p.Output())
	}
	return waitListening(p, timeout-time.Since(start))
}

// GnuTLSClient runs
//
//	gnutls-cli --x509cafile caFile -p PORT HOST extra...
//
// with HOST and PORT from addr, and returns as soon as it has started
// (wait for GnuTLSClientHandshakeDone for the handshake). gnutls-cli
// verifies the certificate against caFile and HOST: with HOST 127.0.0.1,
// as the tests use it, the certificate must name that IP address. Pass
// "--priority",
// GnuTLSPriorityTLS12 (or 13) in extra to fix the version. It runs under
// "stdbuf -oL" when stdbuf is installed. If gnutls-cli is not installed,
// the error names GnuTLSPackage.
//
// Observed behaviour of gnutls-cli 3.7 with a crypto/tls server (each case
// is a test in this package):
//
//   - Peer sends close_notify (TLS 1.2 and 1.3): prints
//     GnuTLSClientPeerClosed and exits with code 0 after closing TCP
//     without answering with close_notify: the peer sees a truncation.
//   - Peer closes TCP without close_notify (TLS 1.2 and 1.3): prints
//     GnuTLSClientFatal + GnuTLSPrematureEOF and GnuTLSClientAbnormal;
//     exit code 1.
//   - Peer resets TCP: prints GnuTLSClientFatal + GnuTLSPullError and
//     GnuTLSClientAbnormal; exit code 1.
//   - End of standard input (CloseStdin) is how to make gnutls-cli close
//     cleanly: it sends close_notify, then FIN, and exits with code 0
//     without waiting for the peer's close_notify, printing nothing
//     more. (--inline-commands offers ^resume^, ^renegotiate^, ^rekey^
//     and ^rekey1^, according to the program's strings; none sends
//     close_notify. Not tested.)
func GnuTLSClient(ctx context.Context, addr, caFile string, extra ...string) (*Process, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("peer: gnutls-cli address: %w", err)
	}
	args := []string{"--x509cafile", caFile, "-p", port, host}
	return startTool(ctx, "gnutls-cli", GnuTLSPackage, append(args, extra...))
}

// startTool starts name with args, under "stdbuf -oL" if stdbuf is
// installed. If name is not installed, the error says which Debian package
// provides it.
func startTool(ctx context.Context, name, debianPackage string, args []string) (*Process, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("peer: %s not found: install the Debian package %s: %w", name, debianPackage, err)
	}
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil {
		return start(ctx, name, stdbuf, append([]string{"-oL", name}, args...))
	}
	return start(ctx, name, name, args)
}
