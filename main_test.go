package openssl_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/leakcheck"
)

// TestMain names the OpenSSL the tests run against and fails the run when
// goroutines, file descriptors, SSL or SSL_CTX objects are left behind.
func TestMain(m *testing.M) {
	fmt.Println("libssl:", openssl.Version())
	os.Exit(leakcheck.Run(m))
}
