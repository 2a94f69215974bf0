//go:build !race

package openssl_test

import (
	"io"
	"net"
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestReadWriteAllocateNothing proves that Read and Write allocate nothing
// per call in steady state, on the socket-fd path and on the generic path
// (both TCP ends inside tlstest.Generic's wrapper): both ends are this package's
// Conns, so every allocation the run makes would be ours.
func TestReadWriteAllocateNothing(t *testing.T) {
	for _, generic := range []bool{false, true} {
		name := "fd"
		if generic {
			name = "generic"
		}
		t.Run(name, func(t *testing.T) {
			var c, s net.Conn = tlstest.TCPPair(t)
			if generic {
				c, _ = tlstest.Generic.Wrap(c)
				s, _ = tlstest.Generic.Wrap(s)
			}
			readWriteAllocs(t, c, s)
		})
	}
}

func readWriteAllocs(t *testing.T, c, s net.Conn) {
	client, err := openssl.Client(c, tlstest.ClientCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := openssl.Server(s, tlstest.ServerCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	const rounds = 200
	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for range rounds + 1 { // AllocsPerRun adds a warm-up round
			if _, err := io.ReadFull(server, buf); err != nil {
				echoed <- err
				return
			}
			if _, err := server.Write(buf); err != nil {
				echoed <- err
				return
			}
		}
		echoed <- nil
	}()
	buf := make([]byte, 1024)
	allocs := testing.AllocsPerRun(rounds, func() {
		if _, err := client.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatal(err)
		}
	})
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("Read and Write allocated %.1f times per round trip, want 0", allocs)
	}
}
