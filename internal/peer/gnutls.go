package peer

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	// port N...done". The port is the one given with -p, 0 included:
	// gnutls-serv does not report the port the kernel chose. It listens
	// on all addresses (0.0.0.0 and ::), never on 127.0.0.1 alone.
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
//	gnutls-serv --echo -p PORT --x509certfile certFile --x509keyfile keyFile extra...
//
// and returns once it listens; Addr then returns "127.0.0.1:PORT". With
// port 0 the kernel picks a free port; gnutls-serv prints 0 rather than the
// port, so GnuTLSServer finds the port of the process's listening IPv4
// socket in /proc (no race, unlike FreePort). gnutls-serv listens on all
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
func GnuTLSServer(ctx context.Context, port int, certFile, keyFile string, extra ...string) (*Process, error) {
	args := []string{"--echo", "-p", strconv.Itoa(port),
		"--x509certfile", certFile, "--x509keyfile", keyFile}
	p, err := startTool(ctx, "gnutls-serv", GnuTLSPackage, append(args, extra...))
	if err != nil {
		return nil, err
	}
	timeout := StartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if p.addr, err = waitGnuTLSListening(p, port, timeout); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// waitGnuTLSListening waits for gnutls-serv's IPv4 listening line and
// returns 127.0.0.1 with the port it listens on.
func waitGnuTLSListening(p *Process, port int, timeout time.Duration) (string, error) {
	start := time.Now()
	if err := p.WaitFor(GnuTLSServerListening, timeout); err != nil {
		return "", err
	}
	i := strings.Index(p.Output(), GnuTLSServerListening)
	if err := p.WaitForAfter(i, "\n", timeout-time.Since(start)); err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(p.Output()[i:], "\n")
	if !strings.HasSuffix(line+"\n", GnuTLSServerListenDone) {
		return "", fmt.Errorf("peer: gnutls-serv could not listen: %q; output was:\n%s", line, p.Output())
	}
	if port == 0 {
		var err error
		if port, err = listeningPortOf(p.Pid()); err != nil {
			return "", err
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// listeningPortOf returns the port of the IPv4 TCP socket in state LISTEN
// that process pid holds, found by matching the socket inodes of its
// descriptors (/proc/PID/fd) with /proc/net/tcp.
func listeningPortOf(pid int) (int, error) {
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	inodes := make(map[string]bool)
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return 0, fmt.Errorf("peer: /proc/net/tcp: bad address %q", f[1])
		}
		return int(port), nil
	}
	return 0, fmt.Errorf("peer: process %d has no listening IPv4 socket", pid)
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

// GnuTLSServerT is GnuTLSServer for tests, with the cleanup of StartT. It
// fails t at once if the server does not start listening, naming
// GnuTLSPackage if gnutls-serv is not installed.
func GnuTLSServerT(t testing.TB, port int, certFile, keyFile string, extra ...string) *Process {
	t.Helper()
	p, err := GnuTLSServer(t.Context(), port, certFile, keyFile, extra...)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p
}

// GnuTLSClientT is GnuTLSClient for tests, with the cleanup of StartT.
func GnuTLSClientT(t testing.TB, addr, caFile string, extra ...string) *Process {
	t.Helper()
	p, err := GnuTLSClient(t.Context(), addr, caFile, extra...)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p
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
