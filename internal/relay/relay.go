// Package relay is a fault-injecting TCP relay for the shutdown matrix. It
// sits between two TLS peers on 127.0.0.1, follows the TLS record framing of
// each direction (the 5-byte header: content type, version, length) and
// produces what a well-behaved peer never does: a FIN in the middle of a
// record, a reset at a chosen moment, a receiver that stops reading.
//
// A Relay accepts one connection on Addr (the "client") and then dials its
// target (the "server"). Each Direction is handled on its own: the relay reads
// the sender, and writes to the receiver what it read as soon as it has the
// whole 5-byte header of the record the bytes belong to, except where a Fault
// says otherwise. A Fault fires at one byte position of its direction, chosen
// by a record count and an Offset and counted from the moment the fault is
// armed.
//
// Without faults the relay is transparent: a FIN from one peer is passed on
// as a FIN (shutdown(SHUT_WR)) once everything before it was forwarded, and a
// reset from either peer is passed on as a reset to the other.
//
// Stats reports what the relay read, forwarded and dropped in each direction,
// which faults fired and where, and the FIN and RST each side sent and was
// sent, as the relay saw them. Close stops everything and waits for every
// goroutine the relay started.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Direction is one direction of the relayed connection.
type Direction int

const (
	// ClientToServer carries what the peer that connected to Addr sends to the
	// target.
	ClientToServer Direction = iota
	// ServerToClient carries what the target sends to the peer that connected
	// to Addr.
	ServerToClient
)

// String returns "client->server" or "server->client".
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client->server"
	case ServerToClient:
		return "server->client"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Action is what a Fault does when it fires.
type Action int

const (
	// CutFIN forwards every byte before the fault's position, then half-closes
	// the connection to the receiver (shutdown(SHUT_WR)): the receiver reads
	// those bytes, then EOF. The relay goes on reading the sender and drops
	// what it reads (Dropped), so the sender never blocks; no later fault of
	// the direction fires, and a later FIN or RST from the sender is recorded
	// in Sender but not passed on. The other direction is untouched.
	CutFIN Action = iota + 1
	// CutRST forwards every byte before the fault's position, waits (at most
	// 2 s) until the receiver's TCP has acknowledged them, then closes both
	// connections with SO_LINGER 0: each peer is sent a RST, and its next
	// read fails with ECONNRESET once it has read what was forwarded. The
	// relay stops; Stats shows RST as Receiver of both directions.
	CutRST
	// Stall stops the direction at the fault's position: nothing more is
	// forwarded, and the sender is no longer read, so TCP backpressure builds
	// up to the sender's Write. The relay holds at most one read (32 KiB)
	// beyond the position. Resume lets the direction go on; Close ends it.
	Stall
)

// String returns the action's name, such as "CutFIN".
func (a Action) String() string {
	switch a {
	case CutFIN:
		return "CutFIN"
	case CutRST:
		return "CutRST"
	case Stall:
		return "Stall"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Fault is one misbehaviour, in one direction, at one position. Each fault
// fires at most once.
type Fault struct {
	// Dir is the direction the fault acts on.
	Dir Direction
	// AfterRecords chooses the position: the record boundary just after the
	// AfterRecords-th complete record that started at or after the arming
	// point. The fault fires as soon as the relay has consumed that record,
	// without waiting for more bytes; 0 is the arming point itself.
	AfterRecords int
	// Offset moves the position Offset bytes further into the stream: a
	// position inside the next record (5 is just after its header). It must
	// not be negative.
	Offset int64
	// Action is what happens at the position.
	Action Action
	// Arm, when not nil, keeps the fault inactive until Arm is closed.
	// The fault's position is then counted from the point the direction had
	// reached when the relay saw Arm closed: close Arm while nothing is in
	// flight in that direction (after a round trip, for instance) to make
	// that point exact. The relay notices Arm also while it waits for input,
	// so a fault at the arming point fires at once.
	Arm <-chan struct{}
}

func (f Fault) validate() error {
	switch {
	case f.Dir != ClientToServer && f.Dir != ServerToClient:
		return fmt.Errorf("unknown direction %v", f.Dir)
	case f.Action < CutFIN || f.Action > Stall:
		return fmt.Errorf("unknown action %v", f.Action)
	case f.AfterRecords < 0:
		return fmt.Errorf("negative record count %d", f.AfterRecords)
	case f.Offset < 0:
		return fmt.Errorf("negative offset %d", f.Offset)
	}
	return nil
}

// End is how one side's byte stream ended, as the relay saw or made it.
type End int

const (
	// Open: no end seen or made (yet).
	Open End = iota
	// FIN: an orderly end: EOF read from the sender, or shutdown(SHUT_WR) to
	// the receiver.
	FIN
	// RST: a reset: ECONNRESET read from the sender, or an abortive close
	// (SO_LINGER 0) of the connection to the receiver.
	RST
)

// String returns "open", "FIN" or "RST".
func (e End) String() string {
	switch e {
	case Open:
		return "open"
	case FIN:
		return "FIN"
	case RST:
		return "RST"
	}
	return fmt.Sprintf("End(%d)", int(e))
}

// Firing records one fault that fired.
type Firing struct {
	// Fault is the fault's index in the list given to New.
	Fault int
	// Action is the fault's action.
	Action Action
	// Pos is the position: how many bytes of the direction the relay had
	// consumed (forwarded or dropped) when the fault fired.
	Pos int64
	// Record is the index, from 0 at the start of the direction, of the
	// record Pos falls in, or of the next record when Pos is a record
	// boundary; Offset is Pos minus that record's start.
	Record int
	Offset int64
}

// DirStats describes one direction.
type DirStats struct {
	// Read is how many bytes the relay read from the sender.
	Read int64
	// Forwarded is how many bytes the relay wrote to the receiver.
	Forwarded int64
	// Dropped is how many bytes read the relay threw away after CutFIN.
	// Read minus Forwarded minus Dropped bytes are still held by the relay
	// (Stall, or the connection ended).
	Dropped int64
	// Records is how many complete records the relay forwarded whole.
	Records int
	// Fired lists the faults that fired, in order.
	Fired []Firing
	// Stalled is true while a Stall holds the direction.
	Stalled bool
	// Sender is how the sender's stream ended, as the relay read it: FIN for
	// EOF, RST for ECONNRESET, Open when not seen (the relay stopped reading,
	// or nothing ended yet).
	Sender End
	// Receiver is what the relay did to the receiver's stream after
	// Forwarded bytes: FIN (CutFIN, or the sender's FIN passed on), RST
	// (CutRST, or a reset passed on), or Open. Close is not counted: it
	// closes both connections the ordinary way.
	Receiver End
	// ReceiverReset is true when a write to the receiver failed because the
	// receiver had reset the connection (ECONNRESET or EPIPE).
	ReceiverReset bool
}

// Stats is a snapshot of the relay. Every count is updated before the write,
// shutdown or close that makes it visible to a peer, so once a peer has seen
// an event (read a byte, EOF, a reset), Stats already includes it.
type Stats struct {
	// Connected is true once a client was accepted and the target dialed.
	Connected bool
	// Dir is indexed by Direction.
	Dir [2]DirStats
	// Err is the first error that was neither a peer's FIN or reset nor
	// caused by Close: a failed Accept, a failed dial of the target (the
	// client's connection is then reset), an unexpected I/O error (both
	// connections are then reset).
	Err error
}

const (
	// readSize is the relay's read buffer, per direction.
	readSize = 32 << 10
	// drainTimeout bounds CutRST's wait for the receiver's acknowledgements.
	drainTimeout = 2 * time.Second
	// dialTimeout bounds the dial of the target.
	dialTimeout = 10 * time.Second
)

// Relay relays one TCP connection and injects faults into it. Its methods are
// safe for concurrent use.
type Relay struct {
	target string
	ln     net.Listener    // constant
	ctx    context.Context // done on Close or on a reset of both connections; constant
	cancel context.CancelFunc
	pumps  [2]*pump // indexed by Direction; constant
	wg     sync.WaitGroup

	mu    sync.Mutex     // guards the fields below
	conns []*net.TCPConn // client, server; set once connected
	stats Stats
	// changed is closed and replaced at every change of stats (Await).
	changed chan struct{}
}

// New checks faults, listens on 127.0.0.1:0 and returns the relay. In the
// background it accepts one connection (and then stops listening), dials
// target ("host:port") and relays between the two, applying faults. A fault
// that makes no sense (unknown direction or action, a negative count or
// offset) is an error, and so is a failure to listen; nothing is left
// running then.
func New(target string, faults ...Fault) (*Relay, error) {
	if target == "" {
		return nil, errors.New("relay: empty target address")
	}
	for i, f := range faults {
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("relay: fault %d: %w", i, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{target: target, ln: ln, ctx: ctx, cancel: cancel, changed: make(chan struct{})}
	for d := range r.pumps {
		r.pumps[d] = newPump(r, Direction(d))
	}
	for i, f := range faults {
		p := r.pumps[f.Dir]
		p.faults = append(p.faults, &faultState{Fault: f, index: i})
		if f.Arm != nil {
			r.wg.Add(1)
			go r.watchArm(f.Arm, p.wake)
		}
	}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr returns the address the relay listens on, "127.0.0.1:port".
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stats returns a snapshot of the relay's counters; see Stats for when they
// change.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

// Await waits until cond, called with a fresh snapshot after every change of
// the stats, returns true, and returns that snapshot. When ctx ends first it
// returns the last snapshot and ctx's error. cond must not call the relay's
// methods.
func (r *Relay) Await(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	for {
		r.mu.Lock()
		s, changed := r.snapshotLocked(), r.changed
		r.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

func (r *Relay) snapshotLocked() Stats {
	s := r.stats
	for d := range s.Dir {
		s.Dir[d].Fired = append([]Firing(nil), s.Dir[d].Fired...)
	}
	return s
}

// changedLocked wakes the goroutines in Await.
func (r *Relay) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Resume lets a direction held by Stall go on: the relay forwards what it
// holds and reads the sender again. It returns false, and does nothing, when
// the direction is not stalled.
func (r *Relay) Resume(d Direction) bool {
	if d != ClientToServer && d != ServerToClient {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stats.Dir[d].Stalled {
		return false
	}
	r.stats.Dir[d].Stalled = false
	r.changedLocked()
	r.pumps[d].resume <- struct{}{} // never blocks: one token per stall
	return true
}

// Close stops the relay: it stops listening, cancels a dial in progress,
// ends every Stall, closes both connections (an ordinary
// close: the kernel sends FIN, or RST where unread input remains), and waits
// until every goroutine of the relay has returned. It always returns nil;
// later calls do nothing more.
func (r *Relay) Close() error {
	r.mu.Lock()
	conns := r.conns
	r.cancel()
	r.mu.Unlock()
	r.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	r.wg.Wait()
	return nil
}

// watchArm wakes the pump when arm is closed, so that a fault armed while the
// direction is idle fires without waiting for input.
func (r *Relay) watchArm(arm <-chan struct{}, wake chan struct{}) {
	defer r.wg.Done()
	select {
	case <-arm:
		select {
		case wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	case <-r.ctx.Done():
	}
}

// accept accepts the client, dials the target and starts the pumps.
func (r *Relay) accept() {
	defer r.wg.Done()
	c, err := r.ln.Accept()
	r.ln.Close() // one connection per relay
	if err != nil {
		r.setErr(fmt.Errorf("relay: accept: %w", err))
		return
	}
	client := c.(*net.TCPConn)
	d := net.Dialer{Timeout: dialTimeout}
	s, err := d.DialContext(r.ctx, "tcp", r.target)
	if err != nil {
		if r.stopping() { // Close cancelled the dial: close the ordinary way
			client.Close()
			return
		}
		r.setErr(fmt.Errorf("relay: dial %s: %w", r.target, err))
		r.update(ServerToClient, func(s *DirStats) { s.Receiver = RST })
		client.SetLinger(0)
		client.Close()
		return
	}
	server := s.(*net.TCPConn)

	r.mu.Lock()
	if r.ctx.Err() != nil { // Close came first
		r.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	r.conns = []*net.TCPConn{client, server}
	r.stats.Connected = true
	r.changedLocked()
	r.wg.Add(4)
	r.mu.Unlock()
	r.pumps[ClientToServer].start(client, server)
	r.pumps[ServerToClient].start(server, client)
}

// abort resets both connections (SO_LINGER 0, close) and stops the relay's
// goroutines, unless Close or another abort came first.
func (r *Relay) abort() {
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return
	}
	for d := range r.stats.Dir {
		r.stats.Dir[d].Receiver = RST
	}
	r.changedLocked()
	conns := r.conns
	r.cancel()
	r.mu.Unlock()
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
}

// stopping reports whether Close or abort has begun: errors from then on are
// the relay's own doing.
func (r *Relay) stopping() bool { return r.ctx.Err() != nil }

// update changes direction d's stats under the lock.
func (r *Relay) update(d Direction, f func(*DirStats)) {
	r.mu.Lock()
	f(&r.stats.Dir[d])
	r.changedLocked()
	r.mu.Unlock()
}

// setErr records err unless an error is already recorded or the relay is
// stopping.
func (r *Relay) setErr(err error) {
	r.mu.Lock()
	if r.stats.Err == nil && r.ctx.Err() == nil {
		r.stats.Err = err
		r.changedLocked()
	}
	r.mu.Unlock()
}
