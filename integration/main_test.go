package integration_test

import (
	"os"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/tlstest"
)

// wait bounds every wait of these tests: for a peer's output, its exit,
// a handshake, a read, a shutdown.
const wait = 10 * time.Second

var (
	// pki is the PKI of every test; files are its PEM files, which
	// TestMain writes for the peers that read files.
	pki   = tlstest.DefaultPKI()
	files tlstest.Files
)

// TestMain checks that openssl is installed, writes the PKI files, runs the
// tests, and then fails the run if goroutines, file descriptors, SSL or
// SSL_CTX objects leaked (internal/leakcheck).
func TestMain(m *testing.M) {
	os.Exit(tlstest.Main(&files, func() int { return leakcheck.Run(m) }))
}
