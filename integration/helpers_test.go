package integration_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// version is a TLS version: its name in test names, and its crypto/tls
// constant.
type version struct {
	name string
	v    uint16
}

var versions = []version{
	{"TLS1.2", tls.VersionTLS12},
	{"TLS1.3", tls.VersionTLS13},
}

// clientCtx returns a new Ctx for version v that trusts pki's CA and
// verifies the server's certificate.
func clientCtx(t testing.TB, v version) *openssl.Ctx {
	t.Helper()
	sslCtx, err := tlstest.NewCtx(pki, tlstest.WeClient, v.v)
	require.NoError(t, err)
	return sslCtx
}

// serverCtx returns a new Ctx for version v that serves pki's leaf.
func serverCtx(t testing.TB, v version) *openssl.Ctx {
	t.Helper()
	sslCtx, err := tlstest.NewCtx(pki, tlstest.WeServer, v.v)
	require.NoError(t, err)
	return sslCtx
}

// sServer starts openssl s_server for version v, with the extra
// arguments after the version's, and connects our client to it, made with
// sslCtx (nil: clientCtx's), handshake completed (tlstest.Connect). The
// Conn is closed and s_server killed at cleanup.
func sServer(t testing.TB, v version, sslCtx *openssl.Ctx, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	p := tlstest.Connect(t, tlstest.Spec{
		Case: tlstest.Case{Version: v.v, Role: tlstest.WeClient},
		Peer: tlstest.OpenSSLTool, PKI: pki, Ctx: sslCtx, PeerArgs: extra,
	})
	return p.Ours, p.Proc
}

// sClient starts openssl s_client for version v, with the extra arguments
// after the version's, against our server, and returns our Conn with the
// handshake completed and s_client's verification reported
// (tlstest.Connect). The Conn is closed and s_client killed at cleanup.
func sClient(t testing.TB, v version, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	p := tlstest.Connect(t, tlstest.Spec{
		Case: tlstest.Case{Version: v.v, Role: tlstest.WeServer},
		Peer: tlstest.OpenSSLTool, PKI: pki, PeerArgs: extra,
	})
	return p.Ours, p.Proc
}

// readN reads exactly n bytes from c within wait.
func readN(t testing.TB, c *openssl.Conn, n int) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

// readErr reads from c, within wait, until an error, and returns it with
// the bytes read before it.
func readErr(t testing.TB, c *openssl.Conn) (string, error) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	defer c.SetReadDeadline(time.Time{})
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			require.False(t, isTimeout(err), "read did not end within %v: %v", wait, err)
			return string(got), err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exitCode waits, at most wait long, for p to exit and returns its code.
func exitCode(t testing.TB, p *peer.Process) int {
	t.Helper()
	code, err := p.Wait(wait)
	require.NoError(t, err, "%s did not exit by itself", p.Name())
	return code
}
