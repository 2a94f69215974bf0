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
	return sServerOn(t, v, tlstest.FD, sslCtx, extra...)
}

// sServerOn is sServer with our Conn on path (FD or Generic).
func sServerOn(t testing.TB, v version, path tlstest.Path, sslCtx *openssl.Ctx, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	p := tlstest.Connect(t, tlstest.Spec{
		Case: tlstest.Case{Version: v.v, Role: tlstest.WeClient},
		Peer: tlstest.OpenSSLTool, PKI: pki, Ctx: sslCtx, PeerArgs: extra,
		Path: path,
	})
	return p.Ours, p.Proc
}

// sClient starts openssl s_client for version v, with the extra arguments
// after the version's, against our server, and returns our Conn with the
// handshake completed and s_client's verification reported
// (tlstest.Connect). Then a line goes each way: s_client sends one (typed
// on its standard input) and we read exactly it; we send one and s_client
// prints it. After that neither side has unread input (TLS 1.3 session
// tickets included), so a close cannot turn into a reset. The Conn is
// closed and s_client killed at cleanup.
func sClient(t testing.TB, v version, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	return sClientOn(t, v, tlstest.FD, extra...)
}

// sClientOn is sClient with our Conn on path (FD or Generic).
func sClientOn(t testing.TB, v version, path tlstest.Path, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	p := tlstest.Connect(t, tlstest.Spec{
		Case: tlstest.Case{Version: v.v, Role: tlstest.WeServer},
		Peer: tlstest.OpenSSLTool, PKI: pki, PeerArgs: extra,
		Path: path,
	})
	const up = "hello from s_client\n"
	require.NoError(t, p.Proc.Send(up))
	require.Equal(t, up, readN(t, p.Ours, len(up)))
	say(t, p.Ours, p.Proc, "hello from our server\n")
	return p.Ours, p.Proc
}

// say writes line on c and waits until the peer p has printed it. Once
// s_server has, its handshake is over.
func say(t testing.TB, c *openssl.Conn, p *peer.Process, line string) {
	t.Helper()
	_, err := c.Write([]byte(line))
	require.NoError(t, err)
	require.NoError(t, p.WaitFor(line, wait))
}

// requireAnsweredShutdown shuts c down within wait, as how says
// ("ShutdownOnce+Retry" or "Shutdown"), and asserts a shutdown the peer
// answers: step by step, the sequence 0, any number of -1/WANT_READ, then
// 1; either way, both ShutdownState flags.
func requireAnsweredShutdown(t *testing.T, c *openssl.Conn, how string) {
	t.Helper()
	ctx := boundedCtx(t, wait)
	switch how {
	case "ShutdownOnce+Retry":
		seq, err := shutdownSequence(ctx, c)
		require.NoError(t, err, "sequence %v", seq)
		requireShape(t, seq, "0", "-1/WANT_READ", "1")
		t.Logf("ShutdownOnce steps: %v", seq)
	case "Shutdown":
		require.NoError(t, c.Shutdown(ctx))
	}
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
}

// requireAnsweredBy shuts c down as how says (requireAnsweredShutdown),
// with no application data discarded; then the peer p prints saw after
// mark, its sign of our close_notify, and exits with code 0.
func requireAnsweredBy(t *testing.T, c *openssl.Conn, how string, p *peer.Process, mark int, saw string) {
	t.Helper()
	requireAnsweredShutdown(t, c, how)
	require.Zero(t, c.DiscardedBytes())
	require.NoError(t, p.WaitForAfter(mark, saw, wait))
	require.Zero(t, exitCode(t, p))
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
