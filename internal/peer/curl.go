package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// CurlPackage is the Debian package that provides curl.
const CurlPackage = "curl"

// CurlTimeout bounds a curl run: Curl passes it as --max-time and kills
// curl's process group if it runs 2 seconds longer.
const CurlTimeout = 10 * time.Second

// Exit codes and messages of curl 7.88 (built with OpenSSL 3.0), as the
// tests of this package observe them.
const (
	// CurlExitPartialFile is curl's exit code when the connection ends
	// before the body has the length the headers announced
	// (CURLE_PARTIAL_FILE).
	CurlExitPartialFile = 18

	// CurlPartialFile starts the message curl prints (after "curl: (18) ")
	// for CurlExitPartialFile: "transfer closed with 94 bytes remaining to
	// read".
	CurlPartialFile = "transfer closed with "

	// CurlVerboseLeftIntact starts the -v line printed when a response
	// ends and curl keeps the connection for reuse: "* Connection #0 to
	// host localhost left intact".
	CurlVerboseLeftIntact = "* Connection #0 to host "

	// CurlVerboseClosing starts the -v line printed when curl closes a
	// connection after a response, as after "Connection: close":
	// "* Closing connection 0".
	CurlVerboseClosing = "* Closing connection "
)

// CurlResult is what a curl run produced.
type CurlResult struct {
	ExitCode int    // curl's exit code
	Stdout   string // the response body (with -i, headers too)
	Stderr   string // -v's trace and -sS's error message
}

// Curl runs
//
//	curl --cacert caFile -sS -v --max-time 10 extra... url
//
// in a process group of its own, waits for it to exit and returns its exit
// code and output. Pass "--http1.1", "--tlsv1.2 --tls-max 1.2" or
// "--tlsv1.3" in extra to fix the protocols. The error is not nil only if
// curl could not be started (if it is not installed the error names
// CurlPackage) or did not exit by itself: it was killed when ctx was done
// or CurlTimeout+2s passed. A failing transfer is an exit code, with a nil
// error.
//
// Observed behaviour of curl 7.88 with a crypto/tls HTTPS server
// (net/http; each case is a test in this package), HTTP/1.1 over TLS 1.2
// and 1.3:
//
//   - A response that leaves the connection open (keep-alive): curl
//     prints CurlVerboseLeftIntact and, at exit, sends close_notify and
//     FIN: the server reads a clean close.
//   - "Connection: close" responses: curl prints CurlVerboseClosing.
//     Whether the server ends with close_notify or with a bare TCP FIN
//     makes no difference to curl: a complete Content-Length body and a
//     close-delimited body (no Content-Length) both give exit code 0, and
//     curl reports no unexpected EOF. curl 7.88 does not detect a
//     truncation at the TLS level.
//   - A body shorter than its Content-Length: curl prints "curl: (18) " +
//     CurlPartialFile + "94 bytes remaining to read" and exits with
//     CurlExitPartialFile, with or without the server's close_notify.
//   - A server that does not answer: --max-time in extra (it overrides
//     the default) ends curl with exit code 28.
func Curl(ctx context.Context, caFile, url string, extra ...string) (CurlResult, error) {
	path, err := exec.LookPath("curl")
	if err != nil {
		return CurlResult{ExitCode: -1}, fmt.Errorf("peer: curl not found: install the Debian package %s: %w", CurlPackage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, CurlTimeout+2*time.Second)
	defer cancel()
	args := []string{"--cacert", caFile, "-sS", "-v", "--max-time", strconv.Itoa(int(CurlTimeout / time.Second))}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Bounds the wait for the output pipes if a child kept them open.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	r := CurlResult{ExitCode: -1, Stdout: stdout.String(), Stderr: stderr.String()}
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return r, nil
	case r.ExitCode >= 0 && errors.As(err, &exitErr):
		return r, nil
	default:
		return r, fmt.Errorf("peer: curl %s: %w; standard error was:\n%s", url, err, r.Stderr)
	}
}

// CurlT is Curl for tests: it fails t at once if curl could not be run
// or did not exit by itself, and returns the result otherwise, whatever
// the exit code.
func CurlT(t testing.TB, caFile, url string, extra ...string) CurlResult {
	t.Helper()
	r, err := Curl(t.Context(), caFile, url, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
