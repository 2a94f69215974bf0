package httpssl_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/httpssl"
	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// wait bounds every wait of these tests.
const wait = tlstest.Timeout

// pki is the PKI of every test, and files its files, which curl and
// ListenAndServeTLS read; TestMain writes them.
var (
	pki   = tlstest.DefaultPKI()
	files tlstest.Files
)

func TestMain(m *testing.M) {
	os.Exit(tlstest.Main(&files, func() int { return leakcheck.Run(m) }))
}

// versions are the TLS versions the tables run.
var versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// serverCtx returns a Ctx serving pki's leaf with TLS version v (0: 1.2
// and 1.3) and offering NextProtos.
func serverCtx(t testing.TB, v uint16) *openssl.Ctx {
	t.Helper()
	sslCtx, err := tlstest.NewCtx(pki, tlstest.WeServer, v)
	require.NoError(t, err)
	require.NoError(t, sslCtx.SetNextProtos(httpssl.NextProtos()))
	return sslCtx
}

// clientCtx returns a Ctx trusting pki's CA, presenting client's
// certificate when it is not nil.
func clientCtx(t testing.TB, client *testcert.Bundle) *openssl.Ctx {
	t.Helper()
	if client == nil {
		return tlstest.ClientCtx(t)
	}
	return tlstest.CertClientCtx(t, client)
}

// ourTransport returns our Transport with clientCtx, its idle
// connections closed at cleanup.
func ourTransport(t testing.TB, client *testcert.Bundle) *httpssl.Transport {
	t.Helper()
	tr, err := httpssl.NewTransport(clientCtx(t, client), 0)
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// server is our HTTPS server on 127.0.0.1, run by httpssl.Serve.
type server struct {
	srv    *http.Server
	url    string // "https://localhost:PORT"
	served chan error
	log    *logLines
}

// startServer serves h with sslCtx; srv, when not nil, carries settings.
// With ends, the server's connections are recorded there. It is closed at
// cleanup.
func startServer(t testing.TB, sslCtx *openssl.Ctx, h http.Handler, srv *http.Server, ends ...*tlstest.Ends) *server {
	t.Helper()
	var l net.Listener
	l, err := openssl.Listen("tcp", "127.0.0.1:0", sslCtx)
	require.NoError(t, err)
	if len(ends) > 0 {
		l = &endsListener{Listener: l, ends: ends[0]}
	}
	if srv == nil {
		srv = &http.Server{}
	}
	s := &server{srv: srv, served: make(chan error, 1), log: newLogLines()}
	srv.Handler = h
	srv.ErrorLog = log.New(s.log, "", 0)
	s.url = "https://localhost:" + portOf(t, l.Addr())
	go func() { s.served <- httpssl.Serve(srv, l) }()
	t.Cleanup(func() {
		srv.Close()
		require.ErrorIs(t, <-s.served, http.ErrServerClosed)
	})
	return s
}

// endsListener records its connections' ends.
type endsListener struct {
	net.Listener
	ends *tlstest.Ends
}

func (l *endsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	oc := c.(*openssl.Conn)
	return &endsConn{Conn: oc, end: l.ends.Add(oc)}, nil
}

// endsConn is a server *openssl.Conn whose reading and closing end records.
type endsConn struct {
	*openssl.Conn
	end *tlstest.EndConn
}

func (c *endsConn) Read(b []byte) (int, error) { return c.end.Read(b) }
func (c *endsConn) Close() error               { return c.end.Close() }

func portOf(t testing.TB, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	require.NoError(t, err)
	return port
}

// logLines is an ErrorLog's output, line by line.
type logLines struct {
	lines chan string
}

func newLogLines() *logLines { return &logLines{lines: make(chan string, 100)} }

func (l *logLines) Write(b []byte) (int, error) {
	select {
	case l.lines <- strings.TrimSpace(string(b)):
	default: // a test that floods the log has failed anyway
	}
	return len(b), nil
}

// next returns the next line, failing t after wait.
func (l *logLines) next(t testing.TB) string {
	t.Helper()
	select {
	case s := <-l.lines:
		return s
	case <-time.After(wait):
		t.Fatal("nothing logged")
		return ""
	}
}

// seen is what the report handler saw of a request.
type seen struct {
	Proto              string
	HaveTLS            bool
	Version            uint16
	CipherSuite        uint16
	NegotiatedProtocol string
	ServerName         string
	HandshakeComplete  bool
	DidResume          bool
	PeerCommonName     string
	// VerifiedChains are Request.TLS.VerifiedChains in DER.
	VerifiedChains [][][]byte
	// ConnCipherSuiteID is the *openssl.Conn's, from ConnFromContext.
	ConnCipherSuiteID uint16
	HaveConn          bool
	BodySHA256        string
	BodyLen           int64
}

// report answers with a JSON seen, after reading the request body. With
// a query ?size=N it then sends N bytes of pattern instead, with the
// seen in the X-Seen header.
var report = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	s := seen{Proto: r.Proto, HaveTLS: r.TLS != nil}
	if r.TLS != nil {
		s.Version, s.CipherSuite = r.TLS.Version, r.TLS.CipherSuite
		s.NegotiatedProtocol, s.ServerName = r.TLS.NegotiatedProtocol, r.TLS.ServerName
		s.HandshakeComplete, s.DidResume = r.TLS.HandshakeComplete, r.TLS.DidResume
		if len(r.TLS.PeerCertificates) > 0 {
			s.PeerCommonName = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.VerifiedChains = rawChains(r.TLS.VerifiedChains)
	}
	if c := httpssl.ConnFromContext(r.Context()); c != nil {
		s.HaveConn, s.ConnCipherSuiteID = true, c.ConnectionState().CipherSuiteID
	}
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.BodyLen, s.BodySHA256 = n, fmt.Sprintf("%x", h.Sum(nil))
	js, _ := json.Marshal(s)
	var size int
	if _, err := fmt.Sscan(r.URL.Query().Get("size"), &size); err != nil || size <= 0 {
		w.Write(js)
		return
	}
	w.Header().Set("X-Seen", string(js))
	w.Write(tlstest.Pattern(size))
})

// decodeSeen reads a seen from a report answer without ?size.
func decodeSeen(t testing.TB, resp *http.Response) seen {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var s seen
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// rawChains returns the DER of chains' certificates, nil for nil.
func rawChains(chains [][]*x509.Certificate) [][][]byte {
	var raw [][][]byte
	for _, chain := range chains {
		var c [][]byte
		for _, cert := range chain {
			c = append(c, cert.Raw)
		}
		raw = append(raw, c)
	}
	return raw
}

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// goClient returns a crypto/tls client trusting pki's CA, speaking h2 or
// HTTP/1.1 only, presenting client's certificate when it is not nil.
//
// With rec, its connections are recorded there. net/http negotiates h2 by
// ALPN only on a *tls.Conn, not on the recording wrapper, so it is then
// told to speak HTTP/2 with prior knowledge (UnencryptedHTTP2) on the
// connections, which negotiated "h2" by ALPN all the same.
func goClient(t testing.TB, h2 bool, client *testcert.Bundle, rec *tlstest.Ends) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: pki.Pool}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.TLSCert}
	}
	// Enough idle connections per host that the client closes none of its
	// own accord.
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: new(http.Protocols), MaxIdleConnsPerHost: 100}
	switch {
	case !h2:
		tr.Protocols.SetHTTP1(true)
	case rec == nil:
		tr.Protocols.SetHTTP2(true)
	default:
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	if rec != nil {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c := cfg.Clone()
			c.NextProtos = []string{"http/1.1"}
			if h2 {
				c.NextProtos = []string{"h2"}
			}
			conn, err := (&tls.Dialer{Config: c}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tlsEndConn{rec.Add(conn)}, nil
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

// tlsEndConn is a recorded crypto/tls client connection that net/http
// takes for one: its ConnectionState fills Response.TLS.
type tlsEndConn struct{ *tlstest.EndConn }

func (c tlsEndConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}

// failedBeforeAnswer reports whether a request failed before any answer
// could come: it could not connect, or the server's close of a kept-alive
// connection reset it under the request's write. net/http's Transport
// retries the second only when it wrote nothing; the same race exists with
// crypto/tls servers. An answer lost after the handler wrote it is not
// among these, and tests count those apart.
func failedBeforeAnswer(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) {
		return false
	}
	return op.Op == "dial" || op.Op == "write" && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
