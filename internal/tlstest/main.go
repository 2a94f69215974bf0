package tlstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// Main is the body of TestMain for tests that run the peer programs of
// internal/peer. It checks that openssl is on PATH and prints its version,
// checks that it and the package run the OpenSSL the run is for
// ([peer.CheckOpenSSLVersions]), writes [DefaultPKI]'s files into a
// temporary directory and stores their paths in *files, runs the tests with
// run (with leakcheck.Run, which fails a run that leaves anything behind),
// and removes the directory. It returns the exit code, 1 if a step before
// the tests failed.
func Main(files *Files, run func() int) int {
	path, err := exec.LookPath("openssl")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the openssl program is not on PATH (%v).\n"+
			"These tests run openssl s_server and s_client as peers: CI must install the openssl package (apt-get install openssl).\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	version, err := exec.CommandContext(ctx, path, "version").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %s version: %v: %s\n", path, err, version)
		return 1
	}
	fmt.Printf("peer: %s", version)
	// A run meant for another OpenSSL must not pass on the system's.
	ctx, cancel = context.WithTimeout(context.Background(), Timeout)
	err = peer.CheckOpenSSLVersions(ctx, openssl.Version())
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tlstest-files-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *files, err = WriteFiles(DefaultPKI(), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return run()
}
