package integration_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// TestCurlAgainstOurHTTPS runs curl as an HTTPS client against net/http
// serving over this package's listener, and checks what each side saw at
// the end of the connection.
func TestCurlAgainstOurHTTPS(t *testing.T) {
	cases := []struct {
		name   string
		policy openssl.ClosePolicy
		close  bool // the handler asks for "Connection: close"
		// ourEnd is how our server Conn's reading may end: never with
		// ErrTruncated.
		ourEnd []error
	}{
		// curl sends close_notify at exit on a kept-alive connection: our
		// server reads a clean io.EOF, never ErrTruncated.
		{name: "keep-alive", ourEnd: []error{io.EOF}},
		// We close after the response (close_notify, then FIN); curl is
		// content. Our reading ends with our own Close, or earlier with
		// io.EOF when curl's close_notify gets there first.
		{name: "connection-close", close: true, ourEnd: []error{net.ErrClosed, io.EOF}},
		// A quiet close (no close_notify) after a complete Content-Length
		// body: curl 7.88 does not detect it either.
		{name: "connection-close-quiet", close: true, policy: openssl.ClosePolicy{Quiet: true}, ourEnd: []error{net.ErrClosed, io.EOF}},
	}
	for _, v := range versions {
		curlVersion := map[string][]string{
			"TLS1.2": {"--tlsv1.2", "--tls-max", "1.2"},
			"TLS1.3": {"--tlsv1.3"},
		}[v.name]
		for _, tc := range cases {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				sslCtx := serverCtx(t, v)
				sslCtx.SetClosePolicy(tc.policy)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				rec := &recordingListener{Listener: openssl.NewListener(ln, sslCtx)}
				const body = "hello from closenotify/openssl\n"
				srv := &http.Server{
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if tc.close {
							w.Header().Set("Connection", "close")
						}
						io.WriteString(w, body)
					}),
					ReadHeaderTimeout: wait,
				}
				served := make(chan error, 1)
				go func() { served <- srv.Serve(rec) }()
				t.Cleanup(func() {
					srv.Close()
					<-served
				})

				url := "https://localhost:" + portOf(t, ln.Addr()) + "/"
				res := peer.CurlT(t, files.CA, url, append([]string{"--http1.1"}, curlVersion...)...)
				require.Equal(t, 0, res.ExitCode, "curl stderr:\n%s", res.Stderr)
				require.Equal(t, body, res.Stdout)

				conn := rec.only(t)
				select {
				case <-conn.ended:
				case <-time.After(wait):
					t.Fatal("our server connection did not end")
				}
				ok := false
				for _, want := range tc.ourEnd {
					// io.EOF must be exactly io.EOF: curl's close_notify.
					ok = ok || conn.readErr == want || (want != io.EOF && errors.Is(conn.readErr, want))
				}
				require.True(t, ok, "our reading ended with %v, want one of %v", conn.readErr, tc.ourEnd)
				if tc.close {
					require.Contains(t, res.Stderr, "Closing connection")
				}
			})
		}
	}
}

func portOf(t *testing.T, a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	require.NoError(t, err)
	return port
}

// recordingListener remembers the connections it accepted.
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*recordingConn // protected by mu
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{Conn: c.(*openssl.Conn), ended: make(chan struct{})}
	l.mu.Lock()
	l.conns = append(l.conns, rc)
	l.mu.Unlock()
	return rc, nil
}

func (l *recordingListener) only(t *testing.T) *recordingConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Len(t, l.conns, 1, "curl made one connection")
	return l.conns[0]
}

// recordingConn records the error that ended its reading: io.EOF for the
// peer's close_notify, ErrTruncated for a TCP EOF without it.
type recordingConn struct {
	*openssl.Conn
	once    sync.Once
	ended   chan struct{}
	readErr error // set before ended is closed
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !isTimeout(err) {
		c.end(err)
	}
	return n, err
}

func (c *recordingConn) Close() error {
	err := c.Conn.Close()
	c.end(net.ErrClosed)
	return err
}

func (c *recordingConn) end(err error) {
	c.once.Do(func() {
		c.readErr = err
		close(c.ended)
	})
}
