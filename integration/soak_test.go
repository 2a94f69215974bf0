package integration_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

const (
	// soakConcurrency is how many connections TestSoak runs at once.
	soakConcurrency = 64
	// soakSeed seeds the choice of every connection's peer, policy, role,
	// version and data: connection i always gets the same ones.
	soakSeed = 0x5eed
	// soakNeverTimeout is the ClosePolicy Timeout (and the Shutdown
	// context) of the connections whose peer never answers and whose close
	// waits for it: they end at this timeout.
	soakNeverTimeout = 200 * time.Millisecond
	// soakMargin is added to a close's timeout to make its upper bound: it
	// proves boundedness on a loaded machine, not speed.
	soakMargin = 3 * time.Second
	// soakKeepSending is how much the peerKeepsSending peer sends after our
	// close_notify before it answers.
	soakKeepSending = 32 << 10
	// soakMaxFailures stops the run early when something is broken for
	// every connection.
	soakMaxFailures = 20
	// soakHeapSlack is how much more heap may be in use after the run than
	// before it, both measured after a garbage collection.
	soakHeapSlack = 32 << 20
)

// peerBehaviour is what the crypto/tls peer of one soak connection does
// once both sides exchanged their data.
type peerBehaviour int

const (
	// peerAnswers reads until our close_notify, then closes with its own.
	peerAnswers peerBehaviour = iota
	// peerClosesSilently reads until our close_notify, then closes TCP
	// without sending its own. It has read everything by then, so its
	// kernel sends FIN, not RST.
	peerClosesSilently
	// peerClosesFirst closes TCP without close_notify right after the
	// exchange (it has read our data, TLS 1.3 tickets included, so its
	// kernel sends FIN): our Read sees the truncation before we close.
	peerClosesFirst
	// peerNeverAnswers reads nothing more and keeps its socket open until
	// our side has closed; a close that waits for it ends at its timeout.
	peerNeverAnswers
	// peerResets closes with SO_LINGER 0 right after the exchange: its
	// kernel sends RST, which our Read sees before we close.
	peerResets
	// peerKeepsSending reads until our close_notify, sends soakKeepSending
	// more bytes, then closes with its own close_notify.
	peerKeepsSending
	numPeerBehaviours
)

var peerBehaviourNames = [...]string{
	peerAnswers:        "answers",
	peerClosesSilently: "closes silently",
	peerClosesFirst:    "closes first",
	peerNeverAnswers:   "never answers",
	peerResets:         "resets",
	peerKeepsSending:   "keeps sending",
}

func (b peerBehaviour) String() string { return peerBehaviourNames[b] }

// closeAction is how we end a soak connection: Close with one of the
// ClosePolicy kinds, or Shutdown and then Close.
type closeAction int

const (
	closeDefault closeAction = iota
	closeWaitForPeer
	closeLingering
	closeDrainSendQueue
	closeQuiet
	closeShutdown
	numCloseActions
)

var closeActionNames = [...]string{
	closeDefault:        "default",
	closeWaitForPeer:    "WaitForPeer",
	closeLingering:      "Lingering",
	closeDrainSendQueue: "DrainSendQueue",
	closeQuiet:          "Quiet",
	closeShutdown:       "Shutdown",
}

func (a closeAction) String() string { return closeActionNames[a] }

// waits reports whether the action waits for the peer's close_notify (or,
// for Lingering, for its TCP close).
func (a closeAction) waits() bool {
	return a == closeWaitForPeer || a == closeLingering || a == closeShutdown
}

// soakCase is one soak connection, made from its index alone.
type soakCase struct {
	index   int
	weServe bool // our Conn is the server, the crypto/tls peer the client
	v       version
	peer    peerBehaviour
	action  closeAction
	ours    []byte // what our Conn writes during the exchange
	theirs  []byte // what the peer writes during the exchange
}

func newSoakCase(i int) soakCase {
	rng := rand.New(rand.NewPCG(soakSeed, uint64(i)))
	c := soakCase{
		index:   i,
		weServe: rng.IntN(2) == 1,
		v:       versions[rng.IntN(len(versions))],
		peer:    peerBehaviour(rng.IntN(int(numPeerBehaviours))),
		action:  closeAction(rng.IntN(int(numCloseActions))),
		ours:    make([]byte, 1<<10+rng.IntN(7<<10)),
		theirs:  make([]byte, 1<<10+rng.IntN(7<<10)),
	}
	var seed [32]byte
	for j := range seed {
		seed[j] = byte(rng.Uint32())
	}
	data := rand.NewChaCha8(seed)
	data.Read(c.ours)
	data.Read(c.theirs)
	return c
}

func (c soakCase) String() string {
	role := "client"
	if c.weServe {
		role = "server"
	}
	return fmt.Sprintf("connection %d (seed %#x): we are %s, %s, peer %s, close %s",
		c.index, soakSeed, role, c.v.name, c.peer, c.action)
}

// timeout is the ClosePolicy Timeout, and the Shutdown context's: short
// where the close must end at it (a peer that never answers), the default
// everywhere else, where the close must end by itself.
func (c soakCase) timeout() time.Duration {
	if c.peer == peerNeverAnswers && c.action.waits() {
		return soakNeverTimeout
	}
	return openssl.DefaultCloseTimeout
}

func (c soakCase) policy() openssl.ClosePolicy {
	t := c.timeout()
	switch c.action {
	case closeWaitForPeer:
		return openssl.ClosePolicy{WaitForPeer: true, Timeout: t}
	case closeLingering:
		return openssl.ClosePolicy{Lingering: true, Timeout: t}
	case closeDrainSendQueue:
		return openssl.ClosePolicy{DrainSendQueue: true, Timeout: t}
	case closeQuiet:
		return openssl.ClosePolicy{Quiet: true, Timeout: t}
	}
	return openssl.ClosePolicy{} // default, and the Close after Shutdown
}

// fatal reports whether our Read saw the peer break the connection before
// we closed: OpenSSL then forbids further calls, so Close sends nothing.
func (c soakCase) fatal() bool { return c.peer == peerClosesFirst || c.peer == peerResets }

// wantErr is the error identity of the close: of Shutdown for the Shutdown
// action (the Close after it returns nil), of Close otherwise. nil means no
// error.
func (c soakCase) wantErr() error {
	switch c.peer {
	case peerClosesSilently:
		if c.action == closeWaitForPeer || c.action == closeShutdown {
			return openssl.ErrTruncated
		}
		// Lingering takes the TCP close it waits for, close_notify or not.
	case peerClosesFirst:
		if c.action == closeShutdown {
			return openssl.ErrTruncated // the stored error of the Read
		}
	case peerResets:
		if c.action == closeShutdown {
			return syscall.ECONNRESET
		}
	case peerNeverAnswers:
		if c.action.waits() {
			return openssl.ErrShutdownTimeout
		}
	}
	return nil
}

// wantDiscarded is DiscardedBytes after the close.
func (c soakCase) wantDiscarded() int64 {
	if c.peer == peerKeepsSending && c.action.waits() {
		return soakKeepSending
	}
	return 0
}

// peerClean reports whether the peer ends with close_notify after reading
// ours, and our close reads it: then everything the peer wrote after our
// close_notify must arrive, and its Close must succeed.
func (c soakCase) peerClean() bool {
	return (c.peer == peerAnswers || c.peer == peerKeepsSending) && c.action.waits()
}

// soakCtxs holds the Ctx and crypto/tls Config of each version and role,
// shared by all connections as a server shares them.
type soakCtxs struct {
	ourClient, ourServer     map[uint16]*openssl.Ctx
	theirClient, theirServer map[uint16]*tls.Config
}

func newSoakCtxs(t *testing.T) soakCtxs {
	s := soakCtxs{
		ourClient: map[uint16]*openssl.Ctx{}, ourServer: map[uint16]*openssl.Ctx{},
		theirClient: map[uint16]*tls.Config{}, theirServer: map[uint16]*tls.Config{},
	}
	for _, v := range versions {
		s.ourClient[v.v] = clientCtx(t, v)
		s.ourServer[v.v] = serverCtx(t, v)
		s.theirClient[v.v] = tlstest.PeerConfig(pki, v.v, tlstest.WeServer)
		s.theirServer[v.v] = tlstest.PeerConfig(pki, v.v, tlstest.WeClient)
	}
	return s
}

// latch is a channel closed once.
type latch struct {
	once sync.Once
	ch   chan struct{}
}

func newLatch() *latch { return &latch{ch: make(chan struct{})} }

func (l *latch) open() { l.once.Do(func() { close(l.ch) }) }

// soakResult is what one connection reports to the run's figures.
type soakResult struct {
	took time.Duration // how long the close (Shutdown and Close) took
	err  error         // what went wrong, or nil
}

// TestSoak runs soakConns connections, soakConcurrency at once, between our
// Conn (as client and as server, TLS 1.2 and 1.3) and in-process crypto/tls
// peers that behave well or misbehave (peerBehaviour), each ended with one
// of the close policies or Shutdown (closeAction), all chosen from the
// connection's index. Each connection checks the bytes of the exchange on
// both sides, the bound of its close, the error identity of its close, the
// bytes the peer sent after our close_notify, and what the peer read. At
// the end no SSL object, goroutine or significant heap is left over. The
// figures are printed on one line.
func TestSoak(t *testing.T) {
	ctxs := newSoakCtxs(t)
	base := takeBaseline()
	start := time.Now()

	var (
		mu       sync.Mutex
		failures []string
		nfail    int
		worst    [numCloseActions]time.Duration
		count    [numCloseActions]int
		ran      int
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	record := func(c soakCase, r soakResult) {
		mu.Lock()
		defer mu.Unlock()
		ran++
		count[c.action]++
		worst[c.action] = max(worst[c.action], r.took)
		if r.err != nil {
			nfail++
			if len(failures) < soakMaxFailures {
				failures = append(failures, fmt.Sprintf("%v: %v", c, r.err))
			}
			if nfail >= soakMaxFailures {
				stopOnce.Do(func() { close(stop) })
			}
		}
	}

	feed := make(chan int)
	go func() {
		defer close(feed)
		for i := range soakConns {
			select {
			case feed <- i:
			case <-stop:
				return
			}
		}
	}()
	var workers sync.WaitGroup
	for range soakConcurrency {
		// Each worker has its own listener, so that the connection it
		// accepts is the one it dialed.
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		workers.Go(func() {
			defer ln.Close()
			for i := range feed {
				c := newSoakCase(i)
				record(c, soakOne(c, ln, ctxs))
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		workers.Wait()
		close(finished)
	}()
	// Every wait of a connection is bounded; this bounds the run as a
	// whole, in case something is not.
	hang := time.NewTimer(5 * time.Minute)
	defer hang.Stop()
	select {
	case <-finished:
	case <-hang.C:
		stopOnce.Do(func() { close(stop) })
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("the soak did not finish within 5 minutes; goroutines:\n%s", stacks.String())
	}
	elapsed := time.Since(start)

	for _, f := range failures {
		t.Error(f)
	}
	if nfail > len(failures) {
		t.Errorf("%d more connections failed", nfail-len(failures))
	}

	sslAfter, _ := openssl.LiveObjects()
	goroutinesAfter := base.settleGoroutines()
	heapAfter := heapInuse()

	var closes []string
	for a := range numCloseActions {
		closes = append(closes, fmt.Sprintf("%v=%v (%d)", a, worst[a].Round(time.Millisecond), count[a]))
	}
	figures := fmt.Sprintf("soak: %d connections (%d concurrent, %d failed) in %v: %.0f connections/s; "+
		"worst close per policy (count): %s; heap in use %.1f MiB before, %.1f MiB after; "+
		"SSL objects %d before, %d after; goroutines %d before, %d after",
		ran, soakConcurrency, nfail, elapsed.Round(time.Millisecond), float64(ran)/elapsed.Seconds(),
		strings.Join(closes, " "), mib(base.heapInuse), mib(heapAfter),
		base.ssl, sslAfter, base.goroutines, goroutinesAfter)
	t.Log(figures)
	fmt.Fprintln(os.Stdout, figures)

	require.Equal(t, base.ssl, sslAfter, "SSL objects alive after every Conn was closed")
	require.LessOrEqual(t, goroutinesAfter, base.goroutines, "goroutines left running")
	require.LessOrEqual(t, heapAfter, base.heapInuse+soakHeapSlack, "heap in use after GC")
	if nfail == 0 {
		require.Equal(t, soakConns, ran, "connections run")
	}
}

// soakOne runs connection c over a TCP pair from ln: handshake, exchange,
// the peer's behaviour and our close, then checks them.
func soakOne(c soakCase, ln *net.TCPListener, ctxs soakCtxs) soakResult {
	d := net.Dialer{Timeout: wait}
	dialed, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return soakResult{err: fmt.Errorf("dial: %w", err)}
	}
	ln.SetDeadline(time.Now().Add(wait))
	accepted, err := ln.AcceptTCP()
	if err != nil {
		dialed.Close()
		return soakResult{err: fmt.Errorf("accept: %w", err)}
	}
	oursTCP, theirsTCP := dialed.(*net.TCPConn), accepted
	var conn *openssl.Conn
	var peer *tls.Conn
	if c.weServe {
		oursTCP, theirsTCP = accepted, dialed.(*net.TCPConn)
		conn, err = openssl.Server(oursTCP, ctxs.ourServer[c.v.v])
		peer = tls.Client(theirsTCP, ctxs.theirClient[c.v.v])
	} else {
		conn, err = openssl.Client(oursTCP, ctxs.ourClient[c.v.v])
		peer = tls.Server(theirsTCP, ctxs.theirServer[c.v.v])
	}
	if err != nil {
		oursTCP.Close()
		theirsTCP.Close()
		return soakResult{err: fmt.Errorf("new Conn: %w", err)}
	}

	exchanged, ourDone := newLatch(), newLatch()
	peerDone := make(chan peerResult, 1)
	go func() { peerDone <- runPeer(c, peer, theirsTCP, exchanged.ch, ourDone.ch) }()

	res := runOurs(c, conn, exchanged)
	conn.Close() // after a failure; a second Close does nothing
	exchanged.open()
	ourDone.open()

	var pr peerResult
	select {
	case pr = <-peerDone:
	case <-time.After(3 * wait): // the peer's socket deadline is 2*wait
		theirsTCP.Close()
		return soakResult{took: res.took, err: errors.Join(res.err, errors.New("the peer did not finish"))}
	}
	if res.err != nil || pr.err != nil {
		res.err = errors.Join(res.err, pr.err)
		return res
	}
	switch c.peer {
	case peerAnswers, peerClosesSilently, peerKeepsSending:
		// It read until our close_notify (or, after a quiet close, our
		// FIN at a record boundary), which crypto/tls reports as io.EOF.
		if pr.afterClose != nil || pr.extra != 0 {
			res.err = fmt.Errorf("after the exchange the peer read %d more bytes, then %v; want io.EOF at once",
				pr.extra, pr.afterClose)
		}
	}
	if c.peerClean() {
		if pr.sendErr != nil || pr.closeErr != nil {
			res.err = fmt.Errorf("the peer, whose close_notify we waited for, failed: sending %v, closing %v",
				pr.sendErr, pr.closeErr)
		}
	}
	return res
}

// runOurs is our side of connection c: handshake, exchange, and close.
func runOurs(c soakCase, conn *openssl.Conn, exchanged *latch) (res soakResult) {
	conn.SetClosePolicy(c.policy())
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		return soakResult{err: fmt.Errorf("set deadline: %w", err)}
	}
	hctx, cancel := context.WithTimeout(context.Background(), wait)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return soakResult{err: fmt.Errorf("handshake: %w", err)}
	}
	if n, err := conn.Write(c.ours); err != nil {
		return soakResult{err: fmt.Errorf("write: %d of %d bytes: %w", n, len(c.ours), err)}
	}
	got := make([]byte, len(c.theirs))
	if n, err := io.ReadFull(conn, got); err != nil {
		return soakResult{err: fmt.Errorf("read: %d of %d bytes: %w", n, len(c.theirs), err)}
	}
	if !bytes.Equal(got, c.theirs) {
		return soakResult{err: errors.New("the bytes we read differ from those the peer wrote")}
	}
	exchanged.open()

	switch c.peer {
	case peerClosesFirst:
		if _, err := conn.Read(got[:1]); !errors.Is(err, openssl.ErrTruncated) {
			return soakResult{err: fmt.Errorf("read after the peer's silent close: %v; want ErrTruncated", err)}
		}
	case peerResets:
		if _, err := conn.Read(got[:1]); !errors.Is(err, syscall.ECONNRESET) {
			return soakResult{err: fmt.Errorf("read after the peer's reset: %v; want ECONNRESET", err)}
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return soakResult{err: fmt.Errorf("clear deadline: %w", err)}
	}

	start := time.Now()
	var shutdownErr error
	if c.action == closeShutdown {
		sctx, cancel := context.WithTimeout(context.Background(), c.timeout())
		shutdownErr = conn.Shutdown(sctx)
		cancel()
	}
	closeErr := conn.Close()
	res.took = time.Since(start)

	var errs []error
	if bound := c.timeout() + soakMargin; res.took > bound {
		errs = append(errs, fmt.Errorf("the close took %v, more than its bound %v", res.took, bound))
	}
	if c.action == closeShutdown {
		errs = append(errs, checkErr("Shutdown", shutdownErr, c.wantErr()), checkErr("Close after Shutdown", closeErr, nil))
	} else {
		errs = append(errs, checkErr("Close", closeErr, c.wantErr()))
	}
	if got, want := conn.DiscardedBytes(), c.wantDiscarded(); got != want {
		errs = append(errs, fmt.Errorf("DiscardedBytes %d, want %d", got, want))
	}
	if !c.fatal() {
		st := conn.ShutdownState()
		wantReceived := c.action == closeQuiet || c.peerClean()
		if !st.Sent() || st.Received() != wantReceived {
			errs = append(errs, fmt.Errorf("ShutdownState %v, want sent=true received=%t", st, wantReceived))
		}
	}
	res.err = errors.Join(errs...)
	return res
}

// checkErr returns an error when err is not want (nil: no error) by
// errors.Is, or is not an *openssl.Error.
func checkErr(what string, err, want error) error {
	if want == nil {
		if err != nil {
			return fmt.Errorf("%s: %v; want nil", what, err)
		}
		return nil
	}
	var oe *openssl.Error
	if !errors.Is(err, want) || !errors.As(err, &oe) {
		return fmt.Errorf("%s: %v (%T); want an *openssl.Error wrapping %v", what, err, err, want)
	}
	return nil
}

// peerResult is what the crypto/tls peer of a soak connection observed.
type peerResult struct {
	err        error // its own part failed: handshake, exchange
	extra      int64 // bytes it read after the exchange
	afterClose error // the error that ended that read; nil for io.EOF
	sendErr    error // peerKeepsSending: writing soakKeepSending bytes
	closeErr   error // its tls Close
}

// runPeer is the crypto/tls side of connection c; tcp is its socket.
// exchanged opens once our side read the peer's data, ourDone once our
// side has closed.
func runPeer(c soakCase, tc *tls.Conn, tcp *net.TCPConn, exchanged, ourDone <-chan struct{}) (r peerResult) {
	defer tcp.Close() // the raw close of the silent peers; harmless after tc.Close
	if err := tc.SetDeadline(time.Now().Add(2 * wait)); err != nil {
		r.err = fmt.Errorf("peer: set deadline: %w", err)
		return r
	}
	if err := tc.Handshake(); err != nil {
		r.err = fmt.Errorf("peer: handshake: %w", err)
		return r
	}
	got := make([]byte, len(c.ours))
	if n, err := io.ReadFull(tc, got); err != nil {
		r.err = fmt.Errorf("peer: read: %d of %d bytes: %w", n, len(c.ours), err)
		return r
	}
	if !bytes.Equal(got, c.ours) {
		r.err = errors.New("peer: the bytes it read differ from those we wrote")
		return r
	}
	if n, err := tc.Write(c.theirs); err != nil {
		r.err = fmt.Errorf("peer: write: %d of %d bytes: %w", n, len(c.theirs), err)
		return r
	}

	switch c.peer {
	case peerClosesFirst:
		<-exchanged
		return r
	case peerResets:
		<-exchanged
		if err := tcp.SetLinger(0); err != nil {
			r.err = fmt.Errorf("peer: SO_LINGER 0: %w", err)
		}
		return r
	case peerNeverAnswers:
		<-ourDone
		return r
	}
	r.extra, r.afterClose = io.Copy(io.Discard, tc)
	switch c.peer {
	case peerAnswers:
		r.closeErr = tc.Close()
	case peerKeepsSending:
		_, r.sendErr = tc.Write(make([]byte, soakKeepSending))
		r.closeErr = tc.Close()
	}
	return r
}

// baseline is what a long test compares with at its end.
type baseline struct {
	goroutines int
	ssl        int64
	heapInuse  uint64
}

func takeBaseline() baseline {
	ssl, _ := openssl.LiveObjects()
	return baseline{goroutines: runtime.NumGoroutine(), ssl: ssl, heapInuse: heapInuse()}
}

// settleGoroutines waits, at most wait long, until no more goroutines run
// than at b (goroutines that returned a moment ago may still be counted),
// and returns the last count.
func (b baseline) settleGoroutines() int {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := runtime.NumGoroutine()
		if n <= b.goroutines || time.Now().After(deadline) {
			return n
		}
		<-tick.C
	}
}

// heapInuse returns the heap in use after a garbage collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
