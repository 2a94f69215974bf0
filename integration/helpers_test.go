package integration_test

import (
	"context"
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

// version is a TLS version both for our Ctx and for the openssl command
// line.
type version struct {
	name string
	v    uint16 // for SetMinProtoVersion and SetMaxProtoVersion
	flag string // for s_server and s_client
}

var versions = []version{
	{"TLS1.2", tls.VersionTLS12, "-tls1_2"},
	{"TLS1.3", tls.VersionTLS13, "-tls1_3"},
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

// sServer starts openssl s_server for version v on a port the kernel
// picks (port 0: s_server reports it, so there is no race for a free
// port). It is killed at cleanup.
func sServer(t testing.TB, v version, extra ...string) *peer.Process {
	t.Helper()
	return peer.OpenSSLServerT(t, 0, pki.CertFile, pki.KeyFile, append([]string{v.flag}, extra...)...)
}

// dial connects our client, made with sslCtx, to srv and completes the
// handshake. The Conn is closed at cleanup.
func dial(t testing.TB, srv *peer.Process, sslCtx *openssl.Ctx) *openssl.Conn {
	t.Helper()
	tcp, err := net.DialTimeout("tcp", srv.Addr(), wait)
	require.NoError(t, err)
	c, err := openssl.Client(tcp, sslCtx)
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, c.HandshakeContext(ctx), "handshake with %s", srv.Name())
	return c
}

// sClient listens on a port the kernel picks on 127.0.0.1, starts
// openssl s_client for version v against it, and returns our server Conn
// with the handshake completed, and the s_client process. Both are closed
// or killed at cleanup.
func sClient(t testing.TB, v version, extra ...string) (*openssl.Conn, *peer.Process) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	cl := peer.OpenSSLClientT(t, ln.Addr().String(), pki.CAFile, append([]string{v.flag}, extra...)...)
	require.NoError(t, ln.SetDeadline(time.Now().Add(wait)))
	tcp, err := ln.Accept()
	require.NoError(t, err, "accepting %s", cl.Name())
	c, err := openssl.Server(tcp, serverCtx(t, v))
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, c.HandshakeContext(ctx), "handshake with %s", cl.Name())
	require.NoError(t, cl.WaitFor(peer.ClientVerifyOK, wait))
	return c, cl
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
