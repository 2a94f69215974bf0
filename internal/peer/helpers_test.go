package peer_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

const (
	// wait bounds every step that is expected to happen.
	wait = tlstest.Timeout
	// quietWindow is how long a test watches for something that must not
	// happen. It is twice s_server's and s_client's 500 ms lingering close.
	quietWindow = time.Second
)

var (
	// pki is the certificates of every test; files are their PEM files,
	// which the peer programs read (written by TestMain).
	pki   = tlstest.DefaultPKI()
	files tlstest.Files
)

func TestMain(m *testing.M) {
	os.Exit(tlstest.Main(&files, func() int { return leakcheck.Run(m) }))
}

// untrustedCA returns the CA file of a second PKI, which does not trust
// pki's certificates.
func untrustedCA(t *testing.T) string {
	t.Helper()
	other, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	f, err := tlstest.WriteFiles(other, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f.CA
}

// ending says how a crypto/tls peer's reading stopped.
type ending string

const (
	endCloseNotify ending = "close_notify"
	endTruncated   ending = "TCP EOF without close_notify"
)

// observedConn records whether the TCP stream under a tls.Conn reached EOF.
// crypto/tls returns io.EOF both for close_notify and for a TCP EOF at a
// record boundary; only a close_notify stops it before it reads the TCP EOF.
type observedConn struct {
	net.Conn
	tcpEOF atomic.Bool
}

func (c *observedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err == io.EOF {
		c.tcpEOF.Store(true)
	}
	return n, err
}

// goPeer is one crypto/tls end of a connection with a goroutine that reads
// everything and reports data and the end on channels.
type goPeer struct {
	tls  *tls.Conn
	raw  *observedConn
	data chan string // one value per Read that returned data
	end  chan ending // the reason reading stopped; "error: ..." for other errors
}

func newGoPeer(t *testing.T, raw net.Conn, server bool, cfg *tls.Config) *goPeer {
	t.Helper()
	oc := &observedConn{Conn: raw}
	p := &goPeer{raw: oc, data: make(chan string, 100), end: make(chan ending, 1)}
	if server {
		p.tls = tls.Server(oc, cfg)
	} else {
		p.tls = tls.Client(oc, cfg)
	}
	t.Cleanup(func() { raw.Close() })
	if err := p.tls.HandshakeContext(tlstest.Context(t)); err != nil {
		t.Fatalf("crypto/tls handshake: %v", err)
	}
	go p.readLoop()
	return p
}

func (p *goPeer) readLoop() {
	buf := make([]byte, 16<<10)
	for {
		n, err := p.tls.Read(buf)
		if n > 0 {
			p.data <- string(buf[:n])
		}
		switch {
		case err == nil:
		case err == io.EOF && !p.raw.tcpEOF.Load():
			p.end <- endCloseNotify
			return
		case err == io.EOF:
			p.end <- endTruncated
			return
		default:
			p.end <- ending("error: " + err.Error())
			return
		}
	}
}

// dialGo connects a crypto/tls client trusting pki to addr. Its
// configuration is the one tlstest gives a peer facing a server.
func dialGo(t *testing.T, addr string, version uint16) *goPeer {
	t.Helper()
	raw, err := tlstest.Dial(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return newGoPeer(t, raw, false, tlstest.PeerConfig(pki, version, tlstest.WeServer))
}

// listenGo listens on 127.0.0.1 and returns the listener's address and a
// function that accepts one connection, within wait, and makes it a
// crypto/tls server presenting pki's leaf.
func listenGo(t *testing.T, version uint16) (addr string, accept func() *goPeer) {
	t.Helper()
	ln, err := tlstest.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() *goPeer {
		t.Helper()
		c, err := ln.Accept() // bounded by the listener's deadline
		if err != nil {
			t.Fatal(err)
		}
		return newGoPeer(t, c, true, tlstest.PeerConfig(pki, version, tlstest.WeClient))
	}
}

// receive waits at most wait for a value on ch and returns it; it fails t
// if none comes.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s within %v", what, wait)
		panic("unreachable")
	}
}

// expectData waits until the data read since the last call adds up to
// exactly want.
func (p *goPeer) expectData(t *testing.T, want string) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var got string
	for len(got) < len(want) {
		select {
		case d := <-p.data:
			got += d
		case e := <-p.end:
			p.end <- e
			t.Fatalf("read %q, then the stream ended (%s); want %q", got, e, want)
		case <-timer.C:
			t.Fatalf("read %q in %v, want %q", got, wait, want)
		}
	}
	if got != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectDataPrefix is expectData for a reply of unknown length: it reads
// until the stream ends and checks that the data starts with prefix. The
// end is left for expectEnd.
func (p *goPeer) expectDataPrefix(t *testing.T, prefix string) string {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var got string
	for {
		select {
		case d := <-p.data:
			got += d
			continue
		case e := <-p.end:
			p.end <- e
		case <-timer.C:
			t.Fatalf("stream did not end in %v; read %q", wait, got)
		}
		break
	}
	// Data sent before the end is in the channel before the end is.
	for len(p.data) > 0 {
		got += <-p.data
	}
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("read %q, want it to start with %q", got, prefix)
	}
	return got
}

// expectEnd waits until reading stops and checks why. Data still unread
// fails the test.
func (p *goPeer) expectEnd(t *testing.T, want ending) {
	t.Helper()
	if e := receive(t, p.end, "end of the stream"); e != want {
		t.Fatalf("stream ended with %s, want %s", e, want)
	}
	if len(p.data) > 0 {
		t.Fatalf("unexpected data before the end: %q", <-p.data)
	}
}

// expectFIN reads the TCP stream under the TLS connection, after the
// reading goroutine stopped at a close_notify, and checks that the next
// thing on it is EOF, within timeout when fin is true; when fin is false it
// checks that nothing, EOF included, arrives within timeout.
func (p *goPeer) expectFIN(t *testing.T, fin bool, timeout time.Duration) {
	t.Helper()
	p.raw.SetReadDeadline(time.Now().Add(timeout))
	defer p.raw.SetReadDeadline(time.Time{})
	var buf [1]byte
	n, err := p.raw.Conn.Read(buf[:])
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	switch {
	case fin && (n != 0 || err != io.EOF):
		t.Fatalf("after close_notify: read %d bytes, error %v; want EOF", n, err)
	case !fin && (n != 0 || !timedOut):
		t.Fatalf("after close_notify: read %d bytes, error %v; want nothing for %v", n, err, timeout)
	}
}

// closeTCP closes the TCP connection without sending close_notify.
func (p *goPeer) closeTCP(t *testing.T) {
	t.Helper()
	if err := p.raw.Conn.Close(); err != nil {
		t.Fatal(err)
	}
}

// reset closes the TCP connection with SO_LINGER 0: the peer gets RST.
func (p *goPeer) reset(t *testing.T) {
	t.Helper()
	if err := p.raw.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	p.closeTCP(t)
}

func (p *goPeer) write(t *testing.T, s string) {
	t.Helper()
	p.tls.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(p.tls, s); err != nil {
		t.Fatal(err)
	}
}

// closeWrite sends close_notify and keeps the connection open for reading.
func (p *goPeer) closeWrite(t *testing.T) {
	t.Helper()
	if err := p.tls.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// send types s on p's standard input.
func send(t *testing.T, p *peer.Process, s string) {
	t.Helper()
	if err := p.Send(s); err != nil {
		t.Fatal(err)
	}
}

func closeStdin(t *testing.T, p *peer.Process) {
	t.Helper()
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
}

// expectExit waits for p to exit and checks the exit code.
func expectExit(t *testing.T, p *peer.Process, want int) {
	t.Helper()
	code, err := p.Wait(wait)
	if err != nil || code != want {
		t.Fatalf("exit code %d, error %v; want %d", code, err, want)
	}
}

// inOrder checks that s contains each of substrs, in order.
func inOrder(t *testing.T, s string, substrs ...string) {
	t.Helper()
	at := 0
	for _, sub := range substrs {
		i := strings.Index(s[at:], sub)
		if i < 0 {
			t.Fatalf("output lacks %q after offset %d; want in order %q; output:\n%s", sub, at, substrs, s)
		}
		at += i + len(sub)
	}
}

// absent checks that s contains none of substrs.
func absent(t *testing.T, s string, substrs ...string) {
	t.Helper()
	for _, sub := range substrs {
		if strings.Contains(s, sub) {
			t.Fatalf("output contains %q; output:\n%s", sub, s)
		}
	}
}
