package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// headerLen is the size of a TLS record header: type (1), version (2),
// length (2).
const headerLen = 5

// faultState is a Fault and where it stands. Owned by its pump's processor.
type faultState struct {
	Fault
	index    int   // in New's list
	armed    bool  // Arm was nil or is closed, and the pump noticed
	firstRec int   // index of the first record starting at or after the arming point
	resolved bool  // firePos is known
	firePos  int64 // position where the fault fires
	fired    bool
}

// resolve fixes the fault's position: at, moved by Offset.
func (f *faultState) resolve(at int64) {
	f.resolved = true
	f.firePos = at + f.Offset
}

// step is what one step of a pump achieved.
type step int

const (
	progress  step = iota // something changed; go on
	needInput             // nothing can be done before more input or the end of input
	stop                  // the pump must return
)

type readResult struct {
	n   int
	err error
}

// pump moves one direction: a reader goroutine reads the sender on request,
// and the processor goroutine (run) parses records, fires faults and writes
// to the receiver. Only the processor touches the fields below src and dst.
type pump struct {
	r      *Relay
	d      Direction
	faults []*faultState // this direction's, in New's order; set by New, then the processor's
	wake   chan struct{} // cap 1: an Arm of this direction was closed
	resume chan struct{} // cap 1: Resume's token

	src, dst *net.TCPConn // set by start, then constant

	pending  []byte // read, not yet consumed
	pos      int64  // bytes consumed: forwarded or dropped
	ended    bool   // the reader reported rerr; no more input
	rerr     error
	inRec    bool  // a record's header is parsed and pos < recEnd
	recStart int64 // the current (or last) record's first byte
	recEnd   int64 // and the position after its last byte
	recIdx   int   // how many record headers were parsed
	discard  bool  // after CutFIN: drop everything
	stalled  bool
}

func newPump(r *Relay, d Direction) *pump {
	return &pump{
		r:      r,
		d:      d,
		wake:   make(chan struct{}, 1),
		resume: make(chan struct{}, 1),
	}
}

// start runs the reader and the processor; the caller added both to r.wg.
func (p *pump) start(src, dst *net.TCPConn) {
	p.src, p.dst = src, dst
	reqs := make(chan []byte, 1)
	res := make(chan readResult, 1)
	go p.read(reqs, res)
	go p.run(reqs, res)
}

// read reads the sender into the buffer of each request and answers each
// with one result. It returns after an error (Close and abort close the
// connection, which ends a Read in progress) or when the relay stops.
func (p *pump) read(reqs <-chan []byte, res chan<- readResult) {
	defer p.r.wg.Done()
	quit := p.r.ctx.Done()
	for {
		var buf []byte
		select {
		case <-quit:
			return
		case buf = <-reqs:
		}
		n, err := p.src.Read(buf)
		res <- readResult{n, err} // never blocks: one request at a time
		if err != nil {
			return
		}
	}
}

// run is the processor: it loops until the direction ends or the relay
// stops. Each turn arms faults, fires the due ones, and makes one step, or
// waits for input, an Arm, a Resume or the relay's end.
func (p *pump) run(reqs chan<- []byte, res <-chan readResult) {
	defer p.r.wg.Done()
	defer p.r.update(p.d, func(s *DirStats) { s.Stalled = false })
	quit := p.r.ctx.Done()
	buf := make([]byte, readSize)
	reading := false
	for {
		select {
		case <-quit:
			return
		default:
		}
		if !p.discard {
			p.checkArms()
			if p.fireDue() == stop {
				return
			}
		}
		if p.stalled {
			select {
			case <-p.resume:
				p.stalled = false
			case <-quit:
				return
			}
			continue
		}
		switch p.step() {
		case progress:
			continue
		case stop:
			return
		}
		if p.ended {
			p.end()
			return
		}
		if !reading {
			reqs <- buf // never blocks: one request at a time
			reading = true
		}
		select {
		case rr := <-res:
			reading = false
			if len(p.pending) == 0 {
				p.pending = p.pending[:0]
			}
			p.pending = append(p.pending, buf[:rr.n]...)
			p.r.update(p.d, func(s *DirStats) { s.Read += int64(rr.n) })
			if rr.err != nil {
				p.ended, p.rerr = true, rr.err
			}
		case <-p.wake:
		case <-quit:
			return
		}
	}
}

// checkArms arms the faults whose Arm is nil or closed, at the current
// position, and resolves those whose position is known from then.
func (p *pump) checkArms() {
	for _, f := range p.faults {
		if f.armed {
			continue
		}
		if f.Arm != nil {
			select {
			case <-f.Arm:
			default:
				continue
			}
		}
		f.armed = true
		f.firstRec = p.recIdx
		if f.AfterRecords == 0 {
			f.resolve(p.pos)
		}
	}
}

// startRecord takes the header at the start of pending: the record has size
// bytes in all. It resolves the faults whose position is this record's end.
func (p *pump) startRecord(size int64) {
	idx := p.recIdx
	p.recIdx++
	p.inRec = true
	p.recStart, p.recEnd = p.pos, p.pos+size
	for _, f := range p.faults {
		if f.armed && !f.resolved && idx-f.firstRec+1 == f.AfterRecords {
			f.resolve(p.recEnd)
		}
	}
}

// nextFire returns the nearest position after pos where a resolved fault
// fires.
func (p *pump) nextFire() (int64, bool) {
	var next int64
	found := false
	for _, f := range p.faults {
		if f.resolved && !f.fired && f.firePos > p.pos && (!found || f.firePos < next) {
			next, found = f.firePos, true
		}
	}
	return next, found
}

// fireDue fires, in New's order, the faults whose position has been reached.
// It returns after a CutFIN or a Stall (run goes on or waits, then calls
// again), and stop when the pump must end.
func (p *pump) fireDue() step {
	for _, f := range p.faults {
		if !f.resolved || f.fired || f.firePos > p.pos {
			continue
		}
		f.fired = true
		fired := Firing{Fault: f.index, Action: f.Action, Pos: p.pos, Record: p.recIdx}
		if p.inRec {
			fired.Record, fired.Offset = p.recIdx-1, p.pos-p.recStart
		}
		p.r.update(p.d, func(s *DirStats) {
			s.Fired = append(s.Fired, fired)
			if f.Action == Stall {
				s.Stalled = true
			}
		})
		switch f.Action {
		case CutFIN:
			p.discard = true
			p.closeWrite()
			return progress
		case CutRST:
			p.drain()
			p.r.abort()
			return stop
		case Stall:
			p.stalled = true
			return progress
		}
	}
	return progress
}

// step consumes what it can of pending: drops it after CutFIN, parses a
// record header at a record boundary, or forwards bytes of the current
// record up to its end or the next fault's position.
func (p *pump) step() step {
	if p.discard {
		if len(p.pending) == 0 {
			return needInput
		}
		p.drop(int64(len(p.pending)))
		return progress
	}
	if !p.inRec {
		switch {
		case len(p.pending) == 0:
			return needInput
		case len(p.pending) < headerLen && !p.ended:
			return needInput
		case len(p.pending) < headerLen:
			// A partial header at the end of the stream: pass it on as it is.
			return p.consume(int64(len(p.pending)))
		}
		p.startRecord(headerLen + int64(binary.BigEndian.Uint16(p.pending[3:headerLen])))
		return progress
	}
	n := min(int64(len(p.pending)), p.recEnd-p.pos)
	if n == 0 {
		return needInput
	}
	if next, ok := p.nextFire(); ok {
		n = min(n, next-p.pos)
	}
	return p.consume(n)
}

// consume forwards the next n bytes of pending, and closes the current
// record when they end it.
func (p *pump) consume(n int64) step {
	if err := p.write(p.pending[:n], p.inRec && p.pos+n == p.recEnd); err != nil {
		return stop
	}
	p.pending = p.pending[n:]
	p.pos += n
	if p.inRec && p.pos == p.recEnd {
		p.inRec = false
	}
	return progress
}

// drop throws away the next n bytes of pending.
func (p *pump) drop(n int64) {
	p.pending = p.pending[n:]
	p.pos += n
	p.r.update(p.d, func(s *DirStats) { s.Dropped += n })
}

// write writes b to the receiver; completes says whether b ends a record.
// The stats are updated before the call and corrected when it fails.
func (p *pump) write(b []byte, completes bool) error {
	p.r.update(p.d, func(s *DirStats) {
		s.Forwarded += int64(len(b))
		if completes {
			s.Records++
		}
	})
	n, err := p.dst.Write(b)
	if err == nil {
		return nil
	}
	p.r.update(p.d, func(s *DirStats) {
		s.Forwarded -= int64(len(b) - n)
		if completes {
			s.Records--
		}
	})
	switch {
	case isReset(err):
		p.r.update(p.d, func(s *DirStats) { s.ReceiverReset = true })
		p.r.abort()
	case p.r.stopping() || errors.Is(err, net.ErrClosed):
	default:
		p.r.setErr(fmt.Errorf("relay: %v: write: %w", p.d, err))
		p.r.abort()
	}
	return err
}

// end handles the end of the sender's stream once pending is consumed:
// a FIN is passed on as a FIN, a reset as a reset of both connections
// (neither after CutFIN).
func (p *pump) end() {
	err := p.rerr
	switch {
	case err == io.EOF:
		p.r.update(p.d, func(s *DirStats) { s.Sender = FIN })
		if !p.discard {
			p.closeWrite()
		}
	case isReset(err):
		p.r.update(p.d, func(s *DirStats) { s.Sender = RST })
		if !p.discard {
			p.drain()
			p.r.abort()
		}
	case p.r.stopping() || errors.Is(err, net.ErrClosed):
	default:
		p.r.setErr(fmt.Errorf("relay: %v: read: %w", p.d, err))
		p.r.abort()
	}
}

// closeWrite half-closes the connection to the receiver (shutdown(SHUT_WR)).
func (p *pump) closeWrite() {
	p.r.update(p.d, func(s *DirStats) { s.Receiver = FIN })
	if err := p.dst.CloseWrite(); err != nil && !p.r.stopping() {
		p.r.update(p.d, func(s *DirStats) { s.Receiver = Open })
		p.r.setErr(fmt.Errorf("relay: %v: shutdown: %w", p.d, err))
	}
}

// drain waits until the receiver's TCP has acknowledged everything written
// to it (SIOCOUTQ is 0), at most drainTimeout, so that a reset that follows
// does not destroy bytes forwarded before it.
func (p *pump) drain() {
	rc, err := p.dst.SyscallConn()
	if err != nil {
		return
	}
	deadline := time.Now().Add(drainTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		queued, qerr := 0, error(nil)
		if err := rc.Control(func(fd uintptr) { queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
			return
		}
		if qerr != nil || queued == 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-tick.C:
		case <-p.r.ctx.Done():
			return
		}
	}
}

// isReset reports whether err says the peer reset the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
