package httpssl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/httpssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// protoName is Request.Proto and Response.Proto of each protocol.
func protoName(h2 bool) string {
	if h2 {
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}

func alpnName(h2 bool) string {
	if h2 {
		return "h2"
	}
	return "http/1.1"
}

// TestGoClientAgainstOurServer: net/http's client over crypto/tls, HTTP/1.1
// and HTTP/2, against httpssl.Serve; the handler's Request.TLS is what the
// client saw, and ConnFromContext gives the *openssl.Conn.
func TestGoClientAgainstOurServer(t *testing.T) {
	for _, v := range versions {
		for _, h2 := range []bool{false, true} {
			t.Run(tls.VersionName(v)+"/"+alpnName(h2), func(t *testing.T) {
				s := startServer(t, serverCtx(t, v), report, nil)
				resp, err := goClient(t, h2, nil, nil).Get(s.url + "/")
				require.NoError(t, err)
				got := decodeSeen(t, resp)
				require.Equal(t, protoName(h2), resp.Proto)
				require.Equal(t, v, resp.TLS.Version)
				if h2 {
					require.Equal(t, "h2", resp.TLS.NegotiatedProtocol)
				} else {
					// net/http offers no ALPN when it speaks HTTP/1 only.
					require.Empty(t, resp.TLS.NegotiatedProtocol)
				}
				require.Equal(t, seen{
					Proto:              protoName(h2),
					HaveTLS:            true,
					Version:            v,
					CipherSuite:        resp.TLS.CipherSuite,
					NegotiatedProtocol: resp.TLS.NegotiatedProtocol,
					ServerName:         "localhost",
					HandshakeComplete:  true,
					ConnCipherSuiteID:  resp.TLS.CipherSuite,
					HaveConn:           true,
					BodySHA256:         sha(nil),
				}, got)
			})
		}
	}
}

// TestCurlAgainstOurServer: curl (libcurl with nghttp2) with --http1.1 and
// --http2.
func TestCurlAgainstOurServer(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(alpnName(h2), func(t *testing.T) {
			s := startServer(t, serverCtx(t, 0), report, nil)
			flag := "--http1.1"
			if h2 {
				flag = "--http2"
			}
			res := peer.CurlT(t, files.CA, s.url+"/", flag)
			require.Equal(t, 0, res.ExitCode, "curl stderr:\n%s", res.Stderr)
			var got seen
			require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got), "curl's output: %q", res.Stdout)
			require.Equal(t, protoName(h2), got.Proto)
			require.Equal(t, alpnName(h2), got.NegotiatedProtocol)
			require.True(t, got.HaveTLS && got.HandshakeComplete && got.HaveConn)
			require.Equal(t, "localhost", got.ServerName)
			require.Equal(t, uint16(tls.VersionTLS13), got.Version)
			require.Equal(t, got.ConnCipherSuiteID, got.CipherSuite)
			require.Contains(t, res.Stderr, "ALPN: server accepted "+alpnName(h2))
		})
	}
}

// target is an HTTPS server for our client.
type target struct {
	name string
	h2   bool
	// start returns the server's URL; the server is closed at cleanup.
	start func(t *testing.T, h http.Handler) string
}

// goServer is net/http's HTTPS server over crypto/tls (httptest).
func goServer(h2 bool) target {
	return target{name: "go-" + alpnName(h2), h2: h2, start: func(t *testing.T, h http.Handler) string {
		ts := httptest.NewUnstartedServer(h)
		ts.EnableHTTP2 = h2
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}}
		ts.StartTLS()
		t.Cleanup(ts.Close)
		return ts.URL
	}}
}

// ourServer is httpssl.Serve; without h2 its Ctx offers only HTTP/1.1.
func ourServer(h2 bool) target {
	return target{name: "ours-" + alpnName(h2), h2: h2, start: func(t *testing.T, h http.Handler) string {
		ctx := serverCtx(t, 0)
		if !h2 {
			require.NoError(t, ctx.SetNextProtos([]string{"http/1.1"}))
		}
		return startServer(t, ctx, h, nil).url
	}}
}

var targets = []target{goServer(false), goServer(true), ourServer(false), ourServer(true)}

// TestOurClient: our Transport against net/http's server over crypto/tls
// and against ours, HTTP/1.1 and HTTP/2; Response.TLS is filled in and
// agrees with the server's Request.TLS, request after request.
func TestOurClient(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			url := tg.start(t, report)
			client := &http.Client{Transport: ourTransport(t, nil), Timeout: wait}
			for i := range 3 {
				body := bytes.Repeat([]byte{'x'}, i)
				resp, err := client.Post(url+"/", "text/plain", bytes.NewReader(body))
				require.NoError(t, err)
				got := decodeSeen(t, resp)
				require.Equal(t, protoName(tg.h2), resp.Proto)
				require.Equal(t, protoName(tg.h2), got.Proto)
				require.Equal(t, sha(body), got.BodySHA256)
				require.NotNil(t, resp.TLS)
				require.True(t, resp.TLS.HandshakeComplete)
				require.Equal(t, got.Version, resp.TLS.Version)
				require.Equal(t, got.CipherSuite, resp.TLS.CipherSuite)
				require.Equal(t, got.NegotiatedProtocol, resp.TLS.NegotiatedProtocol)
				if tg.h2 {
					require.Equal(t, "h2", resp.TLS.NegotiatedProtocol)
				}
				require.True(t, resp.TLS.PeerCertificates[0].Equal(pki.Leaf))
			}
		})
	}
}

// TestMutualTLS: the handler's Request.TLS.PeerCertificates carries the
// client's certificate, whoever the client is.
func TestMutualTLS(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	clients := []struct {
		name   string
		h2     bool
		client func(t *testing.T) *http.Client
	}{
		{"go-http/1.1", false, func(t *testing.T) *http.Client { return goClient(t, false, client, nil) }},
		{"go-h2", true, func(t *testing.T) *http.Client { return goClient(t, true, client, nil) }},
		{"ours", true, func(t *testing.T) *http.Client {
			return &http.Client{Transport: ourTransport(t, client), Timeout: wait}
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, mtlsServerCtx(t), report, nil)
			resp, err := c.client(t).Get(s.url + "/")
			require.NoError(t, err)
			got := decodeSeen(t, resp)
			require.Equal(t, "client.test", got.PeerCommonName)
			require.Equal(t, protoName(c.h2), got.Proto)
		})
	}
}

// TestVerifiedChains: over our Transport and httpssl.Serve with mutual
// TLS, HTTP/1.1 and HTTP/2, Response.TLS.VerifiedChains is the server's
// leaf and the CA, and the handler's Request.TLS.VerifiedChains the
// client's leaf and the CA, the chains OpenSSL verified on each side.
func TestVerifiedChains(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	for _, h2 := range []bool{false, true} {
		t.Run(alpnName(h2), func(t *testing.T) {
			sslCtx := mtlsServerCtx(t)
			require.NoError(t, sslCtx.SetNextProtos([]string{alpnName(h2)}))
			s := startServer(t, sslCtx, report, nil)
			resp, err := (&http.Client{Transport: ourTransport(t, client), Timeout: wait}).Get(s.url + "/")
			require.NoError(t, err)
			got := decodeSeen(t, resp)
			require.Equal(t, protoName(h2), got.Proto)
			require.Equal(t, [][][]byte{{client.Leaf.Raw, pki.CA.Raw}}, got.VerifiedChains, "the handler's Request.TLS")
			require.Equal(t, [][][]byte{{pki.Leaf.Raw, pki.CA.Raw}}, rawChains(resp.TLS.VerifiedChains), "Response.TLS")
		})
	}
}

// mtlsServerCtx is serverCtx requiring a client certificate from pki's CA.
func mtlsServerCtx(t *testing.T) *openssl.Ctx {
	ctx := serverCtx(t, 0)
	require.NoError(t, ctx.LoadVerifyLocations(files.CA, ""))
	ctx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	return ctx
}

// TestHandshakeErrorLogged: a failed handshake is logged to ErrorLog with
// OpenSSL's reason, as net/http logs crypto/tls's.
func TestHandshakeErrorLogged(t *testing.T) {
	cases := []struct {
		name      string
		serverCtx func(t *testing.T) *openssl.Ctx
		client    *tls.Config
		clientErr string
		logged    string
	}{
		// crypto/tls ends the handshake with bad_certificate.
		{"untrusted-server", func(t *testing.T) *openssl.Ctx { return serverCtx(t, 0) },
			&tls.Config{RootCAs: otherCAPool(t)}, "certificate signed by unknown authority", "alert bad certificate"},
		// The client sends its request before it reads the alert, which
		// our close may then overtake with RST: its error is either.
		{"no-client-certificate", mtlsServerCtx,
			&tls.Config{RootCAs: pki.Pool}, "", "peer did not return a certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.serverCtx(t), report, nil)
			tr := &http.Transport{TLSClientConfig: tc.client}
			t.Cleanup(tr.CloseIdleConnections)
			_, err := (&http.Client{Transport: tr, Timeout: wait}).Get(s.url + "/")
			require.Error(t, err)
			require.ErrorContains(t, err, tc.clientErr)
			line := s.log.next(t)
			require.True(t, strings.HasPrefix(line, "http: TLS handshake error from 127.0.0.1:"), line)
			require.Contains(t, line, tc.logged)
		})
	}
}

// otherCAPool returns the pool of a CA other than pki's.
func otherCAPool(t *testing.T) *x509.CertPool {
	other, err := testcert.New()
	require.NoError(t, err)
	return other.Pool
}

// TestFlowControl16MiB: 16 MiB up and 16 MiB down in one HTTP/2 request,
// through the peers' flow control windows.
func TestFlowControl16MiB(t *testing.T) {
	const size = 16 << 20
	up := tlstest.Pattern(size)
	up[0] = 'u' // unlike the download
	cases := []struct {
		name   string
		url    func(t *testing.T) string
		client func(t *testing.T) *http.Client
	}{
		{"go-client/ours", func(t *testing.T) string { return ourServer(true).start(t, report) },
			func(t *testing.T) *http.Client { return goClient(t, true, nil, nil) }},
		{"ours/go-server", func(t *testing.T) string { return goServer(true).start(t, report) },
			func(t *testing.T) *http.Client {
				return &http.Client{Transport: ourTransport(t, nil), Timeout: 3 * wait}
			}},
		{"ours/ours", func(t *testing.T) string { return ourServer(true).start(t, report) },
			func(t *testing.T) *http.Client {
				return &http.Client{Transport: ourTransport(t, nil), Timeout: 3 * wait}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			resp, err := tc.client(t).Post(url+"/?size=16777216", "application/octet-stream", bytes.NewReader(up))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, "HTTP/2.0", resp.Proto)
			var got seen
			require.NoError(t, json.Unmarshal([]byte(resp.Header.Get("X-Seen")), &got))
			require.Equal(t, int64(size), got.BodyLen)
			require.Equal(t, sha(up), got.BodySHA256)
			down, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, size, len(down))
			require.Equal(t, sha(tlstest.Pattern(size)), sha(down))
		})
	}
}

// onlyReader hides bytes.Reader's type, so that http.NewRequest cannot
// set GetBody: the body cannot be sent twice.
type onlyReader struct{ io.Reader }

// TestOurClientProtocolChange: a server that picks HTTP/1.1 where it
// picked h2 before is met on the next connection: a request that can be
// sent again is, over HTTP/1.1; one whose body cannot fails with
// ErrProtocolChanged; the one after succeeds.
func TestOurClientProtocolChange(t *testing.T) {
	sslCtx := serverCtx(t, 0)
	s := startServer(t, sslCtx, report, nil)
	tr := ourTransport(t, nil)
	client := &http.Client{Transport: tr, Timeout: wait}
	get := func() *http.Response {
		resp, err := client.Get(s.url + "/")
		require.NoError(t, err)
		decodeSeen(t, resp)
		return resp
	}
	require.Equal(t, "HTTP/2.0", get().Proto)

	require.NoError(t, sslCtx.SetNextProtos([]string{"http/1.1"}))
	tr.CloseIdleConnections()
	require.Equal(t, "HTTP/1.1", get().Proto, "sent again over HTTP/1.1")

	require.NoError(t, sslCtx.SetNextProtos(httpssl.NextProtos()))
	tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, s.url+"/", onlyReader{strings.NewReader("once")})
	require.NoError(t, err)
	_, err = client.Do(req)
	require.ErrorIs(t, err, httpssl.ErrProtocolChanged)
	require.Equal(t, "HTTP/2.0", get().Proto)
}

// TestOurClientConcurrentFirstRequests: requests that arrive together at
// a server the Transport does not know yet wait for one first connection
// to tell its protocol, and all succeed over it.
func TestOurClientConcurrentFirstRequests(t *testing.T) {
	const n = 8
	for _, tg := range []target{ourServer(false), ourServer(true)} {
		t.Run(tg.name, func(t *testing.T) {
			url := tg.start(t, report)
			client := &http.Client{Transport: ourTransport(t, nil), Timeout: wait}
			protos := make(chan string, n)
			errs := make(chan error, n)
			for range n {
				go func() {
					resp, err := client.Get(url + "/")
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					protos <- resp.Proto
					errs <- nil
				}()
			}
			for range n {
				require.NoError(t, <-errs)
			}
			for range n {
				require.Equal(t, protoName(tg.h2), <-protos)
			}
		})
	}
}

// TestSilentClientHandshakeBounded: a client that connects and says
// nothing holds its handshake no longer than ReadHeaderTimeout, as with
// crypto/tls, and the failure is logged.
func TestSilentClientHandshakeBounded(t *testing.T) {
	s := startServer(t, serverCtx(t, 0), report, &http.Server{ReadHeaderTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "https://"))
	require.NoError(t, err)
	defer c.Close()
	line := s.log.next(t)
	require.Regexp(t, `^http: TLS handshake error from 127\.0\.0\.1:\d+: openssl: handshake: .*(i/o timeout|context deadline exceeded)`, line)
	// The server closed the connection: our read ends.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

type userKey struct{}

// TestServeKeepsServerSettings: Serve keeps the caller's ConnContext
// (chained before ConnFromContext's) and Protocols: without HTTP2 in them
// the server speaks HTTP/1.1 only, even when ALPN picked "h2".
func TestServeKeepsServerSettings(t *testing.T) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Protocols: &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, userKey{}, c.RemoteAddr().String())
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %t", r.Context().Value(userKey{}), r.Proto, httpssl.ConnFromContext(r.Context()) != nil)
	})
	s := startServer(t, serverCtx(t, 0), h, srv)

	resp, err := goClient(t, false, nil, nil).Get(s.url + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `^127\.0\.0\.1:\d+ HTTP/1\.1 true$`, string(body))

	// ALPN picks h2, but net/http reads the client's HTTP/2 preface as a
	// malformed HTTP/1 request.
	_, err = goClient(t, true, nil, nil).Get(s.url + "/")
	require.Error(t, err)
}

// plaintextAnswer is what net/http over crypto/tls answers to a plaintext
// HTTP request on its HTTPS port; TestPlaintextHTTPRequest checks that
// net/http's server does send it, in the same run.
const plaintextAnswer = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// TestPlaintextHTTPRequest: a plaintext HTTP request to httpssl.Serve's
// HTTPS port gets net/http's plaintext 400 answer, then EOF, exactly as
// from net/http's own HTTPS server: from a plain TCP client and from curl
// with an http:// URL.
func TestPlaintextHTTPRequest(t *testing.T) {
	for _, tg := range []target{goServer(false), ourServer(true)} {
		t.Run(tg.name, func(t *testing.T) {
			addr := strings.TrimPrefix(tg.start(t, report), "https://")
			t.Run("tcp", func(t *testing.T) {
				// Both servers read the whole request, sent in one write,
				// before they close: nothing unread makes them send RST.
				require.Equal(t, plaintextAnswer, plaintextExchange(t, addr, "GET / HTTP/1.0\r\n\r\n"))
			})
			t.Run("curl", func(t *testing.T) {
				res := peer.CurlT(t, files.CA, "http://"+addr+"/", "-i")
				require.Equal(t, 0, res.ExitCode, "curl stderr:\n%s", res.Stderr)
				require.Equal(t, plaintextAnswer, res.Stdout)
			})
		})
	}
}

// TestPlaintextHTTPRequestNotLogged: the answered request is not logged as
// a handshake error, as net/http does not log it; other plaintext that
// fails the handshake still is.
func TestPlaintextHTTPRequestNotLogged(t *testing.T) {
	s := startServer(t, serverCtx(t, 0), report, nil)
	addr := strings.TrimPrefix(s.url, "https://")
	require.Equal(t, plaintextAnswer, plaintextExchange(t, addr, "GET / HTTP/1.0\r\n\r\n"))

	// Plaintext that is no HTTP request: a logged handshake error, the
	// first line of the log.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = io.WriteString(c, "HELLO\r\n")
	require.NoError(t, err)
	line := s.log.next(t)
	require.True(t, strings.HasPrefix(line, "http: TLS handshake error from "+c.LocalAddr().String()+": "), line)
	require.Contains(t, line, "wrong version number")
}

// plaintextExchange sends request on a new TCP connection to addr and
// returns all it reads until the server closes.
func plaintextExchange(t *testing.T, addr, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	return string(got)
}
