package openssl_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/leakcheck"
)

// TestMain names the OpenSSL the tests run against, turns FIPS mode on when
// CLOSENOTIFY_FIPS=1 (fips_test.go), and fails the run when goroutines,
// file descriptors, SSL or SSL_CTX objects are left behind.
func TestMain(m *testing.M) {
	fmt.Println("libssl:", openssl.Version())
	if err := setFIPSFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	os.Exit(leakcheck.Run(m))
}
