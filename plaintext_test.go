package openssl_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestPlaintextHTTPRequest: our server's handshake fails with
// ErrHTTPRequest when a client sends a plaintext HTTP request that OpenSSL
// recognises (reason "http request"), and with another error for other
// plaintext; OpenSSL sends nothing back either way, on both paths.
func TestPlaintextHTTPRequest(t *testing.T) {
	cases := []struct {
		request     string
		httpRequest bool
	}{
		{"GET / HTTP/1.0\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		// CONNECT has a reason of its own, and text that is no request
		// is "wrong version number". (OpenSSL 3.5 also recognises PATCH,
		// OPTIONS, DELETE and TRACE, which 3.0 does not: they are left
		// out, as their outcome depends on the version.)
		{"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"HELLO\r\n", false},
	}
	tlstest.EachPath(t, func(t *testing.T, path tlstest.Path) {
		for _, tc := range cases {
			method, _, _ := strings.Cut(tc.request, " ")
			t.Run(method, func(t *testing.T) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				defer l.Close()
				client, err := net.Dial("tcp", l.Addr().String())
				require.NoError(t, err)
				defer client.Close()
				require.NoError(t, client.SetDeadline(time.Now().Add(tlstest.Timeout)))
				sock, err := l.Accept()
				require.NoError(t, err)
				inner, _ := path.Wrap(sock)
				ours, err := openssl.Server(inner, tlstest.ServerCtx(t))
				require.NoError(t, err)
				defer ours.Close()
				require.NoError(t, ours.SetDeadline(time.Now().Add(tlstest.Timeout)))

				_, err = io.WriteString(client, tc.request)
				require.NoError(t, err)
				require.NoError(t, client.(*net.TCPConn).CloseWrite())
				err = ours.Handshake()
				require.Error(t, err)
				require.Equal(t, tc.httpRequest, errors.Is(err, openssl.ErrHTTPRequest), "%v", err)
				if tc.httpRequest {
					requireReason(t, err, "handshake", "http request")
				}

				// The rest of the request is still in the socket (or in
				// the generic path's buffer): read it, so that closing
				// sends FIN, not RST; the client then sees nothing but EOF.
				rest, err := io.ReadAll(sock)
				require.NoError(t, err)
				require.True(t, strings.HasSuffix(tc.request, string(rest)), "%q left of %q", rest, tc.request)
				require.NoError(t, sock.Close())
				got, err := io.ReadAll(client)
				require.NoError(t, err)
				require.Empty(t, got, "OpenSSL sent nothing")
			})
		}
	}, tlstest.Path.OnSocket)
}
