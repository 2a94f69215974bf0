package integration_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/peer"
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

// run checks that openssl is installed and that it and the package run the
// OpenSSL this run is for (peer.ExpectOpenSSLEnv), writes the PKI files,
// runs the tests, and then fails the run if goroutines, file descriptors,
// SSL or SSL_CTX objects leaked (internal/leakcheck).
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
	// A run meant for another OpenSSL must not pass on the system's.
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	err = peer.CheckOpenSSLVersions(ctx, openssl.Version())
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}

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

	return leakcheck.Run(m)
}
