package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"golang.org/x/sys/unix"
)

const (
	// runTimeout bounds one case in one role and version: set-up, handshake,
	// the shutdown, and joining the peer's goroutine. Every socket of the
	// run gets it as its deadline.
	runTimeout = 5 * time.Second
	// closeTimeout bounds our Conn's Close at the end of a run.
	closeTimeout = 200 * time.Millisecond
	// smallBuffer is SO_SNDBUF (ours) and SO_RCVBUF (the peer's) for the
	// full-buffer case; the kernel doubles it and applies its minimum. With
	// buffers this small the peer's window, once shut, stays shut: larger
	// ones reopen a little at the next zero-window probe (Linux collapses
	// the queued segments), which would let our alert through.
	smallBuffer = 4096
	// ethernetMSS is the segment size of the full-buffer case's connection.
	ethernetMSS = 1460
)

// versions are the TLS versions every case runs over.
var versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// roles are our Conn's roles; the crypto/tls peer takes the other one.
var roles = []string{"client", "server"}

// row is one line of the table: one case, run with our Conn in one role over
// one TLS version.
type row struct {
	Case      string
	Role      string // our Conn's role: "client" or "server"
	Version   uint16
	Steps     []string // what our side did and got, step by step
	Err       error    // the final error of our side
	State     openssl.ShutdownState
	Elapsed   time.Duration // from the first shutdown step to the final result
	Discarded int64         // Conn.DiscardedBytes after the run
	Details   []string      // for -v: full error texts, what the peer saw
	Problems  []string      // how the run differed from the case's expectation
}

// OK reports whether the run behaved as its case expects.
func (r *row) OK() bool { return len(r.Problems) == 0 }

// demo holds what every run shares: the certificate and the Ctxs.
type demo struct {
	pki       *testcert.Bundle
	serverCtx *openssl.Ctx // serves pki's leaf
	clientCtx *openssl.Ctx // trusts pki's CA, verifies the server
}

// newDemo generates a certificate and makes the Ctxs. The CA file that
// LoadVerifyLocations needs lives in a temporary directory removed before
// newDemo returns.
func newDemo() (*demo, error) {
	pki, err := testcert.New()
	if err != nil {
		return nil, err
	}
	d := &demo{pki: pki}
	if d.serverCtx, err = openssl.NewCtx(); err != nil {
		return nil, err
	}
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	if err != nil {
		return nil, err
	}
	key, err := openssl.LoadPrivateKeyFromPEM(pki.KeyPEM)
	if err != nil {
		return nil, err
	}
	if err := d.serverCtx.UseCertificate(cert); err != nil {
		return nil, err
	}
	if err := d.serverCtx.UsePrivateKey(key); err != nil {
		return nil, err
	}
	if d.clientCtx, err = openssl.NewCtx(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "closenotify-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pki.CAPEM, 0o600); err != nil {
		return nil, err
	}
	if err := d.clientCtx.LoadVerifyLocations(caFile, ""); err != nil {
		return nil, err
	}
	d.clientCtx.SetVerifyMode(openssl.VerifyPeer)
	return d, nil
}

// runDemo runs the named cases (all when names is empty) in both roles over
// both TLS versions, one after the other, and returns one row per run.
// Every goroutine it starts has ended when it returns.
func runDemo(names []string) ([]row, error) {
	selected, err := selectCases(names)
	if err != nil {
		return nil, err
	}
	d, err := newDemo()
	if err != nil {
		return nil, fmt.Errorf("setting up: %w", err)
	}
	var rows []row
	for _, c := range selected {
		for _, role := range roles {
			for _, v := range versions {
				rows = append(rows, d.run(c, role, v))
			}
		}
	}
	return rows, nil
}

func selectCases(names []string) ([]*demoCase, error) {
	if len(names) == 0 {
		return cases, nil
	}
	var out []*demoCase
	for _, n := range names {
		c := caseByName(n)
		if c == nil {
			return nil, fmt.Errorf("unknown case %q", n)
		}
		out = append(out, c)
	}
	return out, nil
}

// run is one case in one role and version: our Conn, the crypto/tls peer
// on the other end of a TCP connection, and the signals between the two
// sides.
type run struct {
	ours     *openssl.Conn
	ourRaw   *net.TCPConn // under ours
	peer     *tls.Conn
	peerRaw  *net.TCPConn // under peer
	deadline time.Time    // of every socket of the run

	// wantRead and wantWrite fire at our side's first -1/WANT_READ and
	// -1/WANT_WRITE: peers that must act only once we wait use them, so
	// that the sequence does not depend on scheduling.
	wantRead, wantWrite *signal
	// ready fires when our side has prepared what the peer waits for
	// (the full-buffer case: the filler is written); peerReady when the
	// peer has done what our preparation waits for (read the ping).
	ready, peerReady *signal
	// filled is how many filler bytes our side wrote under the TLS stream
	// (full-buffer case); set before ready fires.
	filled int64
	// done is closed when our side has finished: a peer that never answers
	// waits for it.
	done chan struct{}

	peerLog []string // what the peer saw; written by the peer goroutine only
}

// logPeer records what the peer saw, for -v.
func (r *run) logPeer(format string, args ...any) {
	r.peerLog = append(r.peerLog, fmt.Sprintf(format, args...))
}

// await waits, on the peer's side, for s (or for also, when given); it
// fails when our side finished or the run's deadline passed first.
func (r *run) await(s *signal, also ...*signal) error {
	t := time.NewTimer(time.Until(r.deadline))
	defer t.Stop()
	var alt chan struct{} // nil: never ready
	if len(also) > 0 {
		alt = also[0].ch
	}
	select {
	case <-s.ch:
		return nil
	case <-alt:
		return nil
	case <-r.done:
		return errors.New("our side finished first")
	case <-t.C:
		return errors.New("run deadline passed")
	}
}

// idle waits, on the peer's side, until our side finished or the run's
// deadline passed.
func (r *run) idle() {
	t := time.NewTimer(time.Until(r.deadline))
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
	}
}

// signal is a one-shot event.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// run runs c with our Conn in role over TLS version v. Nothing it starts
// outlives it: the peer's goroutine is joined, every socket closed.
func (d *demo) run(c *demoCase, role string, v uint16) row {
	out := row{Case: c.name, Role: role, Version: v}
	r, err := d.connect(c, role, v)
	if err != nil {
		out.Err = err
		out.Problems = []string{"set-up failed: " + err.Error()}
		return out
	}
	peerDone := make(chan error, 1)
	go func() { peerDone <- c.peer(r) }()

	ctx, cancel := context.WithDeadline(context.Background(), r.deadline)
	var prepErr error
	if c.prepare != nil {
		prepErr = c.prepare(ctx, r)
	}
	if prepErr == nil {
		start := time.Now()
		out.Steps, out.Err = c.ours(ctx, r)
		out.Elapsed = time.Since(start)
	}
	cancel()
	out.State = r.ours.ShutdownState()
	out.Discarded = r.ours.DiscardedBytes()

	close(r.done)
	r.ours.Close()
	// The peer's I/O ends with ours closed, at the latest at the deadline.
	peerErr := <-peerDone
	r.peerRaw.Close()

	out.Details = append(out.Details, "our error: "+errText(out.Err))
	for _, l := range r.peerLog {
		out.Details = append(out.Details, "peer: "+l)
	}
	if peerErr != nil {
		out.Details = append(out.Details, "peer error: "+peerErr.Error())
	}
	if prepErr != nil {
		out.Err = prepErr
		out.Problems = []string{"preparing: " + prepErr.Error()}
	} else {
		out.Problems = c.want.check(&out)
	}
	if peerErr != nil {
		out.Problems = append(out.Problems, "peer: "+peerErr.Error())
	}
	return out
}

// connect makes a TCP connection on 127.0.0.1, puts our Conn on one end
// and a crypto/tls Conn on the other, and completes both handshakes.
func (d *demo) connect(c *demoCase, role string, v uint16) (*run, error) {
	deadline := time.Now().Add(runTimeout)
	ourRaw, peerRaw, err := tcpPair(deadline, c.smallBuffers)
	if err != nil {
		return nil, err
	}
	r := &run{
		ourRaw: ourRaw, peerRaw: peerRaw, deadline: deadline,
		wantRead: newSignal(), wantWrite: newSignal(),
		ready: newSignal(), peerReady: newSignal(),
		done: make(chan struct{}),
	}
	fail := func(err error) (*run, error) {
		if r.ours != nil {
			r.ours.Close()
		}
		ourRaw.Close()
		peerRaw.Close()
		return nil, err
	}
	if c.smallBuffers {
		// Before the handshake, so that the window is small from the start.
		if err := ourRaw.SetWriteBuffer(smallBuffer); err != nil {
			return fail(err)
		}
		if err := peerRaw.SetReadBuffer(smallBuffer); err != nil {
			return fail(err)
		}
	}
	cfg := &tls.Config{MinVersion: v, MaxVersion: v}
	if role == "client" {
		r.ours, err = openssl.Client(ourRaw, d.clientCtx)
		cfg.Certificates = []tls.Certificate{d.pki.TLSCert}
		r.peer = tls.Server(peerRaw, cfg)
	} else {
		r.ours, err = openssl.Server(ourRaw, d.serverCtx)
		cfg.RootCAs, cfg.ServerName = d.pki.Pool, "localhost"
		r.peer = tls.Client(peerRaw, cfg)
	}
	if err != nil {
		return fail(err)
	}
	r.ours.SetClosePolicy(openssl.ClosePolicy{Timeout: closeTimeout})
	if err := r.ours.SetDeadline(deadline); err != nil {
		return fail(err)
	}
	if err := peerRaw.SetDeadline(deadline); err != nil {
		return fail(err)
	}
	peerHS := make(chan error, 1)
	go func() { peerHS <- r.peer.Handshake() }()
	err = r.ours.Handshake()
	if perr := <-peerHS; err == nil && perr != nil {
		err = fmt.Errorf("peer handshake: %w", perr)
	}
	if err != nil {
		return fail(err)
	}
	if got := r.ours.ConnectionState().Version; got != v {
		return fail(fmt.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(v)))
	}
	return r, nil
}

// tcpPair returns both ends of a new TCP connection on 127.0.0.1. With
// smallMSS, segments are at most ethernetMSS bytes instead of loopback's
// 64 KiB, as on a real network, so that small buffers hold several segments:
// once the receiver reads again, the sender resumes in about 150 ms rather
// than 800 ms (it waits for its zero-window probe timer either way).
func tcpPair(deadline time.Time, smallMSS bool) (dialed, accepted *net.TCPConn, err error) {
	var control func(network, address string, c syscall.RawConn) error
	if smallMSS {
		control = setMSS
	}
	lc := net.ListenConfig{Control: control}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	l := ln.(*net.TCPListener)
	defer l.Close()
	if err := l.SetDeadline(deadline); err != nil {
		return nil, nil, err
	}
	type result struct {
		c   *net.TCPConn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := l.AcceptTCP()
		acc <- result{c, err}
	}()
	d := net.Dialer{Deadline: deadline, Control: control}
	c, err := d.Dial("tcp", l.Addr().String())
	a := <-acc // the listener's deadline bounds Accept
	if err != nil || a.err != nil {
		if c != nil {
			c.Close()
		}
		if a.c != nil {
			a.c.Close()
		}
		return nil, nil, errors.Join(err, a.err)
	}
	return c.(*net.TCPConn), a.c, nil
}

// setMSS sets TCP_MAXSEG before connect or listen (accepted sockets inherit
// it).
func setMSS(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, ethernetMSS)
	})
	return errors.Join(err, serr)
}
