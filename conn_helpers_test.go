package openssl_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

// Helpers for ctx_test.go, conn_test.go, deadline_test.go, race_test.go and
// errors_test.go: a Conn of ours facing a crypto/tls peer, in either role and
// either TLS version.

var tlsVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// ourRole says which side of the handshake our Conn is.
type ourRole int

const (
	weAreClient ourRole = iota
	weAreServer
)

var ourRoles = []ourRole{weAreClient, weAreServer}

func (r ourRole) String() string {
	if r == weAreClient {
		return "we-client"
	}
	return "we-server"
}

// eachVersionAndRole runs f as a subtest for TLS 1.2 and 1.3, each with our
// Conn as client and as server.
func eachVersionAndRole(t *testing.T, f func(t *testing.T, v uint16, r ourRole)) {
	for _, v := range tlsVersions {
		for _, r := range ourRoles {
			t.Run(tls.VersionName(v)+"/"+r.String(), func(t *testing.T) { f(t, v, r) })
		}
	}
}

// eachVersion runs f as a subtest for TLS 1.2 and 1.3.
func eachVersion(t *testing.T, f func(t *testing.T, v uint16)) {
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) { f(t, v) })
	}
}

// peerConfig is the crypto/tls configuration facing our Conn in role r:
// a server presenting pki's leaf, or a client trusting pki's CA and sending
// SNI "localhost"; both limited to version v.
func peerConfig(v uint16, r ourRole) *tls.Config {
	if r == weAreClient {
		return &tls.Config{
			Certificates: []tls.Certificate{pki.TLSCert},
			MinVersion:   v, MaxVersion: v,
		}
	}
	return &tls.Config{
		RootCAs: pki.Pool, ServerName: "localhost",
		MinVersion: v, MaxVersion: v,
	}
}

// ctxFor returns the Ctx our Conn uses by default in role r.
func ctxFor(t testing.TB, r ourRole) *openssl.Ctx {
	if r == weAreClient {
		return clientCtx(t)
	}
	return serverCtx(t)
}

// trustingCtx returns a client Ctx that trusts b's CA and verifies peers.
func trustingCtx(t testing.TB, b *testcert.Bundle) *openssl.Ctx {
	t.Helper()
	ctx, err := openssl.NewCtx()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), b.CAPEM, 0o600))
	require.NoError(t, ctx.LoadVerifyLocations(filepath.Join(dir, "ca.pem"), ""))
	ctx.SetVerifyMode(openssl.VerifyPeer)
	return ctx
}

// pairSpec describes a connection between our Conn and a crypto/tls peer.
type pairSpec struct {
	version uint16
	role    ourRole
	ctx     *openssl.Ctx // ours; nil means ctxFor(role)
	peer    *tls.Config  // nil means peerConfig(version, role)
	// ourSndBuf and peerRcvBuf, when positive, shrink SO_SNDBUF on our
	// socket and SO_RCVBUF on the peer's before the handshake, so that a
	// peer that stops reading fills the pipe quickly.
	ourSndBuf, peerRcvBuf int
	// generic puts our socket inside a plain wrapper, so that our Conn
	// takes the generic path.
	generic bool
}

// tlsPair is our Conn and its crypto/tls peer, with the peer's TCP socket,
// which tests close directly to make the peer vanish without close_notify.
type tlsPair struct {
	ours    *openssl.Conn
	peer    *tls.Conn
	peerRaw *net.TCPConn
}

// newPair connects our Conn and a crypto/tls peer as spec says, without
// handshaking. Every operation of the peer is bounded by testTimeout; our
// Conn is closed at cleanup.
func newPair(t testing.TB, spec pairSpec) *tlsPair {
	t.Helper()
	c, s := tcpPair(t)
	ourRaw, peerRaw := c, s
	if spec.role == weAreServer {
		ourRaw, peerRaw = s, c
	}
	if spec.ourSndBuf > 0 {
		require.NoError(t, ourRaw.SetWriteBuffer(spec.ourSndBuf))
	}
	if spec.peerRcvBuf > 0 {
		require.NoError(t, peerRaw.SetReadBuffer(spec.peerRcvBuf))
	}
	require.NoError(t, peerRaw.SetDeadline(time.Now().Add(testTimeout)))
	ctx := spec.ctx
	if ctx == nil {
		ctx = ctxFor(t, spec.role)
	}
	cfg := spec.peer
	if cfg == nil {
		cfg = peerConfig(spec.version, spec.role)
	}
	p := &tlsPair{peerRaw: peerRaw}
	var ourConn net.Conn = ourRaw
	if spec.generic {
		ourConn = struct{ net.Conn }{ourRaw}
	}
	var err error
	if spec.role == weAreClient {
		p.ours, err = openssl.Client(ourConn, ctx)
		p.peer = tls.Server(peerRaw, cfg)
	} else {
		p.ours, err = openssl.Server(ourConn, ctx)
		p.peer = tls.Client(peerRaw, cfg)
	}
	require.NoError(t, err)
	t.Cleanup(func() { p.ours.Close() })
	return p
}

// handshake runs both handshakes at once and returns their errors. Ours is
// bounded by testTimeout, as the peer's is.
func (p *tlsPair) handshake() (ourErr, peerErr error) {
	done := make(chan error, 1)
	go func() { done <- p.peer.Handshake() }()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ourErr = p.ours.HandshakeContext(ctx)
	return ourErr, <-done
}

// connectedPair is newPair followed by a handshake that must succeed on
// both sides.
func connectedPair(t testing.TB, spec pairSpec) *tlsPair {
	t.Helper()
	p := newPair(t, spec)
	ourErr, peerErr := p.handshake()
	require.NoError(t, ourErr, "our handshake")
	require.NoError(t, peerErr, "peer handshake")
	return p
}

// syncPeer makes sure the peer has read everything our side sent during the
// handshake (TLS 1.3 session tickets from our server in particular): we
// write a marker, the peer reads it. A peer that then closes its socket
// does so with an empty receive buffer, so its kernel sends FIN, not RST.
func (p *tlsPair) syncPeer(t testing.TB) {
	t.Helper()
	const marker = "sync"
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(marker))
		_, err := io.ReadFull(p.peer, buf)
		if err == nil && string(buf) != marker {
			err = errors.New("peer read " + string(buf))
		}
		errc <- err
	}()
	_, err := p.ours.Write([]byte(marker))
	require.NoError(t, err)
	require.NoError(t, <-errc)
}

// asError returns err's *openssl.Error, failing the test if there is none.
func asError(t testing.TB, err error) *openssl.Error {
	t.Helper()
	require.Error(t, err)
	var e *openssl.Error
	require.Truef(t, errors.As(err, &e), "%T %v is not an *openssl.Error", err, err)
	return e
}

// requireReason asserts that err is an *openssl.Error for op whose queue
// holds OpenSSL's reason, and whose message names it.
func requireReason(t testing.TB, err error, op, reason string) *openssl.Error {
	t.Helper()
	e := asError(t, err)
	require.Equal(t, op, e.Op, "Op of %v", err)
	var reasons []string
	for _, q := range e.Queue {
		reasons = append(reasons, q.ReasonText)
	}
	require.Containsf(t, reasons, reason, "queue of %v", err)
	require.Contains(t, err.Error(), reason)
	require.True(t, strings.HasPrefix(err.Error(), "openssl: "+op+": "), err.Error())
	return e
}

// pattern returns n reproducible pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeChunks writes b to w in chunks of varying sizes (1 byte to 64 KiB).
func writeChunks(w io.Writer, b []byte, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(64<<10))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readSum reads exactly n bytes from r and returns their SHA-256.
func readSum(r io.Reader, n int64) ([32]byte, error) {
	h := sha256.New()
	got, err := io.Copy(h, io.LimitReader(r, n))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	return sum, err
}

// goTLSServer is a crypto/tls server on 127.0.0.1 for Dial tests. For each
// connection it records the SNI the client sent and the handshake's result;
// connections stay open until cleanup.
type goTLSServer struct {
	addr    string         // host:port; constant
	hellos  chan string    // ClientHelloInfo.ServerName, one per connection
	results chan error     // the server's handshake result, one per connection
	conns   chan *tls.Conn // connections whose handshake succeeded
	l       net.Listener   // constant
	cfg     *tls.Config    // constant
	wg      sync.WaitGroup // the accept loop and the handshakes
	mu      sync.Mutex     // guards open
	open    []net.Conn     // protected by mu
}

func startGoTLSServer(t testing.TB, cfg *tls.Config) *goTLSServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &goTLSServer{
		addr:    l.Addr().String(),
		hellos:  make(chan string, 16),
		results: make(chan error, 16),
		conns:   make(chan *tls.Conn, 16),
		l:       l,
	}
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		s.hellos <- h.ServerName
		return nil, nil
	}
	s.cfg = cfg
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *goTLSServer) serve() {
	defer s.wg.Done()
	for {
		raw, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.open = append(s.open, raw)
		s.mu.Unlock()
		raw.SetDeadline(time.Now().Add(testTimeout))
		c := tls.Server(raw, s.cfg)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := c.Handshake()
			s.results <- err
			if err == nil {
				s.conns <- c
			}
		}()
	}
}

// port returns the server's port.
func (s *goTLSServer) port() string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

// silentListener accepts TCP connections on 127.0.0.1 and never reads or
// writes them: a peer that never speaks. They are closed at cleanup.
func silentListener(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		open []net.Conn
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	return l.Addr().String()
}

// liveSSL returns the number of live SSL objects.
func liveSSL() int64 {
	n, _ := openssl.LiveObjects()
	return n
}

// within fails the test if f does not return within d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
