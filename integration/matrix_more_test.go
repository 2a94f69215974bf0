package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
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
