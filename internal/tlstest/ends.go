package tlstest

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl"
)

// ErrClosedFirst is how an [EndConn] that its own side closed before its
// reading ended ends.
var ErrClosedFirst = errors.New("tlstest: closed by this side first")

// EndConn records how a TLS connection ended, seen from the side that reads
// it: the first error of Read, or [ErrClosedFirst] when Close came first.
// A *tls.Conn's Read returns exactly io.EOF only after the peer's
// close_notify, and io.ErrUnexpectedEOF after a TCP FIN without it.
type EndConn struct {
	net.Conn
	once      sync.Once
	ended     chan struct{}
	err       error // set before ended is closed
	closeOnce sync.Once
	closed    chan struct{} // closed once a Close has returned
}

func (c *EndConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.end(err)
	}
	return n, err
}

func (c *EndConn) Close() error {
	c.end(ErrClosedFirst)
	err := c.Conn.Close()
	c.closeOnce.Do(func() { close(c.closed) })
	return err
}

func (c *EndConn) end(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.ended)
	})
}

// Ends records the EndConns of a client or server; it is safe for
// concurrent use.
type Ends struct {
	mu    sync.Mutex
	conns []*EndConn // protected by mu
}

// Add returns c wrapped in a recorded EndConn.
func (e *Ends) Add(c net.Conn) *EndConn {
	ec := &EndConn{Conn: c, ended: make(chan struct{}), closed: make(chan struct{})}
	e.mu.Lock()
	e.conns = append(e.conns, ec)
	e.mu.Unlock()
	return ec
}

// RequireCloseNotify waits at most [Timeout] until every connection ended
// and requires that each read its peer's close_notify (exactly io.EOF) or
// was closed by this side first: a client that closes on an HTTP/2 GOAWAY
// or a "Connection: close" answer may win the race to close. It returns
// how many read the peer's close_notify.
func (e *Ends) RequireCloseNotify(tb testing.TB) (closeNotify int) {
	tb.Helper()
	e.mu.Lock()
	conns := append([]*EndConn(nil), e.conns...)
	e.mu.Unlock()
	if len(conns) == 0 {
		tb.Fatal("no connection recorded")
	}
	timeout := time.After(Timeout)
	for i, c := range conns {
		select {
		case <-c.ended:
		case <-timeout:
			tb.Fatalf("connection %d of %d: neither ended nor closed within %v", i, len(conns), Timeout)
		}
		switch {
		case c.err == io.EOF:
			closeNotify++
		case c.err == ErrClosedFirst:
		default:
			tb.Errorf("connection %d of %d ended with %v, want io.EOF (close_notify)", i, len(conns), c.err)
		}
	}
	return closeNotify
}

// RequireCloseNotifySent waits, within Timeout, until every connection
// (each an *openssl.Conn) was closed, then requires that each sent its
// close_notify, and with received
// that it read the peer's too. It skips, and counts, the connections the
// peer ended first without close_notify, where OpenSSL sends no alert
// after the failed read:
//   - a reset: a peer that closes with our data unread makes its TCP send
//     RST, which may come before our alert is out;
//   - a TCP close without close_notify (ErrTruncated): crypto/tls's Close
//     sends none while a Write is in flight, as net/http's HTTP/2 client
//     may have one when it closes on GOAWAY.
func (e *Ends) RequireCloseNotifySent(tb testing.TB, received bool) (peerEnded int) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.conns) == 0 {
		tb.Fatal("no connection recorded")
	}
	deadline := time.After(Timeout)
	for i, c := range e.conns {
		// The server may close a connection after the call the test
		// waited for returned (gRPC's GracefulStop, net/http's
		// Shutdown): its close_notify is in once Close has returned.
		select {
		case <-c.closed:
		case <-deadline:
			tb.Fatalf("connection %d of %d was not closed within %v", i, len(e.conns), Timeout)
		}
		if errors.Is(c.err, syscall.ECONNRESET) || errors.Is(c.err, openssl.ErrTruncated) {
			peerEnded++
			continue
		}
		st := c.Conn.(*openssl.Conn).ShutdownState()
		if !st.Sent() || received && !st.Received() {
			tb.Errorf("connection %d of %d (reading ended with %v): close_notify %v, want sent=true received=%t", i, len(e.conns), c.err, st, received)
		}
	}
	return peerEnded
}
