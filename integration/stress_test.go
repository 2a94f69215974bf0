package integration_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

const (
	// stressConns connections are shared by stressGoroutines goroutines
	// each, every goroutine making at most stressIterations calls.
	stressConns      = 8
	stressGoroutines = 16
	stressIterations = 200
	// stressBudget stops the goroutines' loops early on a slow machine;
	// stressBound fails the test when they have not all returned by then.
	stressBudget = 30 * time.Second
	stressBound  = 2 * time.Minute
	// The deadlines the goroutines set are between stressMinDeadline and
	// stressMaxDeadline away in the first half of the calls on a
	// connection: far enough for data to flow (a Write whose deadline
	// passed fails for good), near enough to bound every Read and Write.
	// In the second half they are between stressMinLateDeadline and
	// stressMinDeadline away, and expire while calls are blocked.
	stressMinLateDeadline = 10 * time.Millisecond
	stressMinDeadline     = 500 * time.Millisecond
	stressMaxDeadline     = time.Second
	// stressShutdownTimeout bounds each Shutdown's context, and the close
	// policies' Timeout.
	stressShutdownTimeout = 20 * time.Millisecond
	stressCloseTimeout    = 100 * time.Millisecond
	// stressMaxReports is how many bad results the test reports in full.
	stressMaxReports = 20
)

// The calls TestStressSharedConns makes.
const (
	opRead = iota
	opWrite
	opSetDeadline
	opSetReadDeadline
	opSetWriteDeadline
	opShutdownState
	opConnectionState
	opShutdownOnce
	opShutdown
	opClose
	numStressOps
)

var stressOps = [numStressOps]string{
	"Read", "Write", "SetDeadline", "SetReadDeadline", "SetWriteDeadline",
	"ShutdownState", "ConnectionState", "ShutdownOnce", "Shutdown", "Close",
}

// stressWeights are the odds of each call for the three kinds of
// goroutine, early (the first half of the calls on a connection) and late,
// when the calls that end the connection join in. Readers and writers keep
// data flowing through the echo peer; the mixed goroutines make every call. Were every goroutine to make every call, all would soon
// queue for Read, which waits for data that no goroutine writes any more.
var stressWeights = [numStressKinds][2][numStressOps]int{
	stressReader: {
		{opRead: 70, opSetReadDeadline: 10, opShutdownState: 10, opConnectionState: 10},
		{opRead: 70, opSetReadDeadline: 10, opShutdownState: 10, opConnectionState: 10, opShutdownOnce: 3, opShutdown: 3},
	},
	stressWriter: {
		{opWrite: 70, opSetWriteDeadline: 10, opShutdownState: 10, opConnectionState: 10},
		{opWrite: 70, opSetWriteDeadline: 10, opShutdownState: 10, opConnectionState: 10, opShutdownOnce: 3, opShutdown: 3},
	},
	stressMixed: {
		{opRead: 20, opWrite: 20, opSetDeadline: 15, opSetReadDeadline: 10, opSetWriteDeadline: 10,
			opShutdownState: 10, opConnectionState: 10},
		{opRead: 20, opWrite: 20, opSetDeadline: 15, opSetReadDeadline: 10, opSetWriteDeadline: 10,
			opShutdownState: 10, opConnectionState: 10, opShutdownOnce: 5, opShutdown: 5, opClose: 3},
	},
}

// The kinds of goroutine: of every four goroutines on a connection, one
// reads, one writes, and two make every call.
const (
	stressReader = iota
	stressWriter
	stressMixed
	numStressKinds
)

func stressKind(g int) int { return min(g%4, stressMixed) }

// pick returns a call drawn with weights' odds.
func pick(rng *rand.Rand, weights *[numStressOps]int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := rng.IntN(total)
	for op, w := range weights {
		if n < w {
			return op
		}
		n -= w
	}
	panic("unreachable")
}

// stressDeadline returns a deadline for a goroutine's early or late
// iterations.
func stressDeadline(rng *rand.Rand, late bool) time.Time {
	lo, hi := stressMinDeadline, stressMaxDeadline
	if late {
		lo, hi = stressMinLateDeadline, stressMinDeadline
	}
	return time.Now().Add(lo + time.Duration(rng.Int64N(int64(hi-lo))))
}

// stressLog collects the counts of calls and the bad results.
type stressLog struct {
	calls, errs [numStressOps]atomic.Int64

	mu      sync.Mutex
	kinds   map[string]int // "op: kind of error" -> count
	bad     []string       // the first stressMaxReports
	badSeen int
}

func (l *stressLog) report(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.badSeen++
	if len(l.bad) < stressMaxReports {
		l.bad = append(l.bad, fmt.Sprintf(format, args...))
	}
}

// check counts call op and reports err unless it is nil, io.EOF or an
// *openssl.Error.
func (l *stressLog) check(conn, op int, err error) {
	l.calls[op].Add(1)
	if err == nil {
		return
	}
	l.errs[op].Add(1)
	var oe *openssl.Error
	if err != io.EOF && !errors.As(err, &oe) {
		l.report("connection %d: %s returned an untyped error: %v (%T)", conn, stressOps[op], err, err)
	}
	l.mu.Lock()
	l.kinds[stressOps[op]+": "+errKind(err)]++
	l.mu.Unlock()
}

// errKind names the sentinel or cause err wraps, for the summary.
func errKind(err error) string {
	for _, k := range []struct {
		name string
		err  error
	}{
		{"EOF", io.EOF},
		{"closed", net.ErrClosed},
		{"write after shutdown", openssl.ErrWriteAfterShutdown},
		{"shutdown timeout", openssl.ErrShutdownTimeout},
		{"deadline", os.ErrDeadlineExceeded},
		{"truncated", openssl.ErrTruncated},
		{"reset", syscall.ECONNRESET},
		{"broken pipe", syscall.EPIPE},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	var oe *openssl.Error
	if errors.As(err, &oe) {
		if len(oe.Queue) > 0 {
			return fmt.Sprintf("%v (%s)", oe.Code, oe.Queue[0].ReasonText)
		}
		return oe.Code.String()
	}
	return fmt.Sprintf("%T", err)
}

// TestStressSharedConns has stressGoroutines goroutines per connection call
// Read, Write, Close, the deadline setters, Shutdown, ShutdownOnce,
// ShutdownState and ConnectionState at random on stressConns shared Conns
// (client and server, TLS 1.2 and 1.3, each with a close policy) whose
// crypto/tls peers echo what they read. The calls that end a connection
// (Shutdown, ShutdownOnce, Close) come in the second half of its calls, so
// that it carries data first and then goes down while the other calls
// run. Nothing may panic or hang, every error must be io.EOF or an
// *openssl.Error, and no SSL object or goroutine may be left.
func TestStressSharedConns(t *testing.T) {
	ctxs := newSoakCtxs(t)
	base := takeBaseline()
	policies := []openssl.ClosePolicy{
		{},
		{WaitForPeer: true},
		{Lingering: true},
		{DrainSendQueue: true},
		{Quiet: true},
	}

	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	conns := make([]*openssl.Conn, stressConns)
	echoes := make([]chan error, stressConns)
	for i := range conns {
		v := versions[i%len(versions)]
		weServe := i/len(versions)%2 == 1
		conn, echo := stressPair(t, ln, ctxs, v, weServe)
		conns[i], echoes[i] = conn, echo
		p := policies[i%len(policies)]
		p.Timeout = stressCloseTimeout
		conn.SetClosePolicy(p)
	}
	for _, conn := range conns {
		require.NoError(t, conn.SetDeadline(time.Now().Add(stressMaxDeadline)))
	}

	log := stressLog{kinds: map[string]int{}}
	start := time.Now()
	budget := start.Add(stressBudget)
	var wg sync.WaitGroup
	for i, conn := range conns {
		progress := new(atomic.Int64)
		for g := range stressGoroutines {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(g)))
			wg.Go(func() { hammer(i, conn, stressKind(g), progress, rng, budget, &log) })
		}
	}
	joined := make(chan struct{})
	go func() {
		wg.Wait()
		close(joined)
	}()
	hang := time.NewTimer(stressBound)
	defer hang.Stop()
	select {
	case <-joined:
	case <-hang.C:
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("the goroutines did not all return within %v; goroutines:\n%s", stressBound, stacks.String())
	}
	elapsed := time.Since(start)

	for i, conn := range conns {
		conn.Close() // those no goroutine closed; a second Close does nothing
		select {
		case <-echoes[i]:
		case <-time.After(wait):
			t.Fatalf("connection %d: the echo peer did not end after our Close", i)
		}
	}

	var summary []string
	var calls int64
	for op, name := range stressOps {
		n := log.calls[op].Load()
		calls += n
		summary = append(summary, fmt.Sprintf("%s %d (%d failed)", name, n, log.errs[op].Load()))
	}
	t.Logf("%d calls in %v: %s", calls, elapsed.Round(time.Millisecond), strings.Join(summary, ", "))
	kinds := slices.Sorted(maps.Keys(log.kinds))
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%s %d", k, log.kinds[k])
	}
	t.Logf("errors: %s", strings.Join(kinds, ", "))
	for _, b := range log.bad {
		t.Error(b)
	}
	if log.badSeen > len(log.bad) {
		t.Errorf("%d more bad results", log.badSeen-len(log.bad))
	}
	sslAfter, _ := openssl.LiveObjects()
	require.Equal(t, base.ssl, sslAfter, "SSL objects alive after every Conn was closed")
	require.LessOrEqual(t, base.settleGoroutines(), base.goroutines, "goroutines left running")
}

// stressPair returns our Conn, with its handshake done, on a TCP pair from
// ln, and starts its crypto/tls peer, which echoes until our close_notify
// or a TCP close and then closes; its error comes on the channel.
func stressPair(t *testing.T, ln *net.TCPListener, ctxs soakCtxs, v version, weServe bool) (*openssl.Conn, chan error) {
	t.Helper()
	d := net.Dialer{Timeout: wait}
	dialed, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, ln.SetDeadline(time.Now().Add(wait)))
	accepted, err := ln.AcceptTCP()
	if err != nil {
		dialed.Close()
		t.Fatal(err)
	}
	var conn *openssl.Conn
	var peer *tls.Conn
	if weServe {
		conn, err = openssl.Server(accepted, ctxs.ourServer[v.v])
		peer = tls.Client(dialed, ctxs.theirClient[v.v])
	} else {
		conn, err = openssl.Client(dialed, ctxs.ourClient[v.v])
		peer = tls.Server(accepted, ctxs.theirServer[v.v])
	}
	if err != nil {
		dialed.Close()
		accepted.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	echo := make(chan error, 1)
	go func() {
		defer peer.NetConn().Close()
		peer.SetDeadline(time.Now().Add(stressBound))
		_, err := io.Copy(peer, peer)
		peer.Close()
		echo <- err
	}()
	hctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, conn.HandshakeContext(hctx))
	return conn, echo
}

// hammer makes at most stressIterations random calls on conn, connection
// number i, with the odds of kind, until budget, and logs their results.
// progress counts the calls of all the goroutines on conn: the second half
// of them is late.
func hammer(i int, conn *openssl.Conn, kind int, progress *atomic.Int64, rng *rand.Rand, budget time.Time, log *stressLog) {
	defer func() {
		if r := recover(); r != nil {
			log.report("connection %d: panic: %v\n%s", i, r, debug.Stack())
		}
	}()
	rbuf := make([]byte, 16<<10)
	wbuf := make([]byte, 2<<10)
	for range stressIterations {
		if time.Now().After(budget) {
			return
		}
		late := progress.Add(1) > stressGoroutines*stressIterations/2
		phase := 0
		if late {
			phase = 1
		}
		op := pick(rng, &stressWeights[kind][phase])
		var err error
		switch op {
		case opRead:
			_, err = conn.Read(rbuf[:1+rng.IntN(len(rbuf))])
		case opWrite:
			_, err = conn.Write(wbuf[:1+rng.IntN(len(wbuf))])
		case opSetDeadline:
			err = conn.SetDeadline(stressDeadline(rng, late))
		case opSetReadDeadline:
			err = conn.SetReadDeadline(stressDeadline(rng, late))
		case opSetWriteDeadline:
			err = conn.SetWriteDeadline(stressDeadline(rng, late))
		case opShutdownState:
			_ = conn.ShutdownState().String()
		case opConnectionState:
			if !conn.ConnectionState().HandshakeComplete {
				log.report("connection %d: ConnectionState after the handshake: HandshakeComplete false", i)
			}
		case opShutdownOnce:
			var r openssl.ShutdownResult
			r, err = conn.ShutdownOnce()
			if (r == openssl.ShutdownFailed) != (err != nil) {
				log.report("connection %d: ShutdownOnce returned %v with error %v", i, r, err)
			}
		case opShutdown:
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.Int64N(int64(stressShutdownTimeout))))
			err = conn.Shutdown(ctx)
			cancel()
		case opClose:
			err = conn.Close()
		}
		log.check(i, op, err)
	}
}
