package integration_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// Scenario 7 continued: an RST from the peer while we write and while we
// wait in Shutdown (while we read is in matrix_test.go). Peers that cannot
// reset on demand get their RST from the relay in TestMatrixRelay.
func init() {
	scenarios = append(scenarios,
		scenario{id: 7, name: "peer_RST_while_we_write", run: peerRSTWhileWriting},
		scenario{id: 7, name: "peer_RST_while_we_wait_in_Shutdown", run: peerRSTWhileShuttingDown},
	)
}

// isResetErr reports whether err is how a reset shows on our side: the
// peer's RST (ECONNRESET) or a write after it (EPIPE).
func isResetErr(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func peerRSTWhileWriting(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	chunk := make([]byte, 64<<10)
	started := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		close(started)
		// Bounded: 1024 chunks (64 MiB); a reset ends it long before.
		for range 1024 {
			if _, err := c.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	<-started
	if err := ps.reset(); errors.Is(err, errUnsupported) {
		c.Close() // ends the writer
		<-wrote
		return ""
	} else {
		require.NoError(t, err)
	}
	err := <-wrote
	require.Error(t, err, "64 MiB went through a reset connection")
	require.True(t, isResetErr(err), "Write after the peer's RST: %v", err)
	return "our Write gets " + resetName(err)
}

func peerRSTWhileShuttingDown(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	// Our alert goes out first; a peer that answers by itself cannot be
	// made to reset instead, and says so below.
	r, err := c.ShutdownOnce()
	require.NoError(t, err)
	require.Equal(t, openssl.ShutdownSent, r)
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(boundedCtx(t, wait)) }()
	if err := ps.reset(); errors.Is(err, errUnsupported) {
		// An expired deadline ends the wait at once.
		require.NoError(t, c.SetDeadline(time.Now()))
		<-done
		return ""
	} else {
		require.NoError(t, err)
	}
	err = <-done
	require.True(t, isResetErr(err), "Shutdown after the peer's RST: %v", err)
	require.False(t, errors.Is(err, openssl.ErrShutdownTimeout))
	return "our Shutdown gets " + resetName(err)
}

func resetName(err error) string {
	if errors.Is(err, syscall.EPIPE) {
		return "EPIPE"
	}
	return "ECONNRESET"
}
