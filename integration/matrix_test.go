package integration_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// The shutdown matrix: every scenario against every peer, with us as client
// and as server, over TLS 1.2 and TLS 1.3. Each cell asserts exact outcomes
// on our side (ShutdownOnce sequences, errors.Is identities, bytes) and on
// the peer's (bytes received, how its reading ended). What each peer did is
// recorded and, with -matrix.readme, written into the README's table.

var matrixReadme = flag.String("matrix.readme", "", "write the observed peer table into this README file")

// role is the part this package plays in a cell.
type role string

const (
	weClient role = "client"
	weServer role = "server"
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

// peerImpl is one TLS implementation of the matrix.
type peerImpl struct {
	name string
	// roles lists the roles we can play against it.
	roles []role
	// connect starts the peer against us in role ours, and returns our Conn,
	// handshake completed, and the peer's side. Both end at cleanup.
	connect func(t *testing.T, ours role, v version, policy openssl.ClosePolicy) (*openssl.Conn, peerSide)
	// keepsReadingAfterCloseNotify is true when, after sending its
	// close_notify, the peer still reads our data (TLS half-close).
	keepsReadingAfterCloseNotify bool
}

// scenario is one row of the matrix.
type scenario struct {
	id   int
	name string
	// policy is the ClosePolicy of our Conn.
	policy openssl.ClosePolicy
	// midHandshake makes the cell start before our handshake completed:
	// ourConn runs shutdownMidHandshake before and during it.
	midHandshake bool
	// connect, when set, replaces the peer's connect for this row; it may
	// call p.connect itself.
	connect func(t *testing.T, p *peerImpl, ours role, v version, policy openssl.ClosePolicy) (*openssl.Conn, peerSide)
	// run plays the scenario and returns what the README table reports of
	// the peer for it ("" for nothing).
	run func(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string
}

type answerResult struct {
	how string
	err error
}

// observations collects, per peer and scenario, what the peer did, to fill
// the README's table.
var observations = struct {
	sync.Mutex
	m map[string]map[int][]string // peer name → scenario id → distinct observations
}{m: map[string]map[int][]string{}}

func observe(peerName string, id int, what string) {
	if what == "" {
		return
	}
	observations.Lock()
	defer observations.Unlock()
	if observations.m[peerName] == nil {
		observations.m[peerName] = map[int][]string{}
	}
	if !slices.Contains(observations.m[peerName][id], what) {
		observations.m[peerName][id] = append(observations.m[peerName][id], what)
	}
}

func TestMatrix(t *testing.T) {
	for _, p := range matrixPeers {
		for _, r := range p.roles {
			for _, v := range versions {
				for _, sc := range scenarios {
					name := fmt.Sprintf("%s/we_are_%s/%s/%02d_%s", p.name, r, v.name, sc.id, sc.name)
					t.Run(name, func(t *testing.T) {
						if sc.midHandshake {
							midHandshake.Store(t, true)
							t.Cleanup(func() { midHandshake.Delete(t) })
						}
						var c *openssl.Conn
						var ps peerSide
						if sc.connect != nil {
							c, ps = sc.connect(t, p, r, v, sc.policy)
						} else {
							c, ps = p.connect(t, r, v, sc.policy)
						}
						what := sc.run(t, p, c, ps)
						observe(p.name, sc.id, what)
					})
				}
			}
		}
	}
	if *matrixReadme != "" && !t.Failed() {
		require.NoError(t, writeReadmeTable(*matrixReadme))
	}
}

// scenarios are the rows of the matrix; the numbers are the issue's.
var scenarios = []scenario{
	{id: 1, name: "we_shut_down_first_peer_answers", run: weShutDownFirst},
	{id: 2, name: "peer_shuts_down_first", run: peerShutsDownFirst},
	{id: 3, name: "half_close_request_response", run: halfCloseScenario},
	{id: 5, name: "peer_FIN_without_close_notify", run: peerFINScenario},
	{id: 7, name: "peer_RST_while_we_read", run: peerRSTScenario},
	{id: 8, name: "peer_never_answers", run: neverAnswersScenario},
	{id: 15, name: "quiet_close", policy: openssl.ClosePolicy{Quiet: true}, run: quietCloseScenario},
	{id: 16, name: "linger_0", run: lingerZeroScenario},
	{id: 19, name: "close_policy_wait_for_peer", policy: openssl.ClosePolicy{WaitForPeer: true, Timeout: wait}, run: waitForPeerPolicy},
}

// shutdownSequence drives ShutdownOnce through Retry and returns every
// result, e.g. ["0", "-1/WANT_READ", "1"].
func shutdownSequence(t *testing.T, c *openssl.Conn, ctx context.Context) ([]string, error) {
	t.Helper()
	var seq []string
	record := func() error {
		r, err := c.ShutdownOnce()
		var e *openssl.Error
		switch {
		case err == nil:
			seq = append(seq, fmt.Sprint(int(r)))
		case errors.As(err, &e):
			seq = append(seq, fmt.Sprintf("-1/%s", e.Code.Name()))
		default:
			seq = append(seq, "-1/"+err.Error())
		}
		if len(seq) > 10000 {
			return errors.New("more than 10000 ShutdownOnce calls")
		}
		return err
	}
	// The first call returns 0 without an error; Retry takes over for the
	// calls that may have to wait.
	if err := record(); err != nil || seq[0] != "0" {
		return seq, err
	}
	err := c.Retry(ctx, record)
	return seq, err
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

func boundedCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// exchange sends a line each way and checks both arrived.
func exchangeLines(t *testing.T, c *openssl.Conn, ps peerSide) {
	t.Helper()
	const ours, theirs = "ping from us\n", "pong from the peer\n"
	_, err := c.Write([]byte(ours))
	require.NoError(t, err)
	require.NoError(t, ps.received(ours))
	require.NoError(t, ps.send(theirs))
	require.Equal(t, theirs, readN(t, c, len(theirs)))
}

// 1: we shut down first; the peer answers. The ShutdownOnce sequence is
// 0, then WANT_READ while the answer is on its way, then 1.
func weShutDownFirst(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	answered := make(chan answerResult, 1)
	go func() {
		how, err := ps.answer()
		answered <- answerResult{how, err}
	}()
	seq, err := shutdownSequence(t, c, boundedCtx(t, wait))
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
func peerShutsDownFirst(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
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
func halfCloseScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
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

// 5: the peer closes TCP without close_notify at a record boundary. OpenSSL
// tells that from a close_notify: ErrTruncated.
func peerFINScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
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

// 7: the peer resets TCP while we read.
func peerRSTScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_, err := c.Read(buf)
		readDone <- err
	}()
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

// 8: the peer never answers and never closes: Shutdown is bounded by its
// context, the Conn closes, and nothing is left running.
func neverAnswersScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
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

// 15: quiet close: no alert; the peer sees TCP EOF without close_notify.
func quietCloseScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.Close())
	st := c.ShutdownState()
	require.True(t, st.Sent() && st.Received(), "quiet shutdown sets both flags: %v", st)
	end := ps.end()
	require.Contains(t, []peerEnd{endTruncated, endEOF, endUnknown}, end)
	return "reads it as " + string(end)
}

// 16: SetLinger(0): Close sends no alert, the peer sees RST.
func lingerZeroScenario(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	require.NoError(t, c.SetLinger(0))
	require.NoError(t, c.Close())
	end := ps.end()
	require.Contains(t, []peerEnd{endReset, endUnknown}, end)
	return "reads it as " + string(end)
}

// 19: Close with WaitForPeer: the bidirectional exchange completes inside
// Close when the peer answers.
func waitForPeerPolicy(t *testing.T, p *peerImpl, c *openssl.Conn, ps peerSide) string {
	exchangeLines(t, c, ps)
	answered := make(chan answerResult, 1)
	go func() {
		how, err := ps.answer()
		answered <- answerResult{how, err}
	}()
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

// readmeColumns are the scenarios the README's table reports, with their
// headings.
var readmeColumns = []struct {
	id      int
	heading string
}{
	{1, "our close_notify (1)"},
	{2, "its close_notify (2)"},
	{3, "half-close (3)"},
	{4, "sends data after our close_notify (4)"},
	{6, "FIN inside a record, by the relay (6)"},
	{7, "RST (7)"},
	{8, "never answers, then resumes (8)"},
	{9, "stops reading: our close_notify meets a full buffer (9)"},
	{10, "both shut down at once (10)"},
	{11, "our shutdown calls during the handshake (11)"},
	{12, "close_notify in the last data's segment (12)"},
	{15, "our quiet close (15)"},
	{16, "our SetLinger(0) (16)"},
	{17, "our Lingering close with unread input (17)"},
	{18, "DrainSendQueue, slow reader (18)"},
	{20, "Close while we are blocked (20)"},
}

const (
	readmeBegin = "<!-- matrix:begin (generated by make matrix-readme) -->"
	readmeEnd   = "<!-- matrix:end -->"
)

// writeReadmeTable replaces the table between the markers of the README
// at path with what this run observed.
func writeReadmeTable(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q markers", path, readmeBegin, readmeEnd)
	}
	var b strings.Builder
	b.WriteString(readmeBegin + "\n")
	b.WriteString("| scenario |")
	for _, p := range matrixPeers {
		b.WriteString(" " + p.name + " |")
	}
	b.WriteString("\n|---|")
	for range matrixPeers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	observations.Lock()
	for _, col := range readmeColumns {
		b.WriteString("| " + col.heading + " |")
		for _, p := range matrixPeers {
			cell := strings.Join(observations.m[p.name][col.id], "; ")
			if cell == "" {
				cell = "n/a"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	observations.Unlock()
	s = s[:i] + b.String() + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
