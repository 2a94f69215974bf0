package peer

import (
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// PythonPackage is the Debian package that provides python3 with its ssl
// module.
const PythonPackage = "python3"

//go:embed python_peer.py
var pythonPeer string

// PythonOptions configures a Python ssl peer.
type PythonOptions struct {
	// Version pins the TLS version (tls.VersionTLS12 or
	// tls.VersionTLS13); 0 leaves Python's defaults.
	Version uint16

	// SuppressRaggedEOFs is passed to SSLContext.wrap_socket. Unlike
	// Python's default (True), the zero value is False: a TCP EOF
	// without close_notify is reported, as PythonError+PythonSSLEOFError.
	SuppressRaggedEOFs bool

	// IgnoreUnexpectedEOF sets OpenSSL's SSL_OP_IGNORE_UNEXPECTED_EOF,
	// which makes a TCP EOF without close_notify read as a close_notify
	// (b""). The peer clears the option otherwise, whatever the Python
	// version's default (3.10.0-3.10.10 and 3.11.0-3.11.2 set it).
	IgnoreUnexpectedEOF bool

	// Timeout is the socket timeout of every operation, accept and
	// handshake included; 0 means 10 seconds. An operation that times out
	// replies PythonError+PythonTimeoutError.
	Timeout time.Duration
}

// Replies of the Python peer, each a line of its own; the ones ending in a
// space are followed by a value and "\n".
const (
	// PythonVersionLine starts the first line of every Python peer:
	// "PYTHON 3.11.2 OpenSSL 3.0.19 27 Jan 2026" (see PythonVersion).
	PythonVersionLine = "PYTHON "
	// PythonReady is the server's first line, followed by the port it
	// listens on (the kernel's choice).
	PythonReady = "READY "
	// PythonConnected is printed after the handshake, followed by the
	// version as Python names it ("TLSv1.2", "TLSv1.3").
	PythonConnected = "CONNECTED "
	// PythonSent answers send, followed by the number of bytes sent.
	PythonSent = "SENT "
	// PythonData answers recv and recvall, followed by the bytes in hex
	// (see PythonDataLine).
	PythonData = "DATA "
	// PythonEOF is printed when recv returns no data: the peer's
	// close_notify, or, with SuppressRaggedEOFs, a TCP EOF without it.
	PythonEOF = "EOF\n"
	// PythonUnwrapped is printed when unwrap (SSLSocket.unwrap) has
	// completed the bidirectional close_notify exchange.
	PythonUnwrapped = "UNWRAPPED\n"
	// PythonClosed answers close, rawclose and reset.
	PythonClosed = "CLOSED\n"
	// PythonError is printed when a command or the connection fails,
	// followed by the exception's class name, ": " and its text. After
	// a failed handshake the program exits with code 1.
	PythonError = "ERROR "
)

// Exception class names that follow PythonError, and parts of their texts.
const (
	// PythonSSLEOFError is raised, with SuppressRaggedEOFs false, for a
	// TCP reset while reading, in every Python version, with the text
	// PythonEOFViolation; and for a TCP EOF without close_notify from
	// Python 3.10.11, 3.11.3 and 3.12 on (see PythonTruncationClass).
	PythonSSLEOFError = "SSLEOFError"
	// PythonSSLError is raised for a TCP EOF without close_notify by
	// Python versions before those (Debian 12 has 3.11.2), whatever
	// SuppressRaggedEOFs says.
	PythonSSLError = "SSLError"
	// PythonEOFViolation is the text of an SSLEOFError.
	PythonEOFViolation = "EOF occurred in violation of protocol"
	// PythonUnexpectedEOF is OpenSSL's reason in the text of the error
	// for a TCP EOF without close_notify (FIN), whichever class it has.
	PythonUnexpectedEOF = "[SSL: UNEXPECTED_EOF_WHILE_READING]"
	// PythonTimeoutError: the socket timeout passed, for example in
	// unwrap while the peer does not answer.
	PythonTimeoutError = "TimeoutError"
)

// Commands of the Python peer, each a line of its own. Commands run one
// after the other; each ends with exactly one reply line (recvall prints
// two: the data, then the end).
const (
	// PythonCmdRecvAll reads until EOF or an error, then prints
	// PythonData with everything read (possibly nothing) and PythonEOF
	// or the error.
	PythonCmdRecvAll = "recvall\n"
	// PythonCmdUnwrap calls SSLSocket.unwrap: it sends close_notify
	// (unless sent) and reads until the peer's close_notify. Afterwards
	// the commands work on the plain TCP socket.
	PythonCmdUnwrap = "unwrap\n"
	// PythonCmdClose calls SSLSocket.close, which closes the socket
	// without sending close_notify.
	PythonCmdClose = "close\n"
	// PythonCmdRawClose closes the TCP socket under the SSL object
	// without close_notify (the wire sees the same as PythonCmdClose).
	PythonCmdRawClose = "rawclose\n"
	// PythonCmdReset sets SO_LINGER to 0 and closes: the peer gets RST.
	PythonCmdReset = "reset\n"
)

// PythonSend returns the command that sends b (sendall).
func PythonSend(b []byte) string { return "send " + hex.EncodeToString(b) + "\n" }

// PythonRecv returns the command that calls recv(n) once and replies
// PythonDataLine of what it got, PythonEOF, or PythonError.
func PythonRecv(n int) string { return "recv " + strconv.Itoa(n) + "\n" }

// PythonDataLine returns the line the peer prints for data b.
func PythonDataLine(b []byte) string { return PythonData + hex.EncodeToString(b) + "\n" }

// PythonVersion waits at most timeout for the PythonVersionLine of p and
// returns the version it names, such as "3.11.2".
func PythonVersion(p *Process, timeout time.Duration) (string, error) {
	if err := p.WaitFor(PythonVersionLine, timeout); err != nil {
		return "", err
	}
	out := p.Output()
	i := strings.Index(out, PythonVersionLine) + len(PythonVersionLine)
	version, _, ok := strings.Cut(out[i:], " ")
	if !ok {
		return "", fmt.Errorf("peer: python peer printed %q, not a version", out)
	}
	return version, nil
}

// PythonTruncationClass returns the class of the exception that recv
// raises for a TCP EOF without close_notify in Python version (as
// "3.11.2"), with IgnoreUnexpectedEOF false: PythonSSLEOFError from
// 3.10.11, 3.11.3 and 3.12.0 on (CPython issue gh-95494), and with it
// SuppressRaggedEOFs turns the EOF into b""; PythonSSLError before, which
// SuppressRaggedEOFs does not affect.
func PythonTruncationClass(version string) string {
	var major, minor, micro int
	fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &micro)
	fixed := major > 3 || major == 3 && (minor >= 12 || minor == 11 && micro >= 3 || minor == 10 && micro >= 11)
	if fixed {
		return PythonSSLEOFError
	}
	return PythonSSLError
}

// PythonServer runs the Python ssl peer (python_peer.py, through
// "python3 -c"; /usr/bin/python3 if installed, else python3 from PATH) as
// a server on a port of 127.0.0.1 that the kernel picks, with certFile and
// keyFile.
// It accepts one connection, does the handshake and prints
// PythonConnected; then it runs the commands it reads on standard input
// until end of standard input, and exits with code 0. PythonServer returns
// once the server listens; Addr then returns its address. It waits at most
// StartTimeout and never past ctx; on error the process is killed. If
// python3 is not installed, the error names PythonPackage.
//
// Python's ssl module is built on OpenSSL (3.0 here), so its record layer
// behaves like OpenSSL's; what it adds is its own API. Observed behaviour
// with a crypto/tls peer, client and server alike (each case is a test in
// this package):
//
//   - Peer sends close_notify (TLS 1.2 and 1.3): recv returns b""
//     (PythonEOF) whatever SuppressRaggedEOFs says. Python does not
//     answer by itself: PythonCmdUnwrap then sends close_notify and
//     completes at once (PythonUnwrapped).
//   - Peer closes TCP without close_notify: recv raises the exception
//     PythonTruncationClass names for the version, with
//     PythonUnexpectedEOF in its text; if that is SSLEOFError,
//     SuppressRaggedEOFs turns it into b"" (PythonEOF). With
//     IgnoreUnexpectedEOF, recv returns b"" in every version: then
//     nothing tells a truncation from a close_notify.
//   - Peer resets TCP: with SuppressRaggedEOFs false, recv raises
//     SSLEOFError with PythonEOFViolation and no OpenSSL reason, not
//     ConnectionResetError; with true it returns b"".
//   - PythonCmdUnwrap first: sends close_notify; if the peer answers with
//     close_notify, unwrap returns (PythonUnwrapped) and the TCP
//     connection stays open; if the peer neither answers nor closes,
//     unwrap raises TimeoutError after Timeout; if the peer closes TCP
//     without answering, unwrap raises the exception of a truncation.
//   - PythonCmdClose (SSLSocket.close) sends no close_notify: the peer
//     sees a truncation.
func PythonServer(ctx context.Context, certFile, keyFile string, opts PythonOptions) (*Process, error) {
	args := []string{"--mode", "server", "--port", "0", "--cert", certFile, "--key", keyFile}
	p, err := startPython(ctx, args, opts)
	if err != nil {
		return nil, err
	}
	return listening(ctx, p, func(p *Process, timeout time.Duration) (string, error) {
		port, err := waitLine(p, PythonReady, timeout)
		if err != nil {
			return "", err
		}
		if _, err := strconv.Atoi(port); err != nil {
			return "", fmt.Errorf("peer: python server printed %q after %q: %w", port, PythonReady, err)
		}
		return net.JoinHostPort("127.0.0.1", port), nil
	})
}

// PythonClient runs the Python ssl peer as a client of addr, trusting
// caFile and checking the certificate for "localhost". It returns as soon
// as the program has started; wait for PythonConnected for the handshake.
// After it, the client runs the commands it reads on standard input until
// end of standard input, and exits with code 0. See PythonServer for the
// observed behaviour.
func PythonClient(ctx context.Context, addr, caFile string, opts PythonOptions) (*Process, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("peer: python client address: %w", err)
	}
	return startPython(ctx, []string{"--mode", "client", "--host", host, "--port", port, "--ca", caFile}, opts)
}

// debianPython is where the Debian package python3 installs the
// interpreter.
const debianPython = "/usr/bin/python3"

// pythonPath returns debianPython if it is installed, else python3 from
// PATH. Wrappers such as pyenv's shims take a third of a second to start.
func pythonPath() (string, error) {
	if path, err := exec.LookPath(debianPython); err == nil {
		return path, nil
	}
	path, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("peer: python3 not found: install the Debian package %s: %w", PythonPackage, err)
	}
	return path, nil
}

func startPython(ctx context.Context, args []string, opts PythonOptions) (*Process, error) {
	python, err := pythonPath()
	if err != nil {
		return nil, err
	}
	switch opts.Version {
	case 0:
	case tls.VersionTLS12:
		args = append(args, "--tls", "1.2")
	case tls.VersionTLS13:
		args = append(args, "--tls", "1.3")
	default:
		return nil, fmt.Errorf("peer: python peer: unsupported TLS version %#x", opts.Version)
	}
	args = append(args, "--suppress-ragged-eofs", strconv.FormatBool(opts.SuppressRaggedEOFs),
		"--ignore-unexpected-eof", strconv.FormatBool(opts.IgnoreUnexpectedEOF))
	if opts.Timeout > 0 {
		args = append(args, "--timeout", strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64))
	}
	// -u: unbuffered output; -c takes the program and leaves sys.argv[1:]
	// to args.
	return start(ctx, "python3 ssl peer", python, append([]string{"-u", "-c", pythonPeer}, args...))
}
