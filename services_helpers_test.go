package openssl_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// Helpers of the tests of sessions, host names, SNI, verification callbacks
// and the key log: small HTTP/1.0 servers (ours and crypto/tls's) that
// answer like `openssl s_server -www`, so that one client routine talks to
// all three.

// request is what clients send; s_server -www answers it with a page.
const request = "GET / HTTP/1.0\r\n\r\n"

// responseHead starts every answer.
const responseHead = "HTTP/1.0 200 ok\r\n"

// served is what a test server saw of one connection.
type served struct {
	serverName string
	resumed    bool
	peerCerts  int // certificates the client sent
	// verifiedChains are the chains the server verified.
	verifiedChains [][]*x509.Certificate
	err            error
}

// tlsServerConn is what serveHTTP needs of ours and of crypto/tls's.
type tlsServerConn interface {
	net.Conn
	Handshake() error
}

// serveHTTP accepts connections on l until cleanup. Each one: handshake,
// read the request's head, answer responseHead, a blank line and the SNI
// name it saw, close (with close_notify). What it saw goes to the returned
// channel, one entry per connection.
func serveHTTP(t testing.TB, l net.Listener, state func(net.Conn) served) <-chan served {
	t.Helper()
	results := make(chan served, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(tlstest.Timeout))
				if err := c.(tlsServerConn).Handshake(); err != nil {
					results <- served{err: err}
					return
				}
				s := state(c)
				s.err = readHead(c)
				if s.err == nil {
					_, s.err = io.WriteString(c, responseHead+"\r\n"+s.serverName)
				}
				results <- s
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return results
}

// readHead reads an HTTP request's head, up to its blank line.
func readHead(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
	}
}

// startOurServer serves HTTP with our server Conns made from sslCtx and
// returns the address and the results.
func startOurServer(t testing.TB, sslCtx *openssl.Ctx) (string, <-chan served) {
	t.Helper()
	l, err := openssl.Listen("tcp", "127.0.0.1:0", sslCtx)
	require.NoError(t, err)
	return l.Addr().String(), serveHTTP(t, l, func(c net.Conn) served {
		st := c.(*openssl.Conn).ConnectionState()
		return served{serverName: st.ServerName, resumed: st.DidResume, peerCerts: len(st.PeerCertificates), verifiedChains: st.VerifiedChains}
	})
}

// startGoServer serves HTTP with crypto/tls and cfg.
func startGoServer(t testing.TB, cfg *tls.Config) (string, <-chan served) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l.Addr().String(), serveHTTP(t, tls.NewListener(l, cfg), func(c net.Conn) served {
		st := c.(*tls.Conn).ConnectionState()
		return served{serverName: st.ServerName, resumed: st.DidResume, peerCerts: len(st.PeerCertificates), verifiedChains: st.VerifiedChains}
	})
}

// nextServed waits for the server's account of the next connection.
func nextServed(t testing.TB, results <-chan served) served {
	t.Helper()
	select {
	case s := <-results:
		require.NoError(t, s.err, "server")
		return s
	case <-time.After(tlstest.Timeout):
		t.Fatal("the server reported no connection")
		return served{}
	}
}

// get sends the request on c and returns the body of the answer, read up
// to the server's close_notify.
func get(t testing.TB, c io.ReadWriter) string {
	t.Helper()
	_, err := io.WriteString(c, request)
	require.NoError(t, err)
	answer, err := io.ReadAll(c)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(answer), responseHead), "answer %q", answer)
	_, body, ok := strings.Cut(string(answer), "\r\n\r\n")
	require.True(t, ok, "answer %q", answer)
	return body
}

// pemFiles is tlstest.WriteFiles into a directory removed at cleanup.
func pemFiles(t testing.TB, b *testcert.Bundle) (ca, cert, key string) {
	t.Helper()
	f, err := tlstest.WriteFiles(b, t.TempDir())
	require.NoError(t, err)
	return f.CA, f.Cert, f.Key
}

// ctxOf returns a Ctx presenting b's certificate and trusting b's CA (from
// memory), limited to version when it is not 0.
func ctxOf(t testing.TB, b *testcert.Bundle, version uint16) *openssl.Ctx {
	t.Helper()
	sslCtx, err := tlstest.NewServerCtx(b)
	require.NoError(t, err)
	ca, err := openssl.LoadCertificateFromPEM(b.CAPEM)
	require.NoError(t, err)
	require.NoError(t, sslCtx.GetCertificateStore().AddCertificate(ca))
	if version != 0 {
		require.NoError(t, sslCtx.SetMinProtoVersion(version))
		require.NoError(t, sslCtx.SetMaxProtoVersion(version))
	}
	return sslCtx
}
