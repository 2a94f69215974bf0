package openssl_test

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// Helpers of this package's tests only; connections, certificates, waits
// and shutdown steps come from internal/tlstest.

// pki is the shared, read-only test PKI.
var pki = tlstest.DefaultPKI()

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

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
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
		raw.SetDeadline(time.Now().Add(tlstest.Timeout))
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
