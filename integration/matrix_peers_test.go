package integration_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// peerEnd is how the peer's reading ended, as the peer itself reported it.
type peerEnd string

const (
	endCloseNotify peerEnd = "close_notify"   // it saw our close_notify
	endTruncated   peerEnd = "truncation"     // it saw TCP EOF without close_notify and said so
	endEOF         peerEnd = "EOF"            // it saw an end it does not tell apart from close_notify
	endReset       peerEnd = "reset"          // it saw RST
	endOpen        peerEnd = "still open"     // its reading had not ended
	endUnknown     peerEnd = "not observable" // the peer does not say
)

// errUnsupported is returned by a peerSide that cannot do what was asked.
var errUnsupported = errors.New("not supported by this peer")

// peerSide is the far end of one cell: a TLS implementation playing the
// role opposite ours, already past its handshake.
type peerSide interface {
	// send makes the peer send data (a line ending in "\n") to us.
	send(data string) error
	// received waits until the peer has received exactly want from us,
	// counting from the start of the connection.
	received(want string) error
	// answer makes the peer answer our close_notify with its own, as a
	// well-behaved application does, and says how it did (peers that answer
	// by themselves do nothing here).
	answer() (how string, err error)
	// closeNotify makes the peer send its close_notify first; it may or may
	// not close TCP after it (halfCloseScenario says which).
	closeNotify() error
	// closeTCP makes the peer close TCP without close_notify (FIN).
	closeTCP() error
	// reset makes the peer reset TCP (RST).
	reset() error
	// pause makes the peer stop reading and answering; resume undoes it.
	pause() error
	resume() error
	// end waits until the peer's reading ended and says how.
	end() peerEnd
}

// The peers of the matrix, the columns of the README's table. GnuTLS and
// Python ssl have files of their own.
var (
	peerGo      = &peerImpl{name: "Go crypto/tls", roles: []role{weClient, weServer}, connect: connectGo}
	peerSServer = &peerImpl{name: "openssl s_server", roles: []role{weClient}, connect: connectOpenSSL}
	peerSClient = &peerImpl{name: "openssl s_client", roles: []role{weServer}, connect: connectOpenSSL}
)

// peerSocketDeadline bounds the crypto/tls peer's socket: longer than any
// cell takes.
const peerSocketDeadline = 6 * wait

// openPair makes cell c's pair with a peer of kind k (tlstest.NewPair:
// closed at cleanup), the client dialing the server through via, and
// completes both handshakes. spec may set what is particular to the cell;
// its Case, Peer, Policy and Via come from c, k and via.
func openPair(t *testing.T, c cell, k tlstest.PeerKind, via route, spec tlstest.Spec) *tlstest.Pair {
	t.Helper()
	spec.Case = tlstest.Case{Version: c.v.v, Role: tlstest.WeClient}
	if c.ours == weServer {
		spec.Role = tlstest.WeServer
	}
	spec.Peer, spec.PKI, spec.Policy, spec.Via = k, pki, &c.policy, via
	if k == tlstest.CryptoTLS && spec.Deadline.IsZero() {
		spec.Deadline = time.Now().Add(peerSocketDeadline)
	}
	p := tlstest.NewPair(t, spec)
	handshake(t, p, c)
	return p
}

// handshake completes our handshake concurrently with a crypto/tls peer's
// (a process peer's runs by itself). For the cells of scenario 11
// (c.midHandshake), it first checks the shutdown calls before and during
// our handshake.
func handshake(t *testing.T, p *tlstest.Pair, c cell) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var ours chan error
	if c.midHandshake {
		ours = shutdownMidHandshake(t, p.Ours, ctx, p.Proc)
	}
	peerDone := make(chan error, 1)
	go func() {
		if p.Peer == nil {
			peerDone <- nil
			return
		}
		peerDone <- p.Peer.Handshake() // bounded by the socket's deadline
	}()
	if ours == nil {
		require.NoError(t, p.Ours.HandshakeContext(ctx))
	} else {
		require.NoError(t, <-ours)
	}
	require.NoError(t, <-peerDone, "peer handshake")
}

func connectGo(t *testing.T, c cell, via route) (*openssl.Conn, peerSide) {
	p := openPair(t, c, tlstest.CryptoTLS, via, tlstest.Spec{})
	return p.Ours, newGoSide(t, p)
}

// newGoSide starts the crypto/tls peer of p reading; it stops at cleanup.
func newGoSide(t *testing.T, p *tlstest.Pair) *goSide {
	g := &goSide{tc: p.Peer, raw: p.PeerTCP(), changed: make(chan struct{}), ended: make(chan struct{})}
	go g.readLoop()
	t.Cleanup(func() {
		g.tc.Close()
		<-g.ended
	})
	return g
}

// goSide is a crypto/tls peer in this process. A goroutine reads all the
// time, so the peer always takes our data (TLS 1.3 session tickets
// included), and remembers how its reading ended.
type goSide struct {
	tc  *tls.Conn
	raw *net.TCPConn

	mu      sync.Mutex
	got     []byte        // protected by mu
	changed chan struct{} // protected by mu; closed and replaced when got grows
	ended   chan struct{} // closed when the reader stopped
	endErr  error         // set before ended is closed
}

func (g *goSide) readLoop() {
	defer close(g.ended)
	buf := make([]byte, 32<<10)
	for {
		n, err := g.tc.Read(buf)
		g.mu.Lock()
		if n > 0 {
			g.got = append(g.got, buf[:n]...)
			close(g.changed)
			g.changed = make(chan struct{})
		}
		g.mu.Unlock()
		if err != nil {
			g.endErr = err
			return
		}
	}
}

func (g *goSide) send(data string) error {
	g.tc.SetWriteDeadline(time.Now().Add(wait))
	_, err := g.tc.Write([]byte(data))
	return err
}

func (g *goSide) received(want string) error {
	timeout := time.After(wait)
	for {
		g.mu.Lock()
		got, changed := string(g.got), g.changed
		g.mu.Unlock()
		if len(got) >= len(want) {
			if got[:len(want)] != want {
				return errors.New("peer received " + quoteShort(got) + ", want " + quoteShort(want))
			}
			return nil
		}
		select {
		case <-changed:
		case <-g.ended:
			g.mu.Lock()
			got = string(g.got)
			g.mu.Unlock()
			if got != want {
				return errors.New("peer's reading ended (" + errString(g.endErr) + ") after " + quoteShort(got))
			}
			return nil
		case <-timeout:
			return errors.New("peer received only " + quoteShort(got))
		}
	}
}

// answer waits for our close_notify (crypto/tls: io.EOF) and closes, which
// sends crypto/tls's close_notify: crypto/tls never answers by itself.
func (g *goSide) answer() (string, error) {
	select {
	case <-g.ended:
	case <-time.After(wait):
		return "", errors.New("crypto/tls peer saw no close_notify")
	}
	if g.endErr != io.EOF {
		return "", errors.New("crypto/tls peer's reading ended with " + errString(g.endErr))
	}
	return "answers only when the application calls Close", g.tc.Close()
}

func (g *goSide) closeNotify() error { return g.tc.CloseWrite() }

func (g *goSide) closeTCP() error { return g.raw.Close() }

func (g *goSide) reset() error {
	if err := g.raw.SetLinger(0); err != nil {
		return err
	}
	return g.raw.Close()
}

// pause and resume: a crypto/tls peer never answers unless told to.
func (g *goSide) pause() error { return nil }

func (g *goSide) resume() error { return nil }

func (g *goSide) end() peerEnd {
	select {
	case <-g.ended:
	case <-time.After(wait):
		return endOpen
	}
	switch {
	case g.endErr == io.EOF:
		return endEOF // close_notify, or TCP EOF at a record boundary
	case errors.Is(g.endErr, io.ErrUnexpectedEOF):
		return endTruncated
	case errors.Is(g.endErr, syscall.ECONNRESET):
		return endReset
	}
	return endUnknown
}

// processSide is openssl s_server or s_client (or another command-line
// peer driven the same way).
type processSide struct {
	p      *peer.Process
	server bool // the process is the server
}

// connectOpenSSL starts s_server (we are the client) or s_client (we are
// the server) for cell c.
func connectOpenSSL(t *testing.T, c cell, via route) (*openssl.Conn, peerSide) {
	p := openPair(t, c, tlstest.OpenSSLTool, via, tlstest.Spec{})
	if c.ours == weServer {
		require.NoError(t, p.Proc.WaitFor(peer.ClientVerifyOK, wait))
	}
	return p.Ours, &processSide{p: p.Proc, server: c.ours == weClient}
}

func (s *processSide) send(data string) error { return s.p.Send(data) }

func (s *processSide) received(want string) error { return s.p.WaitFor(want, wait) }

// answer: s_server and s_client answer close_notify by themselves.
func (s *processSide) answer() (string, error) { return "answers by itself", nil }

// closeNotify: s_client sends close_notify on Q and exits; s_server has no
// command for it (its Q and q close TCP without close_notify).
func (s *processSide) closeNotify() error {
	if s.server {
		return errUnsupported
	}
	return s.p.Send(peer.ClientCmdQuit)
}

// closeTCP: s_server's Q closes TCP without close_notify; s_client has no
// such command, so it is killed, and its kernel sends FIN.
func (s *processSide) closeTCP() error {
	if s.server {
		return s.p.Send(peer.ServerCmdQuit)
	}
	s.p.Kill()
	return nil
}

func (s *processSide) reset() error { return errUnsupported }

func (s *processSide) pause() error { return pauseProcess(s.p) }

func (s *processSide) resume() error { return resumeProcess(s.p) }

// end waits for the process to exit (s_server -naccept 1 and s_client exit
// when their connection ends) and reads how from its output.
func (s *processSide) end() peerEnd {
	if _, err := s.p.Wait(wait); err != nil {
		return endOpen
	}
	out := s.p.Output()
	switch {
	case strings.Contains(out, peer.UnexpectedEOF):
		return endTruncated
	case strings.Contains(out, peer.ServerCloseNotifyReceived), strings.Contains(out, peer.ClientClosed):
		return endCloseNotify
	case strings.Contains(out, peer.ClientReadErrno+"104"), s.server && strings.Contains(out, peer.ServerError):
		return endReset
	}
	return endUnknown
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + s + `"`
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// pauseProcess stops p's process group with SIGSTOP and returns once the
// program is stopped (or gone), so that from then on it takes nothing more
// from the connection: SIGSTOP alone is delivered asynchronously. waitid
// with WNOWAIT watches the stop without reaping anything.
func pauseProcess(p *peer.Process) error {
	if err := syscall.Kill(-p.Pid(), syscall.SIGSTOP); err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() {
		var info unix.Siginfo
		var err error
		for range 100 {
			err = unix.Waitid(unix.P_PID, p.Pid(), &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		if err == unix.ECHILD {
			err = nil // exited and already reaped
		}
		stopped <- err
	}()
	// The goroutine returns at the latest when the program is killed at
	// cleanup.
	select {
	case err := <-stopped:
		return err
	case <-time.After(wait):
		return fmt.Errorf("%s did not stop within %v", p.Name(), wait)
	}
}

// resumeProcess undoes pauseProcess.
func resumeProcess(p *peer.Process) error { return syscall.Kill(-p.Pid(), syscall.SIGCONT) }
