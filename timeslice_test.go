package openssl_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/tlstest"
	"github.com/stretchr/testify/require"
)

// TestBusyWriteYields: a goroutine that loops over Write without waiting
// for the socket yields the processor once it has written for a time slice
// (1 ms), on every path, so that the runtime's monitor does not take its P
// away in the middle of a cgo call (timeslice.go). The peer reads all the
// while, so the loop rarely waits; it gets every byte, in order.
func TestBusyWriteYields(t *testing.T) {
	tlstest.EachPath(t, func(t *testing.T, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Path: path})
		p.Exchange(t)
		received := make(chan []byte, 1)
		peer := tlstest.Go(func() error {
			b, err := io.ReadAll(p.Peer)
			received <- b
			return err
		})
		// One-byte records: thousands of Writes before a slice ends on
		// a slow machine, every one of them a cgo call; 20,000 of them
		// are 460 KB on the wire.
		const maxWrites = 20000
		deadline := time.Now().Add(tlstest.Timeout)
		var sent []byte
		for {
			if _, w := p.Ours.Yields(); w > 0 {
				break
			}
			require.Less(t, len(sent), maxWrites, "no yield after %d Writes", len(sent))
			require.True(t, time.Now().Before(deadline), "no yield within %v", tlstest.Timeout)
			b := []byte{byte('a' + len(sent)%26)}
			_, err := p.Ours.Write(b)
			require.NoError(t, err)
			sent = append(sent, b...)
		}
		require.NoError(t, p.Ours.CloseWrite())
		tlstest.Wait(t, peer, "the peer's read up to our close_notify")
		got := <-received
		require.True(t, bytes.Equal(sent, got), "the peer got %d bytes, we wrote %d", len(got), len(sent))
	})
}
