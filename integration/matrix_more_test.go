package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
)

// More rows of the shutdown matrix (the numbers are the issue's): data
// after our close_notify (4), both sides at once (10), lingering close with
// unread input (17), DrainSendQueue with a slow reader (18), and Close while
// another goroutine is blocked (20). They run for every peer through the
// peerSide interface; a peer that cannot do a step is recorded, not failed.

func init() {
	n := len(scenarios)
	defer func() {
		for i := n; i < len(scenarios); i++ {
			scenarios[i].run = logObservation(scenarios[i].run)
		}
	}()
	scenarios = append(scenarios,
		scenario{id: 4, name: "peer_sends_after_our_close_notify", run: peerSendsAfterOurCloseNotify},
		scenario{id: 10, name: "both_shut_down_at_once", run: bothShutDownAtOnce},
		scenario{id: 17, name: "lingering_close_unread_input",
			policy: openssl.ClosePolicy{Lingering: true, Timeout: lingerTimeout}, run: lingeringCloseUnreadInput},
		scenario{id: 17, name: "default_close_unread_input",
			policy: openssl.ClosePolicy{Timeout: lingerTimeout}, run: defaultCloseUnreadInput},
		scenario{id: 18, name: "drain_send_queue_slow_reader",
			policy: openssl.ClosePolicy{DrainSendQueue: true, Timeout: wait}, run: drainSendQueueSlowReader},
		scenario{id: 20, name: "close_while_read_blocked",
			policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileReadBlocked},
		scenario{id: 20, name: "close_while_write_blocked",
			policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileWriteBlocked},
		scenario{id: 20, name: "close_while_shutdown_blocked",
			policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileShutdownBlocked},
		scenario{id: 11, name: "shutdown_during_handshake", midHandshake: true, run: shutdownDuringHandshake},
		scenario{id: 9, name: "peer_stops_reading_close_notify_full_buffer",
			connect: connectFullBuffer, run: peerStopsReading},
	)
}

const (
	// lingerTimeout is the Timeout of the close policies of scenario 17.
	lingerTimeout = 2 * time.Second
	// blockedCloseTimeout is the Timeout of the close policy of scenario 20.
	blockedCloseTimeout = time.Second
	// closeMargin is what Close may take beyond its Timeout on a loaded
	// machine.
	closeMargin = 3 * time.Second
	// slowReaderBytes is what scenarios 18 and 20 write to a paused peer:
	// more than our shrunk send buffer and the peer's receive buffer hold,
	// so Write blocks.
	slowReaderBytes = 512 << 10
	// ourSendBuffer is the SO_SNDBUF of our socket in those scenarios.
	ourSendBuffer = 16 << 10
)

// logObservation logs what run reports of the peer.
func logObservation(run func(*testing.T, *peerImpl, *openssl.Conn, peerSide) string) func(*testing.T, *peerImpl, *openssl.Conn, peerSide) string {
	return func(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
		what := run(t, p, c, ps)
		t.Logf("observed: %s", what)
		return what
	}
}

// textLines returns n bytes of lines ("<tag> 000042 ...\n"), each
// distinct, so a lost or repeated piece shows in a comparison.
func textLines(n int, tag string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s %06d %s\n", tag, i, strings.Repeat("x", 40))
	}
	return b.String()[:n-1] + "\n"
}

// pauseStopsReading reports whether ps.pause really stops the peer from
// reading: the in-process crypto/tls peer reads all the time, and its
// pause does nothing (TestMatrixRelay stalls it with the relay instead).
func pauseStopsReading(ps peerSide) bool {
	_, isGo := ps.(*goSide)
	return !isGo
}

// inboundAtLeast waits until our socket holds at least n bytes we have not
// read (SIOCINQ), without reading them: it waits in Go's netpoller for
// each arrival.
func inboundAtLeast(t *testing.T, c *openssl.Conn, n int) {
	t.Helper()
	raw := c.NetConn()
	rc, err := raw.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(wait)))
	defer raw.SetReadDeadline(time.Time{})
	var have int
	var ierr error
	err = rc.Read(func(fd uintptr) bool {
		have, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		return ierr != nil || have >= n
	})
	require.NoError(t, err, "our socket holds %d unread bytes, want %d", have, n)
	require.NoError(t, ierr)
}

// pollUntil calls cond until it returns true, every millisecond for at
// most wait. It is for kernel state that has no readiness event (SIOCOUTQ,
// as Close's own DrainSendQueue polls it), never for ordering goroutines.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		require.False(t, time.Now().After(deadline), "%s: not within %v", what, wait)
		<-tick.C
	}
}

// sendQueueFull waits until our socket's send queue holds data the paused
// peer does not take (the peer's receive window is closed and our Write
// is blocked), or until the Write ended.
func sendQueueFull(t *testing.T, c *openssl.Conn, writeDone chan error) {
	t.Helper()
	pollUntil(t, "our send queue fills up", func() bool {
		select {
		case err := <-writeDone:
			writeDone <- err // for the caller
			return true
		default:
		}
		n, err := c.SendQueueLen()
		require.NoError(t, err)
		return n > 0
	})
}

// errName names err for an observation: the identity a caller tests.
func errName(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, openssl.ErrTruncated):
		return "ErrTruncated"
	case errors.Is(err, openssl.ErrShutdownTimeout):
		return "ErrShutdownTimeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.Is(err, net.ErrClosed):
		return "net.ErrClosed"
	case err == io.EOF:
		return "io.EOF"
	}
	return err.Error()
}

// 4: the peer keeps sending after our close_notify (16 sends of 64 KiB of
// lines), then answers. Shutdown reads and discards all of it: it returns
// nil and DiscardedBytes is exactly what the peer sent. Peers that answer
// by themselves, or end the connection, as soon as they read our alert
// cannot send afterwards: that is recorded.
func peerSendsAfterOurCloseNotify(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	r, err := c.ShutdownOnce()
	require.NoError(t, err)
	require.Equal(t, openssl.ShutdownSent, r)
	shut := make(chan error, 1)
	ctx := boundedCtx(t, 3*wait)
	go func() { shut <- c.Shutdown(ctx) }()

	end := ps.end() // the peer has read our close_notify
	const sends, size = 16, 64 << 10
	chunk := textLines(size, "after our close_notify")
	sent := 0
	var sendErr error
	for range sends {
		if sendErr = ps.send(chunk); sendErr != nil {
			break
		}
		sent += len(chunk)
	}
	if sent > 0 {
		require.NoError(t, sendErr, "the peer stopped sending after %d bytes", sent)
	}
	how, aerr := ps.answer()
	serr := <-shut
	discarded := c.DiscardedBytes()
	t.Logf("peer end %s, sent %d, send error %v, answer %q %v, Shutdown %v, discarded %d", end, sent, sendErr, how, aerr, serr, discarded)
	require.LessOrEqual(t, discarded, int64(sent))

	if aerr != nil {
		require.ErrorIs(t, aerr, errUnsupported)
		require.Error(t, serr)
		require.Contains(t, []string{"ErrTruncated", "ECONNRESET"}, errName(serr), "Shutdown: %v", serr)
		return fmt.Sprintf("reads it as %s, sends nothing after it, never answers: our Shutdown gets %s", end, errName(serr))
	}
	require.NoError(t, serr)
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
	switch {
	case sent == 0:
		require.Zero(t, discarded)
		return fmt.Sprintf("reads it as %s and cannot send after it; %s", end, how)
	case discarded == int64(sent):
		require.Equal(t, sends*size, sent)
		return fmt.Sprintf("reads it as %s, keeps sending (our Shutdown discards exactly the %d KiB), then %s", end, sent>>10, how)
	}
	return fmt.Sprintf("reads it as %s; what it sends after it is lost (%s)", end, how)
}

// 10: the peer's close_notify and our Shutdown start at the same instant
// (both goroutines wait on one channel). Our Shutdown returns nil, our Read
// then returns exactly io.EOF, and ShutdownState has both flags. A peer that
// cannot send close_notify first is asked to answer instead.
func bothShutDownAtOnce(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	start := make(chan struct{})
	peerDid := make(chan answerResult, 1)
	go func() {
		<-start
		err := ps.closeNotify()
		if !errors.Is(err, errUnsupported) {
			peerDid <- answerResult{"sends its close_notify at the same instant as ours", err}
			return
		}
		how, err := ps.answer()
		peerDid <- answerResult{"cannot send close_notify on demand; " + how, err}
	}()
	close(start)
	err := c.Shutdown(boundedCtx(t, wait))
	did := <-peerDid
	require.NoError(t, did.err, did.how)
	if errors.Is(err, openssl.ErrTruncated) {
		// Ours arrived first, and the peer ended the connection without
		// answering: allowed only for a peer that never answers.
		_, aerr := ps.answer()
		require.ErrorIs(t, aerr, errUnsupported, "Shutdown: %v", err)
		return did.how + "; never answers ours (our Shutdown: nil when its alert is first, else ErrTruncated)"
	}
	require.NoError(t, err)
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
	got, rerr := readErr(t, c)
	require.Equal(t, "", got)
	require.Equal(t, io.EOF, rerr, "Read after a completed Shutdown")
	return did.how
}

// 17: lingering close with unread input. The peer sends data we never read,
// we write and Close with ClosePolicy{Lingering: true}: the peer receives
// everything we wrote and sees no reset.
func lingeringCloseUnreadInput(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	return closeWithUnreadInput(t, c, ps, true)
}

// 17, compared: the same with the default policy, whose close(2) with
// unread input makes the kernel send RST. What the peer saw is recorded.
func defaultCloseUnreadInput(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	return closeWithUnreadInput(t, c, ps, false)
}

func closeWithUnreadInput(t *testing.T, c *openssl.Conn, ps peerSide, lingering bool) string {
	exchangeLines(t, c, ps)
	unread := textLines(4<<10, "never read by us")
	require.NoError(t, ps.send(unread))
	inboundAtLeast(t, c, len(unread))
	payload := textLines(32<<10, "written by us before Close")
	_, err := c.Write([]byte(payload))
	require.NoError(t, err)

	answered := make(chan answerResult, 1)
	if lingering {
		// A well-behaved peer answers our close_notify and closes, which
		// ends the lingering.
		go func() {
			how, err := ps.answer()
			answered <- answerResult{how, err}
		}()
	} else {
		answered <- answerResult{}
	}
	start := time.Now()
	cerr := c.Close()
	took := time.Since(start)
	require.Less(t, took, lingerTimeout+closeMargin, "Close took %v", took)
	a := <-answered
	rerr := ps.received("ping from us\n" + payload)
	end := ps.end()
	t.Logf("lingering %v: Close %v after %v; answer %q %v; received: %v; end %s", lingering, cerr, took, a.how, a.err, rerr, end)

	var got string
	switch {
	case rerr == nil:
		got = "receives all we wrote"
	case errors.Is(rerr, net.ErrClosed):
		// The peer's received reads our Conn (an echo), closed now.
		got = "what it received is not observable after our Close"
	case lingering:
		require.NoError(t, rerr, "with Lingering the peer must receive everything we wrote")
	default:
		got = "loses part of what we wrote"
	}
	if !lingering {
		return fmt.Sprintf("default policy: %s, reads the end as %s", got, end)
	}
	require.NotEqual(t, endReset, end, "with Lingering the peer must see no reset")
	require.NotEqual(t, endOpen, end)
	if cerr != nil {
		require.ErrorIs(t, cerr, openssl.ErrShutdownTimeout, "Close: %v", cerr)
	}
	return fmt.Sprintf("Lingering: %s, reads the end as %s, our Close returns %s", got, end, errName(cerr))
}

// 18: DrainSendQueue with a slow reader. The peer pauses; we write 512 KiB
// in a goroutine, which blocks once the peer's receive window and our
// (shrunk) send buffer are full; the peer resumes; Close, with
// DrainSendQueue, returns nil once the kernel's send queue is empty, and
// the peer has received every byte.
func drainSendQueueSlowReader(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.NetConn().(*net.TCPConn).SetWriteBuffer(ourSendBuffer))
	if err := ps.pause(); errors.Is(err, errUnsupported) {
		return "cannot pause"
	} else {
		require.NoError(t, err)
	}
	payload := textLines(slowReaderBytes, "to a slow reader")
	writeDone := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte(payload))
		writeDone <- err
	}()
	stopped := pauseStopsReading(ps)
	if stopped {
		// A SIGSTOP takes effect a little after kill(2) returns, so the
		// peer may read some more first: this is not asserted.
		sendQueueFull(t, c, writeDone)
		n, err := c.SendQueueLen()
		require.NoError(t, err)
		t.Logf("send queue while the peer is paused: %d bytes", n)
	}
	require.NoError(t, ps.resume())
	// Some peers read only when asked (Python), or echo what they read and
	// so need us to read (gnutls-serv): received does both.
	received := make(chan error, 1)
	go func() { received <- ps.received("ping from us\n" + payload) }()
	select {
	case err := <-writeDone:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("our Write did not finish after the peer resumed")
	}
	require.NoError(t, <-received)
	n, err := c.SendQueueLen()
	require.NoError(t, err)
	t.Logf("send queue before Close: %d bytes", n)
	start := time.Now()
	require.NoError(t, c.Close())
	require.Less(t, time.Since(start), wait+closeMargin)
	if !stopped {
		return "cannot pause (it reads all the time): receives everything; see the relay's stall"
	}
	return "paused, then resumed: receives everything"
}

// 20: Close while another goroutine is blocked in Read (the peer is idle,
// and paused so that it cannot answer the alert Close sends):
// the Read returns an error wrapping net.ErrClosed, and Close returns nil
// within its Timeout.
func closeWhileReadBlocked(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	const line = "one more line\n"
	defer func() { require.NoError(t, ps.resume()) }()
	first := make(chan string, 1)
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := io.ReadFull(c, buf[:len(line)])
		first <- string(buf[:n])
		if err != nil {
			readDone <- err
			return
		}
		_, err = c.Read(buf) // blocks: the peer sends nothing more
		readDone <- err
	}()
	require.NoError(t, ps.send(line))
	require.Equal(t, line, <-first)
	// Paused, the peer cannot answer the close_notify Close sends before
	// Close closes the socket, which would end our Read with io.EOF.
	if err := ps.pause(); !errors.Is(err, errUnsupported) {
		require.NoError(t, err)
	}
	// The reader goes straight from its first Read into the second; Close
	// may come before it enters it, which ends the same way.
	start := time.Now()
	cerr := c.Close()
	took := time.Since(start)
	require.Less(t, took, blockedCloseTimeout+closeMargin)
	select {
	case err := <-readDone:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(blockedCloseTimeout + closeMargin):
		t.Fatal("Read still blocked after Close")
	}
	require.NoError(t, cerr)
	return ""
}

// 20: Close while another goroutine is blocked in Write (the peer paused,
// our send buffer full): Close sends no alert behind a half-written record,
// the Write returns an error wrapping net.ErrClosed, and Close returns nil
// within its Timeout.
func closeWhileWriteBlocked(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	if !pauseStopsReading(ps) {
		return ""
	}
	require.NoError(t, c.NetConn().(*net.TCPConn).SetWriteBuffer(ourSendBuffer))
	if err := ps.pause(); errors.Is(err, errUnsupported) {
		return "cannot pause"
	} else {
		require.NoError(t, err)
	}
	// Write until a Write fails: a paused peer blocks one of them (it may
	// read a little before the pause takes effect).
	chunk := []byte(textLines(slowReaderBytes, "never all sent"))
	writeDone := make(chan error, 1)
	go func() {
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				writeDone <- err
				return
			}
		}
		writeDone <- errors.New("64 Writes of 512 KiB to a paused peer did not block")
	}()
	sendQueueFull(t, c, writeDone)
	start := time.Now()
	cerr := c.Close()
	took := time.Since(start)
	require.Less(t, took, blockedCloseTimeout+closeMargin)
	select {
	case err := <-writeDone:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(blockedCloseTimeout + closeMargin):
		t.Fatal("Write still blocked after Close")
	}
	require.NoError(t, cerr)
	require.NoError(t, ps.resume())
	end := ps.end()
	return "Close while our Write is blocked (no alert): reads the end as " + string(end)
}

// 20: Close while another goroutine is blocked in Shutdown (the peer
// paused: it never answers): the Shutdown returns an error wrapping
// net.ErrClosed or ErrShutdownTimeout, and Close returns nil within its
// Timeout.
func closeWhileShutdownBlocked(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	if err := ps.pause(); errors.Is(err, errUnsupported) {
		return "cannot pause"
	} else {
		require.NoError(t, err)
	}
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(context.Background()) }()
	// Shutdown waits for the peer once our alert is out.
	pollUntil(t, "our close_notify is sent", func() bool { return c.ShutdownState().Sent() })
	start := time.Now()
	cerr := c.Close()
	took := time.Since(start)
	require.Less(t, took, blockedCloseTimeout+closeMargin)
	select {
	case err := <-shut:
		if !errors.Is(err, openssl.ErrShutdownTimeout) {
			require.ErrorIs(t, err, net.ErrClosed)
		}
	case <-time.After(blockedCloseTimeout + closeMargin):
		t.Fatal("Shutdown still blocked after Close")
	}
	require.NoError(t, cerr)
	require.NoError(t, ps.resume())
	end := ps.end()
	return "Close while our Shutdown waits: reads the end as " + string(end)
}

// midHandshake holds the tests (*testing.T) of the cells that start before
// our handshake completed (scenario.midHandshake): ourConn looks them up.
var midHandshake sync.Map

// requireHandshakeIncomplete checks that ShutdownOnce, Shutdown and
// CloseWrite all fail with ErrHandshakeIncomplete and send nothing.
func requireHandshakeIncomplete(t *testing.T, c *openssl.Conn, when string) {
	t.Helper()
	r, err := c.ShutdownOnce()
	require.ErrorIs(t, err, openssl.ErrHandshakeIncomplete, "ShutdownOnce %s the handshake", when)
	require.Equal(t, openssl.ShutdownFailed, r)
	require.ErrorIs(t, c.Shutdown(boundedCtx(t, wait)), openssl.ErrHandshakeIncomplete, "Shutdown %s the handshake", when)
	require.ErrorIs(t, c.CloseWrite(), openssl.ErrHandshakeIncomplete, "CloseWrite %s the handshake", when)
	require.Zero(t, c.ShutdownState(), "ShutdownState %s the handshake", when)
	require.False(t, c.ConnectionState().HandshakeComplete)
}

// shutdownMidHandshake is the first half of scenario 11, run by ourConn
// before the handshake: the shutdown calls fail with ErrHandshakeIncomplete
// before it starts, and while it is in flight, the peer paused (a process
// stopped with SIGSTOP; the crypto/tls peer's handshake starts only after
// this returns). It returns the result of our handshake, started in a
// goroutine.
func shutdownMidHandshake(t *testing.T, c *openssl.Conn, ctx context.Context, proc *peer.Process) chan error {
	t.Helper()
	requireHandshakeIncomplete(t, c, "before")
	if proc != nil {
		require.NoError(t, pauseProcess(proc))
	}
	ours := make(chan error, 1)
	go func() { ours <- c.HandshakeContext(ctx) }()
	requireHandshakeIncomplete(t, c, "during")
	select {
	case err := <-ours:
		t.Fatalf("our handshake ended (%v) while the peer was paused", err)
	default:
	}
	if proc != nil {
		require.NoError(t, resumeProcess(proc))
	}
	return ours
}

// 11: shutdown requested during the handshake. ourConn has checked that
// ShutdownOnce, Shutdown and CloseWrite fail with ErrHandshakeIncomplete
// and send nothing, before and during our handshake, and that the
// handshake then completed; data flows both ways and a normal shutdown
// (scenario 1) works.
func shutdownDuringHandshake(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	require.True(t, c.ConnectionState().HandshakeComplete)
	require.Zero(t, c.ShutdownState())
	return "sees nothing of our early shutdown calls; then " + weShutDownFirst(t, p, c, ps)
}

// fullBufferBytes is what scenario 9 writes to the paused peer before our
// close_notify: more than a paused peer's receive buffer takes, so that
// some stays in our send queue, and less than our enlarged send buffer
// (fullBufferSendBuffer) holds, so that the Write completes: a Write left
// blocked would leave part of a record inside OpenSSL, and no alert could
// follow it.
const (
	fullBufferBytes      = 512 << 10
	fullBufferSendBuffer = 4 << 20
)

// 9: the peer stops reading (paused), our queue holds data it has not
// taken, and our send buffer is then shrunk to its minimum, so that the
// kernel takes no new segment: our close_notify meets a full buffer. The
// first ShutdownOnce returns -1/WANT_WRITE, or 0 when the kernel appends
// the alert to the last unsent segment (Linux does that whatever
// SO_SNDBUF says); which one happened is recorded. Once the peer resumes,
// Retry ends with 0, the peer receives every byte we wrote, and the
// shutdown completes as in scenario 1.
func peerStopsReading(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	stalled, deterministic := ps.(*stalledGoSide)
	tcp := c.NetConn().(*net.TCPConn)
	if !deterministic {
		require.NoError(t, tcp.SetWriteBuffer(fullBufferSendBuffer))
	} else {
		stalled.s.armSkip()
	}
	if err := ps.pause(); errors.Is(err, errUnsupported) {
		return "cannot pause"
	} else {
		require.NoError(t, err)
	}
	resumed := false
	defer func() {
		if !resumed {
			ps.resume()
		}
	}()
	payload := ""
	var filled int64
	if deterministic {
		filled = fillRaw(t, c)
	} else {
		payload = textLines(fullBufferBytes, "before our close_notify")
		writeDone := make(chan error, 1)
		go func() {
			_, err := c.Write([]byte(payload))
			writeDone <- err
		}()
		select {
		case err := <-writeDone:
			require.NoError(t, err)
		case <-time.After(wait):
			t.Fatalf("a Write of %d KiB to the paused peer did not complete", fullBufferBytes>>10)
		}
	}
	queued, err := c.SendQueueLen()
	require.NoError(t, err)
	if !deterministic {
		// The kernel's minimum: from now on it takes no new segment while
		// our queue holds anything.
		require.NoError(t, tcp.SetWriteBuffer(1))
	}

	var seq []string
	record := func() error {
		r, err := c.ShutdownOnce()
		var e *openssl.Error
		switch {
		case err == nil:
			seq = append(seq, fmt.Sprint(int(r)))
		case errors.As(err, &e):
			seq = append(seq, "-1/"+e.Code.Name())
		default:
			seq = append(seq, "-1/"+err.Error())
		}
		if len(seq) > 10000 {
			return errors.New("more than 10000 ShutdownOnce calls")
		}
		return err
	}
	first := record()
	resumed = true
	require.NoError(t, ps.resume())
	// Peers that read only when asked (Python), or echo what they read
	// (gnutls-serv), need received to run meanwhile.
	received := make(chan error, 1)
	go func() { received <- ps.received("ping from us\n" + payload) }()
	if deterministic {
		require.Equal(t, "-1/WANT_WRITE", seq[0], "a full pipe must make the first ShutdownOnce wait")
	}
	if errors.Is(first, openssl.ErrWantWrite) {
		require.NoError(t, c.Retry(boundedCtx(t, wait), record), "sequence %v", seq)
		requireShape(t, seq, "-1/WANT_WRITE", "-1/WANT_WRITE", "0")
	} else {
		require.NoError(t, first)
		require.Equal(t, []string{"0"}, seq)
	}
	st := c.ShutdownState()
	require.True(t, st.Sent() && !st.Received(), "ShutdownState %v", st)
	require.NoError(t, <-received, "the peer must receive every byte we wrote")

	answered := make(chan answerResult, 1)
	go func() {
		how, err := ps.answer()
		answered <- answerResult{how, err}
	}()
	serr := c.Shutdown(boundedCtx(t, wait))
	a := <-answered
	if errors.Is(a.err, errUnsupported) {
		require.ErrorIs(t, serr, openssl.ErrTruncated)
	} else {
		require.NoError(t, a.err)
		require.NoError(t, serr)
	}
	end := ps.end()
	t.Logf("send queue after filling: %d bytes (raw filler %d); ShutdownOnce %v; peer end %s", queued, filled, seq, end)
	if deterministic {
		require.Equal(t, filled, stalled.s.skippedBytes(), "the peer must receive every raw byte we wrote")
		return "stopped (its socket unread, buffers of 4 KiB): ShutdownOnce -1/WANT_WRITE until it reads again, then 0; receives all we wrote, reads it as " + string(end)
	}
	how := "our close_notify meets the full buffer: ShutdownOnce -1/WANT_WRITE until the peer resumes, then 0"
	if seq[0] == "0" {
		how = "the kernel queues our close_notify behind the unread data: ShutdownOnce 0 at once"
	}
	return how + "; receives all we wrote, reads it as " + string(end)
}

const (
	// smallBuffer is SO_SNDBUF (ours) and SO_RCVBUF (the crypto/tls
	// peer's) of scenario 9 with the crypto/tls peer, as in cmd/closenotify's
	// full-buffer case: with buffers this small the peer's window, once
	// shut, stays shut.
	smallBuffer = 4096
	// ethernetMSS is the segment size of that connection.
	ethernetMSS = 1460
)

// connectFullBuffer connects scenario 9. The crypto/tls peer gets the set-up
// of cmd/closenotify's full-buffer case, which makes the first ShutdownOnce
// -1/WANT_WRITE every time: small buffers and segments set before the
// connection exists, and a peer that can stop reading (stallConn) and skips
// the raw zero bytes we fill the pipe with. Process peers connect as usual.
func connectFullBuffer(t *testing.T, p *peerImpl, ours role, v version, policy openssl.ClosePolicy) (*openssl.Conn, peerSide) {
	if p != matrixPeers[0] {
		return p.connect(t, ours, v, policy)
	}
	lc := net.ListenConfig{Control: setMSS}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		l.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
		c, _ := l.(*net.TCPListener).AcceptTCP()
		accepted <- c
	}()
	d := net.Dialer{Timeout: wait, Control: setMSS}
	dc, err := d.Dial("tcp4", l.Addr().String())
	require.NoError(t, err)
	acc := <-accepted
	require.NotNil(t, acc)
	ourTCP, peerTCP := dc.(*net.TCPConn), acc
	if ours == weServer {
		ourTCP, peerTCP = acc, dc.(*net.TCPConn)
	}
	require.NoError(t, ourTCP.SetWriteBuffer(smallBuffer))
	require.NoError(t, peerTCP.SetReadBuffer(smallBuffer))
	s := &stallConn{TCPConn: peerTCP, closed: make(chan struct{})}
	c, g := goPeerOn(t, ourTCP, s, peerTCP, ours, v, policy)
	return c, &stalledGoSide{goSide: g, s: s}
}

// setMSS sets TCP_MAXSEG before connect or listen (accepted sockets
// inherit it).
func setMSS(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, ethernetMSS)
	})
	return errors.Join(err, serr)
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

func (g *stalledGoSide) pause() error  { return g.s.pause() }
func (g *stalledGoSide) resume() error { return g.s.resume() }

// fillRaw writes zero bytes on our socket, below TLS, until the kernel
// takes not even one more byte (halving the size down to 1 on EAGAIN, so
// that the last unsent segment is full too), and returns how many it took.
func fillRaw(t *testing.T, c *openssl.Conn) int64 {
	t.Helper()
	rc, err := c.NetConn().(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var total int64
	var werr error
	buf := make([]byte, 64<<10)
	require.NoError(t, rc.Control(func(fd uintptr) {
		size := len(buf)
		for i := 0; size > 0 && i < 1<<16; i++ {
			n, err := unix.Write(int(fd), buf[:size])
			switch {
			case err == unix.EAGAIN:
				size /= 2
			case err != nil:
				werr = err
				return
			default:
				total += int64(n)
			}
		}
	}))
	require.NoError(t, werr)
	return total
}
