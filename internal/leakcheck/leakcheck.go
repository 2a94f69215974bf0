// Package leakcheck fails a test binary that leaves goroutines, file
// descriptors or OpenSSL objects behind. Each test package's TestMain calls
// Run.
package leakcheck

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"go.uber.org/goleak"
)

// Grace bounds how long Run waits for resources released a moment after the
// last test returned (a socket closed by a goroutine still leaving its last
// read, an SSL_CTX freed by the garbage collector).
const Grace = 10 * time.Second

// Run runs the tests, then reports leaks on standard error and turns a
// passing run into a failing one when it finds any:
//   - goroutines still running (go.uber.org/goleak), besides ignore's;
//   - file descriptors open after the run that were not open before;
//   - SSL objects not freed (a Conn not closed), and SSL_CTX objects still
//     alive after the garbage collector ran (a Ctx kept reachable).
//
// It returns the exit code for os.Exit.
func Run(m *testing.M, ignore ...goleak.Option) int {
	// Let the runtime open what it keeps open for good (the netpoller's
	// descriptors) before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	before, err := openFDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leakcheck:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		return code
	}
	var failures []string
	if err := goleak.Find(ignore...); err != nil {
		failures = append(failures, err.Error())
	}
	if err := settle(func() error { return newFDs(before) }); err != nil {
		failures = append(failures, err.Error())
	}
	if err := settle(liveObjects); err != nil {
		failures = append(failures, err.Error())
	}
	for _, f := range failures {
		fmt.Fprintf(os.Stderr, "FAIL: leak: %s\n", f)
	}
	if len(failures) > 0 {
		return 1
	}
	return 0
}

// settle calls check until it returns nil or Grace passed, running the
// garbage collector between calls, and returns its last error.
func settle(check func() error) error {
	deadline := time.Now().Add(Grace)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func liveObjects() error {
	ssl, ctx := openssl.LiveObjects()
	if ssl != 0 || ctx != 0 {
		return fmt.Errorf("%d SSL objects not freed (Conns not closed), %d SSL_CTX objects alive", ssl, ctx)
	}
	return nil
}

// openFDs returns the process's open file descriptors as "fd -> target".
func openFDs() ([]string, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("listing file descriptors: %w", err)
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used, now closed
		}
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds, nil
}

// newFDs returns an error naming the descriptors open now that were not
// open before.
func newFDs(before []string) error {
	now, err := openFDs()
	if err != nil {
		return err
	}
	var leaked []string
	for _, fd := range now {
		if !slices.Contains(before, fd) {
			leaked = append(leaked, fd)
		}
	}
	if len(leaked) == 0 {
		return nil
	}
	return fmt.Errorf("%d file descriptors open before the tests, %d after; new ones:\n\t%s",
		len(before), len(now), strings.Join(leaked, "\n\t"))
}
