package integration_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/relay"
)

// The cells of the matrix that no peer produces on demand, made by the
// fault-injecting relay (internal/relay) put between our Conn and the peer:
// a FIN in the middle of a record (6), a reset for peers that cannot reset
// (7), a reader that stops (18, 20: the relay stalls the direction toward
// the peer, which pauses crypto/tls too). And a close_notify in the same TCP
// segment as the last data (12), from a crypto/tls peer whose two writes
// are corked into one.
//
// The relay is put in by connectRelayed: the framework's connect functions
// dial the peer directly.

// relayedPeer is a peer of TestMatrixRelay; the names are the matrix's, so
// that the observations land in the same README rows.
type relayedPeer struct {
	name  string
	roles []role
	// start starts the peer and connects it to us through the relay made
	// by newRelay (called with the address of the server side).
	start func(t *testing.T, ours role, v version, policy openssl.ClosePolicy, newRelay func(target string) *relay.Relay) (*openssl.Conn, peerSide)
}

var relayedPeers = []relayedPeer{
	{name: "Go crypto/tls", roles: []role{weClient, weServer}, start: startGoRelayed},
	{name: "openssl s_server", roles: []role{weClient}, start: startOpenSSLRelayed},
	{name: "openssl s_client", roles: []role{weServer}, start: startOpenSSLRelayed},
}

var relayScenarios = []scenario{
	{id: 6, name: "FIN_in_the_middle_of_a_record", run: finMidRecord},
	{id: 7, name: "relay_RST_while_we_read", run: relayRST},
	{id: 18, name: "drain_send_queue_relay_stall",
		policy: openssl.ClosePolicy{DrainSendQueue: true, Timeout: wait}, run: drainSendQueueSlowReader},
	{id: 20, name: "close_while_write_blocked_relay_stall",
		policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileWriteBlocked},
}

func TestMatrixRelay(t *testing.T) {
	for _, p := range relayedPeers {
		for _, r := range p.roles {
			for _, v := range versions {
				for _, sc := range relayScenarios {
					name := fmt.Sprintf("%s/we_are_%s/%s/%02d_%s", p.name, r, v.name, sc.id, sc.name)
					t.Run(name, func(t *testing.T) {
						c, ps := connectRelayed(t, p, r, v, sc.policy)
						what := sc.run(t, nil, c, ps)
						t.Logf("observed: %s", what)
						observe(p.name, sc.id, what)
					})
				}
			}
		}
	}
	for _, r := range []role{weClient, weServer} {
		for _, v := range versions {
			t.Run(fmt.Sprintf("Go crypto/tls/we_are_%s/%s/12_close_notify_in_the_data_segment", r, v.name), func(t *testing.T) {
				what := closeNotifyInDataSegment(t, r, v)
				t.Logf("observed: %s", what)
				observe("Go crypto/tls", 12, what)
			})
		}
	}
}

// relayedSide is a peer behind the relay: the relay stalls the direction
// toward the peer for pause, resets both connections for reset, and cuts
// the direction from the peer with FIN in the middle of a record for cutMid.
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

func connectRelayed(t *testing.T, p relayedPeer, ours role, v version, policy openssl.ClosePolicy) (*openssl.Conn, *relayedSide) {
	s := &relayedSide{stall: make(chan struct{}), rst: make(chan struct{}), cut: make(chan struct{})}
	// The relay's client is whoever connects to it: us when we are the
	// client.
	s.toPeer, s.fromPeer = relay.ClientToServer, relay.ServerToClient
	if ours == weServer {
		s.toPeer, s.fromPeer = relay.ServerToClient, relay.ClientToServer
	}
	faults := []relay.Fault{
		{Dir: s.toPeer, Action: relay.Stall, Arm: s.stall},
		{Dir: s.fromPeer, Action: relay.CutRST, Arm: s.rst},
		{Dir: s.fromPeer, At: relay.AfterRecords(1), Offset: cutOffset, Action: relay.CutFIN, Arm: s.cut},
	}
	newRelay := func(target string) *relay.Relay {
		r, err := relay.New(target, faults...)
		require.NoError(t, err)
		t.Cleanup(func() {
			r.Close()
			if err := r.Stats().Err; err != nil {
				// Passing a FIN on to a connection the other peer has
				// already closed fails with ENOTCONN: not a fault of ours.
				t.Logf("relay: %v", err)
			}
		})
		s.r = r
		return r
	}
	c, ps := p.start(t, ours, v, policy, newRelay)
	s.peerSide = ps
	return c, s
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

// startGoRelayed starts a crypto/tls peer behind the relay.
func startGoRelayed(t *testing.T, ours role, v version, policy openssl.ClosePolicy, newRelay func(string) *relay.Relay) (*openssl.Conn, peerSide) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	r := newRelay(ln.Addr().String())
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(wait))
		c, _ := ln.AcceptTCP()
		accepted <- c
	}()
	raddr, err := net.ResolveTCPAddr("tcp", r.Addr())
	require.NoError(t, err)
	dialed, err := net.DialTCP("tcp", nil, raddr)
	require.NoError(t, err)
	acc := <-accepted
	require.NotNil(t, acc)
	// We dial the relay when we are the client; the peer does otherwise.
	ourTCP, peerTCP := dialed, acc
	if ours == weServer {
		ourTCP, peerTCP = acc, dialed
	}
	c, g := goPeerOn(t, ourTCP, peerTCP, peerTCP, ours, v, policy)
	return c, g
}

// goPeerOn runs a crypto/tls peer over peerConn (peerTCP is its socket)
// against our Conn on ourTCP: directly (connectGo) or through a relay.
func goPeerOn(t *testing.T, ourTCP net.Conn, peerConn net.Conn, peerTCP *net.TCPConn, ours role, v version, policy openssl.ClosePolicy) (*openssl.Conn, *goSide) {
	cfg := &tls.Config{MinVersion: v.v, MaxVersion: v.v}
	var tc *tls.Conn
	if ours == weClient {
		cfg.Certificates = []tls.Certificate{pki.TLSCert}
		tc = tls.Server(peerConn, cfg)
	} else {
		cfg.RootCAs, cfg.ServerName = pki.Pool, "localhost"
		tc = tls.Client(peerConn, cfg)
	}
	g := &goSide{tc: tc, raw: peerTCP, changed: make(chan struct{}), ended: make(chan struct{})}
	t.Cleanup(func() {
		tc.Close()
		<-g.ended
	})
	c := ourConn(t, ourTCP, ours, v, policy, tc.Handshake, nil)
	go g.readLoop()
	return c, g
}

// startOpenSSLRelayed starts s_server (we are the client) or s_client (we
// are the server) behind the relay.
func startOpenSSLRelayed(t *testing.T, ours role, v version, policy openssl.ClosePolicy, newRelay func(string) *relay.Relay) (*openssl.Conn, peerSide) {
	if ours == weClient {
		srv := sServer(t, v)
		r := newRelay(srv.Addr())
		tcp, err := net.DialTimeout("tcp", r.Addr(), wait)
		require.NoError(t, err)
		return ourConn(t, tcp, ours, v, policy, nil, srv), &processSide{t: t, p: srv, server: true}
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	r := newRelay(ln.Addr().String())
	cl := peer.OpenSSLClientT(t, r.Addr(), pki.CAFile, v.flag)
	require.NoError(t, ln.SetDeadline(time.Now().Add(wait)))
	tcp, err := ln.Accept()
	require.NoError(t, err)
	c := ourConn(t, tcp, ours, v, policy, nil, cl)
	require.NoError(t, cl.WaitFor(peer.ClientVerifyOK, wait))
	return c, &processSide{t: t, p: cl}
}

// 6: the peer sends a line, then the relay cuts the next record with FIN
// cutOffset bytes into it. Our Read returns the first line, then
// ErrTruncated (io.ErrUnexpectedEOF too); Shutdown reports the same.
// OpenSSL sends the peer a fatal decode_error alert for the cut record, and
// after the fatal error our Close sends no close_notify.
func finMidRecord(t *testing.T, _ *peerImpl, c *openssl.Conn, ps peerSide) string {
	s := ps.(*relayedSide)
	exchangeLines(t, c, ps)
	// Nothing is in flight: the fault's count starts at a record boundary.
	s.armCut()
	const first, second = "the last whole line\n", "the line the relay cuts\n"
	require.NoError(t, ps.send(first))
	// Read it before the peer sends the next one, so that the peer (s_server
	// reads its input as it comes) cannot put both into one record.
	require.Equal(t, first, readN(t, c, len(first)))
	require.NoError(t, ps.send(second))
	got, err := readErr(t, c)
	require.Equal(t, "", got)
	require.ErrorIs(t, err, openssl.ErrTruncated)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	st := s.r.Stats().Dir[s.fromPeer]
	require.Len(t, st.Fired, 1, "%+v", st)
	require.Equal(t, relay.CutFIN, st.Fired[0].Action)
	require.Equal(t, int64(cutOffset), st.Fired[0].Offset, "the cut is inside the record: %+v", st.Fired[0])
	require.Equal(t, relay.FIN, st.Receiver)
	require.ErrorIs(t, c.Shutdown(boundedCtx(t, wait)), openssl.ErrTruncated)
	require.NoError(t, c.Close())
	end := ps.end()
	if g, ok := s.peerSide.(*goSide); ok {
		// OpenSSL reports the EOF inside a record as a fatal error with
		// SSL_AD_DECODE_ERROR, and sends that alert: crypto/tls names it.
		require.ErrorContains(t, g.endErr, "error decoding message")
	}
	return "our Read gets ErrTruncated, and OpenSSL sends a fatal decode_error alert: the peer reads the end as " + string(end)
}

// 7, for every peer: the relay resets both connections while our Read
// waits. The Read returns an error wrapping ECONNRESET.
func relayRST(t *testing.T, _ *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_, err := c.Read(buf)
		readDone <- err
	}()
	require.NoError(t, ps.reset())
	err := <-readDone
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.ErrorIs(t, c.Shutdown(boundedCtx(t, wait)), syscall.ECONNRESET)
	require.NoError(t, c.Close())
	end := ps.end()
	return "a reset made by the relay: our Read gets ECONNRESET, the peer reads it as " + string(end)
}

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

// 12: a crypto/tls peer writes its last data and its close_notify with one
// write(2), so both arrive in one TCP segment (loopback, far below the
// MTU). Our Read returns the data, then exactly io.EOF.
func closeNotifyInDataSegment(t *testing.T, ours role, v version) string {
	ourTCP, peerTCP := tcpEnds(t, ours)
	cc := &corkConn{TCPConn: peerTCP}
	c, g := goPeerOn(t, ourTCP, cc, peerTCP, ours, v, openssl.ClosePolicy{})
	exchangeLines(t, c, g)

	const last = "the last line, with the close_notify behind it\n"
	cc.cork()
	require.NoError(t, g.send(last))
	require.NoError(t, g.tc.CloseWrite())
	n, err := cc.uncork()
	require.NoError(t, err)
	// One record of data and one alert record, in one write.
	require.Greater(t, n, len(last)+2*5)
	inboundAtLeast(t, c, n)
	got, err := readErr(t, c)
	require.Equal(t, last, got)
	require.Equal(t, io.EOF, err, "Read must return exactly io.EOF after the data")
	st := c.ShutdownState()
	require.True(t, !st.Sent() && st.Received(), "ShutdownState %v", st)
	require.NoError(t, c.Close())
	require.Equal(t, endEOF, g.end())
	return "data and close_notify in one segment: our Read gets the data, then io.EOF"
}
