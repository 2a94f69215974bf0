package integration_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

// wait bounds every wait of these tests: for a peer's output, its exit,
// a handshake, a read, a shutdown.
const wait = 10 * time.Second

// pki is the PKI of every test; TestMain writes its files, which the
// command-line peers read, into a temporary directory.
var pki *testcert.Bundle

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run checks that openssl is installed, writes the PKI files, runs the
// tests, and then fails the run if file descriptors or SSL objects leaked.
func run(m *testing.M) int {
	path, err := exec.LookPath("openssl")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the openssl program is not on PATH (%v).\n"+
			"These tests run openssl s_server and s_client as peers: CI must install the openssl package (apt-get install openssl).\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	version, err := exec.CommandContext(ctx, path, "version").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %s version: %v: %s\n", path, err, version)
		return 1
	}
	fmt.Printf("peer: %s", version)

	dir, err := os.MkdirTemp("", "closenotify-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if pki, err = testcert.New(); err == nil {
		err = pki.WriteFiles(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// Make the runtime open what it keeps open for good (the netpoller's
	// descriptors) before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	before, err := openFDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	code := m.Run()

	if err := checkFDs(before); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		code = 1
	}
	if ssl, _ := openssl.LiveObjects(); ssl != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d SSL objects were not freed (a Conn was not closed)\n", ssl)
		code = 1
	}
	return code
}

// openFDs returns the open file descriptors of this process, each as
// "fd -> target".
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

// checkFDs returns an error naming the descriptors open now that were not
// open before. A socket closed by a goroutine that has not yet returned
// from its last read is released a moment later, so it looks again, at
// most wait long, before it reports a leak.
func checkFDs(before []string) error {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
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
		if len(now) <= len(before) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d file descriptors open before the tests, %d after; new ones:\n\t%s",
				len(before), len(now), strings.Join(leaked, "\n\t"))
		}
		<-tick.C
	}
}
