package peer_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
)

// curlVersions are the curl options that pin each TLS version.
var curlVersions = []struct {
	name  string
	flags []string
}{
	{"TLS1.2", []string{"--tlsv1.2", "--tls-max", "1.2"}},
	{"TLS1.3", []string{"--tlsv1.3"}},
}

// httpsServer is a net/http server over crypto/tls on 127.0.0.1 that
// reports, for every connection it closes, whether the TCP stream under
// it had reached EOF: false means the client's close_notify ended it.
type httpsServer struct {
	url    string      // https://localhost:PORT
	closed chan ending // one value per connection closed after the client's end
}

func newHTTPSServer(t *testing.T, handler http.Handler) *httpsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &httpsServer{
		url:    fmt.Sprintf("https://localhost:%d", ln.Addr().(*net.TCPAddr).Port),
		closed: make(chan ending, 10),
	}
	srv := &http.Server{
		Handler: handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pki.TLSCert},
			NextProtos:   []string{"http/1.1"},
		},
		ReadHeaderTimeout: wait,
		ConnState: func(c net.Conn, state http.ConnState) {
			if state != http.StateClosed {
				return
			}
			if c.(*tls.Conn).NetConn().(*observedConn).tcpEOF.Load() {
				s.closed <- endTruncated
			} else {
				s.closed <- endCloseNotify
			}
		},
	}
	go srv.ServeTLS(observingListener{ln}, "", "")
	t.Cleanup(func() { srv.Close() })
	return s
}

// observingListener wraps every accepted connection in an observedConn.
type observingListener struct{ net.Listener }

func (l observingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &observedConn{Conn: c}, nil
}

// expectClosed waits until the server closed a connection and checks
// why the client's end came.
func (s *httpsServer) expectClosed(t *testing.T, want ending) {
	t.Helper()
	if got := receive(t, s.closed, "connection closed"); got != want {
		t.Fatalf("server saw %s, want %s", got, want)
	}
}

// hijack returns a handler that writes resp on the raw TLS connection and
// then closes it: with close_notify if notify, else TCP only.
func hijack(resp string, notify bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		tc := c.(*tls.Conn)
		tc.SetWriteDeadline(time.Now().Add(wait))
		io.WriteString(tc, resp)
		if notify {
			tc.Close()
		} else {
			tc.NetConn().Close()
		}
	})
}

// At exit curl closes its kept-alive connection with close_notify.
func TestCurlClosesWithCloseNotify(t *testing.T) {
	t.Parallel()
	for _, v := range curlVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := newHTTPSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello\n")
			}))
			r := peer.CurlT(t, files.CA, s.url+"/path", append([]string{"--http1.1"}, v.flags...)...)
			if r.ExitCode != 0 || r.Stdout != "hello\n" {
				t.Fatalf("exit code %d, stdout %q; stderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
			}
			inOrder(t, r.Stderr, "SSL connection using "+tlsName(v.name), "GET /path HTTP/1.1", "HTTP/1.1 200 OK", peer.CurlVerboseLeftIntact)
			s.expectClosed(t, endCloseNotify)
		})
	}
}

// tlsName turns "TLS1.3" into curl's "TLSv1.3".
func tlsName(name string) string { return "TLSv" + strings.TrimPrefix(name, "TLS") }

// How curl takes the server's end of a response.
func TestCurlServerCloses(t *testing.T) {
	t.Parallel()
	const (
		withLength = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
		shortBody  = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nhello\n"
		noLength   = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello\n"
	)
	for _, tc := range []struct {
		name   string
		resp   string
		notify bool
		exit   int
		err    string
	}{
		{"Content-Length, FIN without close_notify", withLength, false, 0, ""},
		{"close-delimited, FIN without close_notify", noLength, false, 0, ""},
		{"close-delimited, close_notify", noLength, true, 0, ""},
		{"short body, FIN without close_notify", shortBody, false, peer.CurlExitPartialFile, peer.CurlPartialFile + "94 bytes remaining to read"},
		{"short body, close_notify", shortBody, true, peer.CurlExitPartialFile, peer.CurlPartialFile + "94 bytes remaining to read"},
	} {
		for _, v := range curlVersions {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				s := newHTTPSServer(t, hijack(tc.resp, tc.notify))
				r := peer.CurlT(t, files.CA, s.url+"/", append([]string{"--http1.1"}, v.flags...)...)
				if r.ExitCode != tc.exit || r.Stdout != "hello\n" {
					t.Fatalf("exit code %d, stdout %q, want %d, %q; stderr:\n%s", r.ExitCode, r.Stdout, tc.exit, "hello\n", r.Stderr)
				}
				if tc.err != "" {
					inOrder(t, r.Stderr, fmt.Sprintf("curl: (%d) %s\n", tc.exit, tc.err))
				} else {
					absent(t, r.Stderr, "curl: (")
				}
				inOrder(t, r.Stderr, peer.CurlVerboseClosing)
				absent(t, r.Stderr, "unexpected eof")
			})
		}
	}
}

// A server that does not answer: curl gives up after --max-time.
func TestCurlMaxTime(t *testing.T) {
	t.Parallel()
	s := newHTTPSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	start := time.Now()
	r := peer.CurlT(t, files.CA, s.url+"/", "--http1.1", "--max-time", "1")
	if r.ExitCode != 28 {
		t.Fatalf("exit code %d, want 28 (timeout); stderr:\n%s", r.ExitCode, r.Stderr)
	}
	if elapsed := time.Since(start); elapsed > peer.CurlTimeout {
		t.Fatalf("curl ran %v", elapsed)
	}
}
