package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

const (
	// runTimeout bounds one case in one role and version: set-up, handshake,
	// the shutdown, and joining the peer's goroutine. Every socket of the
	// run gets it as its deadline.
	runTimeout = 5 * time.Second
	// closeTimeout bounds our Conn's Close at the end of a run.
	closeTimeout = 200 * time.Millisecond
)

// run is one case in one role and version: our Conn and the crypto/tls
// peer (tlstest.Pair), and the signals between the two sides.
type run struct {
	*tlstest.Pair
	deadline time.Time // of every socket of the run

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

// waitSignal waits, on our side, for s or the end of ctx.
func waitSignal(ctx context.Context, s *signal) error {
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCase runs c with our Conn in spec's role and version. Nothing it
// starts outlives it: the peer's goroutine is joined, every socket closed.
func runCase(c *demoCase, spec tlstest.Case) row {
	out := row{Case: c, Spec: spec}
	r, err := connect(c, spec)
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
	out.State = tlstest.StateName(r.Ours.ShutdownState())
	out.Discarded = r.Ours.DiscardedBytes()

	close(r.done)
	r.Ours.Close()
	// The peer's I/O ends with ours closed, at the latest at the deadline.
	peerErr := <-peerDone
	r.Close()

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
func connect(c *demoCase, spec tlstest.Case) (*run, error) {
	deadline := time.Now().Add(runTimeout)
	s := tlstest.Spec{
		Case:     spec,
		Policy:   &openssl.ClosePolicy{Timeout: closeTimeout},
		Deadline: deadline, // the peer's socket
	}
	if c.smallBuffers {
		// Set before the handshake, so that the window is small from the
		// start.
		s.OurSndBuf, s.PeerRcvBuf, s.MSS = tlstest.SmallBuffer, tlstest.SmallBuffer, tlstest.EthernetMSS
	}
	p, err := tlstest.Open(s)
	if err != nil {
		return nil, err
	}
	if err := p.Ours.SetDeadline(deadline); err != nil {
		p.Close()
		return nil, err
	}
	ourErr, peerErr := p.Handshake()
	if ourErr == nil && peerErr != nil {
		ourErr = fmt.Errorf("peer handshake: %w", peerErr)
	}
	if got := p.Ours.ConnectionState().Version; ourErr == nil && got != spec.Version {
		ourErr = fmt.Errorf("negotiated %#x, want %#x", got, spec.Version)
	}
	if ourErr != nil {
		p.Close()
		return nil, ourErr
	}
	return &run{
		Pair: p, deadline: deadline,
		wantRead: newSignal(), wantWrite: newSignal(),
		ready: newSignal(), peerReady: newSignal(),
		done: make(chan struct{}),
	}, nil
}

// errText is the full error, for -v.
func errText(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
