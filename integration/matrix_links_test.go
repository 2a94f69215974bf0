package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/relay"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The links of the matrix's rows that join our Conn and the peer by more
// than a TCP connection (scenario.connect):
//   - connectRelayed puts the fault-injecting relay (internal/relay) in
//     between, for what no peer does on demand: a FIN in the middle of a
//     record (6), a reset from peers that cannot reset (7), a reader that
//     stops (18, 20: the relay stalls the direction toward the peer, which
//     pauses crypto/tls too);
//   - connectFullBuffer gives the crypto/tls peer a socket that can stop
//     reading (9);
//   - connectCorked gives it a socket that sends its last data and its
//     close_notify with one write (12).

// relayedSide is a peer behind the relay: the relay stalls the direction
// toward the peer for pause, resets both connections for reset, and cuts
// the direction from the peer with FIN in the middle of a record for armCut.
type relayedSide struct {
	peerSide
	r                           *relay.Relay
	toPeer, fromPeer            relay.Direction
	stall, rst, cut             chan struct{} // closed to arm the faults
	stallOnce, rstOnce, cutOnce sync.Once
}

// Offset of the CutFIN: this many bytes into the record after the first
// complete one since the fault was armed (5 is just past the header).
const cutOffset = 10

// connectRelayed connects cell c's peer through a relay with the faults of
// relayedSide, armed later by the scenario.
func connectRelayed(t *testing.T, c cell) (*openssl.Conn, peerSide) {
	s := &relayedSide{stall: make(chan struct{}), rst: make(chan struct{}), cut: make(chan struct{})}
	// The relay's client is whoever connects to it: us when we are the
	// client.
	s.toPeer, s.fromPeer = relay.ClientToServer, relay.ServerToClient
	if c.ours == weServer {
		s.toPeer, s.fromPeer = relay.ServerToClient, relay.ClientToServer
	}
	faults := []relay.Fault{
		{Dir: s.toPeer, Action: relay.Stall, Arm: s.stall},
		{Dir: s.fromPeer, Action: relay.CutRST, Arm: s.rst},
		{Dir: s.fromPeer, AfterRecords: 1, Offset: cutOffset, Action: relay.CutFIN, Arm: s.cut},
	}
	viaRelay := func(target string) (string, error) {
		r, err := relay.New(target, faults...)
		if err != nil {
			return "", err
		}
		t.Cleanup(func() {
			r.Close()
			if err := r.Stats().Err; err != nil {
				// Passing a FIN on to a connection the other peer has
				// already closed fails with ENOTCONN: not a fault of ours.
				t.Logf("relay: %v", err)
			}
		})
		s.r = r
		return r.Addr(), nil
	}
	conn, ps := c.peer.connect(t, c, viaRelay)
	s.peerSide = ps
	return conn, s
}

func (s *relayedSide) await(what string, cond func(relay.Stats) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := s.r.Await(ctx, cond)
	if err != nil {
		return fmt.Errorf("relay: %s: %w (stats %+v)", what, err, st)
	}
	return nil
}

// pause stalls the direction toward the peer: it receives nothing more, and
// our writes back up.
func (s *relayedSide) pause() error {
	s.stallOnce.Do(func() { close(s.stall) })
	return s.await("stall", func(st relay.Stats) bool { return st.Dir[s.toPeer].Stalled })
}

func (s *relayedSide) resume() error {
	if !s.r.Resume(s.toPeer) {
		return errors.New("relay: the direction toward the peer is not stalled")
	}
	return nil
}

// reset makes the relay reset both connections once what the peer sent has
// reached us.
func (s *relayedSide) reset() error {
	s.rstOnce.Do(func() { close(s.rst) })
	return s.await("reset", func(st relay.Stats) bool { return st.Dir[s.fromPeer].Receiver == relay.RST })
}

// armCut arms the CutFIN: it fires cutOffset bytes into the second record
// the peer sends from now on.
func (s *relayedSide) armCut() { s.cutOnce.Do(func() { close(s.cut) }) }

// connectFullBuffer connects scenario 9. The crypto/tls peer gets the set-up
// of cmd/closenotify's full-buffer case, which makes the first ShutdownOnce
// -1/WANT_WRITE every time: small buffers and segments set before the
// handshake (tlstest.SmallBuffer, EthernetMSS), and a peer that can stop
// reading (stallConn) and skips the raw zero bytes we fill the pipe with.
// Process peers connect as usual.
func connectFullBuffer(t *testing.T, c cell) (*openssl.Conn, peerSide) {
	if c.peer != peerGo {
		return c.peer.connect(t, c, direct)
	}
	var s *stallConn
	p := openPair(t, c, tlstest.CryptoTLS, direct, tlstest.Spec{
		OurSndBuf: tlstest.SmallBuffer, PeerRcvBuf: tlstest.SmallBuffer, MSS: tlstest.EthernetMSS,
		WrapPeer: func(sock tlstest.Sock) net.Conn {
			s = &stallConn{TCPConn: sock.(*net.TCPConn), closed: make(chan struct{})}
			return s
		},
	})
	return p.Ours, &stalledGoSide{goSide: newGoSide(t, p), s: s}
}

// stallConn is the crypto/tls peer's socket in scenario 9: while paused it
// reads nothing, and once armed it drops the zero bytes that come before
// the next record (TLS records never start with 0), counting them.
type stallConn struct {
	*net.TCPConn
	closed    chan struct{} // closed by Close
	closeOnce sync.Once

	mu       sync.Mutex
	resumed  chan struct{} // protected by mu; nil unless paused; closed by resume
	stalled  chan struct{} // protected by mu; closed when a Read waits for resume
	skipping bool          // protected by mu
	skipped  int64         // protected by mu
}

func (s *stallConn) Read(b []byte) (int, error) {
	for {
		s.mu.Lock()
		resumed, stalled := s.resumed, s.stalled
		if resumed != nil {
			select {
			case <-stalled:
			default:
				close(stalled)
			}
		}
		s.mu.Unlock()
		if resumed != nil {
			select {
			case <-resumed:
			case <-s.closed:
				return 0, net.ErrClosed
			}
			continue
		}
		n, err := s.TCPConn.Read(b)
		s.mu.Lock()
		if s.skipping {
			i := 0
			for i < n && b[i] == 0 {
				i++
			}
			s.skipped += int64(i)
			if i < n {
				s.skipping = false
			}
			n = copy(b, b[i:n])
		}
		paused := s.resumed != nil
		s.mu.Unlock()
		if paused && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // woken by pause
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (s *stallConn) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.TCPConn.Close()
}

// pause makes the peer stop reading and returns once its reader waits.
func (s *stallConn) pause() error {
	s.mu.Lock()
	s.resumed, s.stalled = make(chan struct{}), make(chan struct{})
	stalled := s.stalled
	s.mu.Unlock()
	// Wake a Read in progress.
	if err := s.TCPConn.SetReadDeadline(time.Now()); err != nil {
		return err
	}
	select {
	case <-stalled:
		return nil
	case <-time.After(wait):
		return errors.New("the crypto/tls peer's reader did not stop")
	}
}

func (s *stallConn) resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumed == nil {
		return nil
	}
	err := s.TCPConn.SetReadDeadline(time.Time{})
	close(s.resumed)
	s.resumed = nil
	return err
}

func (s *stallConn) armSkip() {
	s.mu.Lock()
	s.skipping = true
	s.mu.Unlock()
}

func (s *stallConn) skippedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// stalledGoSide is the crypto/tls peer over a stallConn: pause and resume
// work.
type stalledGoSide struct {
	*goSide
	s *stallConn
}

func (g *stalledGoSide) pause() error { return g.s.pause() }

func (g *stalledGoSide) resume() error { return g.s.resume() }

// corkConn holds what is written to it while corked and sends it with one
// write when uncorked: the peer's last data record and its close_notify
// leave in one TCP segment.
type corkConn struct {
	*net.TCPConn
	mu     sync.Mutex
	corked bool
	held   []byte
}

func (c *corkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.TCPConn.Write(b)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what is held with one write and returns its size.
func (c *corkConn) uncork() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	held := c.held
	c.held = nil
	// crypto/tls's CloseWrite set the write deadline to now, so that its
	// own later writes fail; the transport still has to send the alert.
	if err := c.TCPConn.SetWriteDeadline(time.Time{}); err != nil {
		return 0, err
	}
	return c.TCPConn.Write(held)
}

// corkedGoSide is the crypto/tls peer over a corkConn.
type corkedGoSide struct {
	*goSide
	cc *corkConn
}

// connectCorked connects cell c's crypto/tls peer over a corkConn.
func connectCorked(t *testing.T, c cell) (*openssl.Conn, peerSide) {
	var cc *corkConn
	p := openPair(t, c, tlstest.CryptoTLS, direct, tlstest.Spec{
		WrapPeer: func(sock tlstest.Sock) net.Conn {
			cc = &corkConn{TCPConn: sock.(*net.TCPConn)}
			return cc
		},
	})
	return p.Ours, &corkedGoSide{goSide: newGoSide(t, p), cc: cc}
}
