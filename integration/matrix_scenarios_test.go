package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/relay"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The run functions of the matrix's scenarios (the table is in
// matrix_test.go), by the numbers, and the helpers they share.
// They run for every peer of their row through the peerSide interface; a
// peer that cannot do a step is recorded, not failed.

// answerResult is what peerSide.answer returned.
type answerResult struct {
	how string
	err error
}

// answerAsync calls ps.answer in a goroutine; the channel delivers its
// result.
func answerAsync(ps peerSide) <-chan answerResult {
	answered := make(chan answerResult, 1)
	go func() {
		how, err := ps.answer()
		answered <- answerResult{how, err}
	}()
	return answered
}

// exchangeLines sends a line each way and checks both arrived.
func exchangeLines(t *testing.T, c *openssl.Conn, ps peerSide) {
	t.Helper()
	const ours, theirs = "ping from us\n", "pong from the peer\n"
	_, err := c.Write([]byte(ours))
	require.NoError(t, err)
	require.NoError(t, ps.received(ours))
	require.NoError(t, ps.send(theirs))
	require.Equal(t, theirs, readN(t, c, len(theirs)))
}

// maxShutdownSteps bounds the ShutdownOnce calls of a cell.
const maxShutdownSteps = 10000

// shutdownSequence shuts c down with ShutdownOnce through Retry and returns
// every result, e.g. ["0", "-1/WANT_READ", "1"] (tlstest.Steps).
func shutdownSequence(ctx context.Context, c *openssl.Conn) ([]string, error) {
	s := tlstest.Steps{Conn: c, Max: maxShutdownSteps}
	err := s.Shutdown(ctx)
	return s.Seq, err
}

// readAsync starts a Read of c, bounded by wait, in a goroutine; the
// channel delivers its error.
func readAsync(t *testing.T, c *openssl.Conn) <-chan error {
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	return tlstest.Go(func() error {
		_, err := c.Read(make([]byte, 64))
		return err
	})
}

// requireShape checks a ShutdownOnce sequence: first, then any number of
// middle, then last.
func requireShape(t *testing.T, seq []string, first, middle, last string) {
	t.Helper()
	require.GreaterOrEqual(t, len(seq), 2, "sequence %v", seq)
	require.Equal(t, first, seq[0], "sequence %v", seq)
	require.Equal(t, last, seq[len(seq)-1], "sequence %v", seq)
	for _, s := range seq[1 : len(seq)-1] {
		require.Equal(t, middle, s, "sequence %v", seq)
	}
}

// boundedCtx returns a context that ends after d, or at t's cleanup.
func boundedCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

const (
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
// pause does nothing (the relay stalls it instead: connectRelayed).
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

// isResetErr reports whether err is how a reset shows on our side: the
// peer's RST (ECONNRESET) or a write after it (EPIPE).
func isResetErr(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// 1: we shut down first; the peer answers. The ShutdownOnce sequence is
// 0, then WANT_READ while the answer is on its way, then 1.
func weShutDownFirst(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	answered := answerAsync(ps)
	seq, err := shutdownSequence(boundedCtx(t, wait), c)
	a := <-answered
	if errors.Is(a.err, errUnsupported) {
		// The peer never answers: it reads our close_notify and closes TCP
		// without its own (gnutls-cli).
		require.ErrorIs(t, err, openssl.ErrTruncated, "sequence %v", seq)
		requireShape(t, seq, "0", "-1/WANT_READ", "-1/SYSCALL")
		st := c.ShutdownState()
		require.True(t, st.Sent() && !st.Received(), "ShutdownState %v", st)
		end := ps.end()
		require.Contains(t, []peerEnd{endCloseNotify, endEOF, endUnknown}, end)
		return "reads it as " + string(end) + "; never answers: closes TCP without close_notify (our ShutdownOnce ends -1/SYSCALL, ErrTruncated)"
	}
	require.NoError(t, err, "sequence %v", seq)
	require.NoError(t, a.err)
	if len(seq) == 2 {
		require.Equal(t, []string{"0", "1"}, seq)
	} else {
		requireShape(t, seq, "0", "-1/WANT_READ", "1")
	}
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState %v", st)
	end := ps.end()
	require.Contains(t, []peerEnd{endCloseNotify, endEOF, endUnknown}, end)
	return "reads it as " + string(end) + "; " + a.how
}

// 2: the peer shuts down first. Our Read returns its data, then io.EOF;
// our Close completes the exchange.
func peerShutsDownFirst(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	if err := ps.closeNotify(); errors.Is(err, errUnsupported) {
		return "cannot send close_notify first"
	} else {
		require.NoError(t, err)
	}
	got, err := readErr(t, c)
	require.Equal(t, "", got)
	require.Equal(t, io.EOF, err, "Read must return exactly io.EOF for close_notify")
	st := c.ShutdownState()
	require.True(t, !st.Sent() && st.Received(), "ShutdownState before Close %v", st)
	require.NoError(t, c.Close())
	st = c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState after Close %v", st)
	return "sends it: our Read gets io.EOF, our Close answers"
}

// 3: half-close. We send a request and CloseWrite; the peer reads it up to
// our close_notify, answers and shuts down; we read the whole answer and
// io.EOF.
func halfCloseScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	const request, response = "request\n", "response\n"
	_, err := c.Write([]byte(request))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	_, err = c.Write([]byte("late\n"))
	require.ErrorIs(t, err, openssl.ErrWriteAfterShutdown)
	require.NoError(t, ps.received(request))
	end := ps.end()
	if err := ps.send(response); err != nil {
		// The peer stops at our close_notify (s_client exits): record it.
		require.NotEqual(t, endOpen, end)
		return "stops at our close_notify (reads it as " + string(end) + "): no half-close"
	}
	require.Equal(t, response, readN(t, c, len(response)))
	if err := ps.closeNotify(); errors.Is(err, errUnsupported) {
		return "answers after our CloseWrite, cannot send close_notify"
	} else {
		require.NoError(t, err)
	}
	got, err := readErr(t, c)
	require.Equal(t, "", got)
	require.Equal(t, io.EOF, err)
	return "answers after our CloseWrite"
}

// 4: the peer keeps sending after our close_notify (16 sends of 64 KiB of
// lines), then answers. Shutdown reads and discards all of it: it returns
// nil and DiscardedBytes is exactly what the peer sent. Peers that answer
// by themselves, or end the connection, as soon as they read our alert
// cannot send afterwards: that is recorded.
func peerSendsAfterOurCloseNotify(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
		require.Contains(t, []string{"ErrTruncated", "ECONNRESET"}, tlstest.ErrName(serr), "Shutdown: %v", serr)
		return fmt.Sprintf("reads it as %s, sends nothing after it, never answers: our Shutdown gets %s", end, tlstest.ErrName(serr))
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

// 5: the peer closes TCP without close_notify at a record boundary. OpenSSL
// tells that from a close_notify: ErrTruncated.
func peerFINScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, ps.closeTCP())
	got, err := readErr(t, c)
	require.Equal(t, "", got)
	require.ErrorIs(t, err, openssl.ErrTruncated)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	// A Shutdown now reports the same fatal error, without calling OpenSSL.
	require.ErrorIs(t, c.Shutdown(boundedCtx(t, wait)), openssl.ErrTruncated)
	return ""
}

// 6: the peer sends a line, then the relay cuts the next record with FIN
// cutOffset bytes into it. Our Read returns the first line, then
// ErrTruncated (io.ErrUnexpectedEOF too); Shutdown reports the same.
// OpenSSL sends the peer a fatal decode_error alert for the cut record, and
// after the fatal error our Close sends no close_notify.
func finMidRecord(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
func relayRST(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	readDone := readAsync(t, c)
	require.NoError(t, ps.reset())
	err := <-readDone
	require.ErrorIs(t, err, syscall.ECONNRESET)
	require.ErrorIs(t, c.Shutdown(boundedCtx(t, wait)), syscall.ECONNRESET)
	require.NoError(t, c.Close())
	end := ps.end()
	return "a reset made by the relay: our Read gets ECONNRESET, the peer reads it as " + string(end)
}

// 7: the peer resets TCP while we read.
func peerRSTScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	readDone := readAsync(t, c)
	if err := ps.reset(); errors.Is(err, errUnsupported) {
		// An expired deadline wakes the Read without touching the peer
		// (a Close would send close_notify, and the peer could react).
		require.NoError(t, c.SetReadDeadline(time.Now()))
		require.ErrorIs(t, <-readDone, os.ErrDeadlineExceeded)
		return "cannot reset on demand"
	} else {
		require.NoError(t, err)
	}
	require.ErrorIs(t, <-readDone, syscall.ECONNRESET)
	return "resets: our Read gets ECONNRESET"
}

func peerRSTWhileWriting(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	chunk := make([]byte, 64<<10)
	started := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		close(started)
		// Bounded: 1024 chunks (64 MiB); a reset ends it long before.
		for range 1024 {
			if _, err := c.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	<-started
	if err := ps.reset(); errors.Is(err, errUnsupported) {
		c.Close() // ends the writer
		<-wrote
		return ""
	} else {
		require.NoError(t, err)
	}
	err := <-wrote
	require.Error(t, err, "64 MiB went through a reset connection")
	require.True(t, isResetErr(err), "Write after the peer's RST: %v", err)
	return "our Write gets " + tlstest.ErrName(err)
}

func peerRSTWhileShuttingDown(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	// Our alert goes out first; a peer that answers by itself cannot be
	// made to reset instead, and says so below.
	r, err := c.ShutdownOnce()
	require.NoError(t, err)
	require.Equal(t, openssl.ShutdownSent, r)
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(boundedCtx(t, wait)) }()
	if err := ps.reset(); errors.Is(err, errUnsupported) {
		// An expired deadline ends the wait at once.
		require.NoError(t, c.SetDeadline(time.Now()))
		<-done
		return ""
	} else {
		require.NoError(t, err)
	}
	err = <-done
	require.True(t, isResetErr(err), "Shutdown after the peer's RST: %v", err)
	require.False(t, errors.Is(err, openssl.ErrShutdownTimeout))
	return "our Shutdown gets " + tlstest.ErrName(err)
}

// 8: the peer never answers and never closes: Shutdown is bounded by its
// context, the Conn closes, and nothing is left running.
func neverAnswersScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, ps.pause())
	const timeout = 300 * time.Millisecond
	start := time.Now()
	err := c.Shutdown(boundedCtx(t, timeout))
	took := time.Since(start)
	require.ErrorIs(t, err, openssl.ErrShutdownTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, took, timeout+3*time.Second)
	st := c.ShutdownState()
	require.True(t, st.Sent() && !st.Received(), "ShutdownState %v", st)
	require.NoError(t, c.Close())
	require.NoError(t, ps.resume())
	end := ps.end()
	return "after resuming, reads our close_notify as " + string(end)
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
func peerStopsReading(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
		n, err := tlstest.FillRaw(tcp)
		require.NoError(t, err)
		filled = n
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

	steps := tlstest.Steps{Conn: c, Max: maxShutdownSteps}
	_, first := steps.Once()
	resumed = true
	require.NoError(t, ps.resume())
	// Peers that read only when asked (Python), or echo what they read
	// (gnutls-serv), need received to run meanwhile.
	received := make(chan error, 1)
	go func() { received <- ps.received("ping from us\n" + payload) }()
	if deterministic {
		require.Equal(t, "-1/WANT_WRITE", steps.Seq[0], "a full pipe must make the first ShutdownOnce wait")
	}
	if errors.Is(first, openssl.ErrWantWrite) {
		require.NoError(t, c.Retry(boundedCtx(t, wait), steps.Step), "sequence %v", steps.Seq)
		requireShape(t, steps.Seq, "-1/WANT_WRITE", "-1/WANT_WRITE", "0")
	} else {
		require.NoError(t, first)
		require.Equal(t, []string{"0"}, steps.Seq)
	}
	st := c.ShutdownState()
	require.True(t, st.Sent() && !st.Received(), "ShutdownState %v", st)
	require.NoError(t, <-received, "the peer must receive every byte we wrote")

	answered := answerAsync(ps)
	serr := c.Shutdown(boundedCtx(t, wait))
	a := <-answered
	if errors.Is(a.err, errUnsupported) {
		require.ErrorIs(t, serr, openssl.ErrTruncated)
	} else {
		require.NoError(t, a.err)
		require.NoError(t, serr)
	}
	end := ps.end()
	t.Logf("send queue after filling: %d bytes (raw filler %d); ShutdownOnce %v; peer end %s", queued, filled, steps.Seq, end)
	if deterministic {
		require.Equal(t, filled, stalled.s.skippedBytes(), "the peer must receive every raw byte we wrote")
		return "stopped (its socket unread, buffers of 4 KiB): ShutdownOnce -1/WANT_WRITE until it reads again, then 0; receives all we wrote, reads it as " + string(end)
	}
	how := "our close_notify meets the full buffer: ShutdownOnce -1/WANT_WRITE until the peer resumes, then 0"
	if steps.Seq[0] == "0" {
		how = "the kernel queues our close_notify behind the unread data: ShutdownOnce 0 at once"
	}
	return how + "; receives all we wrote, reads it as " + string(end)
}

// 10: the peer's close_notify and our Shutdown start at the same instant
// (both goroutines wait on one channel). Our Shutdown returns nil, our Read
// then returns exactly io.EOF, and ShutdownState has both flags. A peer that
// cannot send close_notify first is asked to answer instead.
func bothShutDownAtOnce(t *testing.T, c *openssl.Conn, ps peerSide) string {
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

// shutdownMidHandshake is the first half of scenario 11, run by handshake
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

// 11: shutdown requested during the handshake. handshake has checked that
// ShutdownOnce, Shutdown and CloseWrite fail with ErrHandshakeIncomplete
// and send nothing, before and during our handshake, and that the
// handshake then completed; data flows both ways and a normal shutdown
// (scenario 1) works.
func shutdownDuringHandshake(t *testing.T, c *openssl.Conn, ps peerSide) string {
	require.True(t, c.ConnectionState().HandshakeComplete)
	require.Zero(t, c.ShutdownState())
	return "sees nothing of our early shutdown calls; then " + weShutDownFirst(t, c, ps)
}

// 12: a crypto/tls peer writes its last data and its close_notify with one
// write(2) (connectCorked), so both arrive in one TCP segment (loopback, far
// below the MTU). Our Read returns the data, then exactly io.EOF.
func closeNotifyInDataSegment(t *testing.T, c *openssl.Conn, ps peerSide) string {
	g := ps.(*corkedGoSide)
	exchangeLines(t, c, ps)

	const last = "the last line, with the close_notify behind it\n"
	g.cc.cork()
	require.NoError(t, g.send(last))
	require.NoError(t, g.tc.CloseWrite())
	n, err := g.cc.uncork()
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

// 15: quiet close: no alert; the peer sees TCP EOF without close_notify.
func quietCloseScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.Close())
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "quiet shutdown sets both flags: %v", st)
	end := ps.end()
	require.Contains(t, []peerEnd{endTruncated, endEOF, endUnknown}, end)
	return "reads it as " + string(end)
}

// 16: SetLinger(0): Close sends no alert, the peer sees RST.
func lingerZeroScenario(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.SetLinger(0))
	require.NoError(t, c.Close())
	end := ps.end()
	require.Contains(t, []peerEnd{endReset, endUnknown}, end)
	return "reads it as " + string(end)
}

// 17: lingering close with unread input. The peer sends data we never read,
// we write and Close with ClosePolicy{Lingering: true}: the peer receives
// everything we wrote and sees no reset.
func lingeringCloseUnreadInput(t *testing.T, c *openssl.Conn, ps peerSide) string {
	return closeWithUnreadInput(t, c, ps, true)
}

// 17, compared: the same with the default policy, whose close(2) with
// unread input makes the kernel send RST. What the peer saw is recorded.
func defaultCloseUnreadInput(t *testing.T, c *openssl.Conn, ps peerSide) string {
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

	var answered <-chan answerResult // nil unless lingering
	if lingering {
		// A well-behaved peer answers our close_notify and closes, which
		// ends the lingering.
		answered = answerAsync(ps)
	}
	start := time.Now()
	cerr := c.Close()
	took := time.Since(start)
	require.Less(t, took, lingerTimeout+closeMargin, "Close took %v", took)
	var a answerResult
	if lingering {
		a = <-answered
	}
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
	return fmt.Sprintf("Lingering: %s, reads the end as %s, our Close returns %s", got, end, tlstest.ErrName(cerr))
}

// 18: DrainSendQueue with a slow reader. The peer pauses; we write 512 KiB
// in a goroutine, which blocks once the peer's receive window and our
// (shrunk) send buffer are full; the peer resumes; Close, with
// DrainSendQueue, returns nil once the kernel's send queue is empty, and
// the peer has received every byte.
func drainSendQueueSlowReader(t *testing.T, c *openssl.Conn, ps peerSide) string {
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

// 19: Close with WaitForPeer: the bidirectional exchange completes inside
// Close when the peer answers.
func waitForPeerPolicy(t *testing.T, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	answered := answerAsync(ps)
	cerr := c.Close()
	if a := <-answered; errors.Is(a.err, errUnsupported) {
		// The peer never answers: Close reports the truncation; the
		// socket is closed anyway.
		require.ErrorIs(t, cerr, openssl.ErrTruncated)
		return "never answers: Close with WaitForPeer returns ErrTruncated"
	} else {
		require.NoError(t, a.err)
	}
	require.NoError(t, cerr)
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "ShutdownState after Close %v", st)
	return ""
}

// 20: Close while another goroutine is blocked in Read (the peer is idle,
// and paused so that it cannot answer the alert Close sends):
// the Read returns an error wrapping net.ErrClosed, and Close returns nil
// within its Timeout.
func closeWhileReadBlocked(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
func closeWhileWriteBlocked(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
func closeWhileShutdownBlocked(t *testing.T, c *openssl.Conn, ps peerSide) string {
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
