package main

import (
	"os"
	"testing"

	"github.com/closenotify/openssl/internal/leakcheck"
)

// TestMain fails the run when goroutines, file descriptors or OpenSSL
// objects are left behind.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
