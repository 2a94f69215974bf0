package openssl

import (
	"runtime"
	"time"
)

// A goroutine that loops over Write (or Read) without ever waiting for the
// socket spends nearly all its time inside cgo calls, and that trips a
// heuristic of the Go runtime's monitor thread, sysmon:
//   - sysmon preempts a goroutine that has run for 10 ms without going
//     through the scheduler. One inside a cgo call cannot be preempted, so
//     sysmon takes its P from the thread and hands it to another
//     (handoffp), and when the call returns the thread must get a P back.
//   - Every P that sysmon takes resets sysmon's own period, which had grown
//     to 10 ms, to 20 µs. On a machine whose cores are all busy, each of
//     those wake-ups preempts a thread that was working.
//
// In a 16 KiB bulk transfer over loopback on two cores, that made about 400
// handoffs, 4,000 sysmon wake-ups and 9,000 context switches a second, and
// 29 µs of CPU per record against the C program's 23.5 µs. crypto/tls does
// not trip it: its goroutines spend a few microseconds of every record in a
// system call, so sysmon finds them running Go code, preempts them there,
// and keeps its period.
//
// A goroutine that passes through the scheduler now and then is not
// running for 10 ms. So a direction of a Conn that has made SSL calls for
// timeSlice while nothing on the Conn waited for the socket yields
// (runtime.Gosched). With that, the same transfer made 3 handoffs and 160
// sysmon wake-ups a second, at 23.7 µs of CPU per record. The README's
// Performance section has the measurements. See also go.dev/issue/18236
// (sysmon's tick is fixed).
//
// Any wait on the Conn, in either direction, starts the slice again. A
// request–response loop (Write, then a Read that waits) runs in one
// goroutine, and Write's direction never waits itself; it must not yield,
// because a yield wakes an idle P (wakep) and moved a 64-byte ping-pong
// into a mode with 1.5 times the CPU per round trip. The price is that a
// Conn that streams one way while the other direction keeps receiving does
// not yield. A large HTTP/2 response through net/http is such a stream
// (WINDOW_UPDATE frames come in), but its writing goroutine parks between
// frames on its own: a 1 GiB download made 15 handoffs in 3.3 s.

// timeSlice is how long a direction makes SSL calls without a wait on its
// Conn before it yields: a tenth of sysmon's 10 ms, because sysmon samples,
// and the goroutine must pass through the scheduler between any two of its
// looks.
const timeSlice = time.Millisecond

// clockEvery is how many calls a slice makes between two reads of the
// clock. A read costs about 50 ns here (a vDSO call), against about 4 µs
// for a call with a 1 KiB record; reading it at every call was 2% of the
// CPU of a 1 KiB bulk transfer. Sixteen calls take well under a slice.
const clockEvery = 16

// sliceEpoch is the origin of slice times; time.Since of a Time that has a
// monotonic reading costs one clock read.
var sliceEpoch = time.Now()

// sliceNow is the time since sliceEpoch.
func sliceNow() time.Duration { return time.Since(sliceEpoch) }

// schedSlice times how long a direction has made SSL calls since its
// goroutine last passed through the scheduler, as far as the Conn can tell:
// since a call on the Conn waited for the socket (the netpoller parked its
// goroutine), or since the direction last yielded. The direction's lock
// protects it.
type schedSlice struct {
	start  time.Duration // since sliceEpoch, when the slice's clock was first read; 0: not yet
	calls  uint32        // calls since the slice began
	waits  uint64        // the Conn's wait count at the last call
	yields int           // how many times the direction yielded (tests read it)
}

// endCall is the bookkeeping after one of the direction's calls; waits is
// the Conn's count of calls that waited, read after the call.
func (s *schedSlice) endCall(waits uint64) {
	if s.due(waits, sliceNow) {
		runtime.Gosched()
	}
}

// due records a call made when the Conn had counted waits calls that
// waited, and reports whether the goroutine has run a whole slice and
// should yield; the next slice then starts. A wait counted since the last
// call starts a new slice. Every clockEvery calls it reads now (the time
// since sliceEpoch): the first read starts the slice's clock, and a later
// one at least timeSlice after it ends the slice.
func (s *schedSlice) due(waits uint64, now func() time.Duration) bool {
	if waits != s.waits {
		s.waits, s.start, s.calls = waits, 0, 0
		return false
	}
	s.calls++
	if s.calls%clockEvery != 0 {
		return false
	}
	t := now()
	switch {
	case s.start == 0:
		s.start = t
		return false
	case t-s.start < timeSlice:
		return false
	}
	s.start, s.calls = t, 0
	s.yields++
	return true
}
