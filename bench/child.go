package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ours "github.com/closenotify/openssl"
	gossl "github.com/libp2p/go-openssl"
)

// A child process runs one workload with one implementation pair and prints
// a result line; the driver starts a new one for every measurement, so that
// no run inherits another's heap, goroutines or OpenSSL state. The C
// program (cbench) speaks the same protocol.

// result is what a child reports: metric name to value, such as "MB/s",
// "allocs/op", "us/op".
type result struct {
	Metrics map[string]float64 `json:"metrics"`
	Ops     int64              `json:"ops"`
	NsPerOp float64            `json:"ns_per_op"`
}

// childSpec names the measurement a child makes.
type childSpec struct {
	Workload string        // bulk, handshake, resumed, pingpong, idle-server, idle-client
	Client   string        // Go implementation of the client (the writer in bulk)
	Server   string        // Go implementation of the server (the reader in bulk)
	Size     int           // bulk write size
	Clients  int           // handshake: concurrent clients
	Dur      time.Duration // how long the timed part runs
	Conns    int           // idle: connections
	Addr     string        // idle-client: the idle server's address
	CertDir  string
}

func runChild(spec childSpec) error {
	resumption := spec.Workload == "resumed"
	client, err := newGoImpl(spec.Client, spec.CertDir, resumption)
	if err != nil {
		return err
	}
	server := client
	if spec.Server != spec.Client {
		if server, err = newGoImpl(spec.Server, spec.CertDir, resumption); err != nil {
			return err
		}
	}
	var r result
	switch spec.Workload {
	case "bulk":
		r, err = bulk(client, server, spec.Size, spec.Dur)
	case "handshake":
		r, err = handshakes(client.dial, server, spec.Clients, spec.Dur)
	case "resumed":
		if client.resumingDialer == nil {
			return errNoSessionAPI
		}
		r, err = resumed(client.resumingDialer(), server, spec.Dur)
	case "pingpong":
		r, err = pingPong(client, server, spec.Dur)
	case "idle-server":
		r, err = idleServer(server, spec.Conns)
	case "idle-client":
		r, err = idleClient(client, spec.Conns, spec.Addr)
	default:
		return fmt.Errorf("unknown workload %q", spec.Workload)
	}
	if err != nil {
		return err
	}
	return printResult(r)
}

func printResult(r result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("result %s\n", b)
	return err
}

func newPool(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

// pair returns a TLS (or plain) client and server of the given
// implementations on a fresh TCP connection over 127.0.0.1, both
// handshakes done.
func pair(client, server *goImpl) (c, s net.Conn, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		conn, err := server.server(raw)
		if err == nil {
			err = handshake(conn)
		}
		ch <- accepted{conn, err}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if c, err = client.client(raw); err == nil {
		err = handshake(c)
	}
	a := <-ch
	if err == nil {
		err = a.err
	}
	if err != nil {
		raw.Close()
		if a.c != nil {
			a.c.Close()
		}
		return nil, nil, err
	}
	for _, conn := range []net.Conn{c, a.c} {
		if name, ok := cipherSuite(conn); ok && name != wantSuite {
			c.Close()
			a.c.Close()
			return nil, nil, fmt.Errorf("%T negotiated %s, want %s", conn, name, wantSuite)
		}
	}
	return c, a.c, nil
}

// wantSuite is the benchmark's TLS 1.3 cipher suite.
const wantSuite = "TLS_AES_128_GCM_SHA256"

// cipherSuite returns the negotiated suite of a TLS conn, so that pair can
// check that every implementation runs the same setup.
func cipherSuite(c net.Conn) (string, bool) {
	switch c := c.(type) {
	case *tls.Conn:
		return tls.CipherSuiteName(c.ConnectionState().CipherSuite), true
	case *ours.Conn:
		return c.ConnectionState().CipherSuite, true
	case *gossl.Conn:
		name, err := c.CurrentCipher()
		return name, err == nil
	}
	return "", false
}

func handshake(c net.Conn) error {
	if h, ok := c.(handshaker); ok {
		return h.Handshake()
	}
	return nil
}

// costCounter counts the process's heap allocations, CPU time and read
// and write system calls over the timed part. CPU time and system calls
// per operation hold up better than rates on a machine shared with other
// work.
type costCounter struct {
	mallocs, bytes uint64
	cpu            time.Duration
	syscr, syscw   uint64
}

// syscalls returns the process's read and write system calls so far
// (syscr and syscw of /proc/self/io: every read(2) and write(2), the ones
// that return EAGAIN included).
func syscalls() (r, w uint64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseUint(value, 10, 64)
		switch name {
		case "syscr":
			r = n
		case "syscw":
			w = n
		}
	}
	return r, w
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCosts() costCounter {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r, w := syscalls()
	return costCounter{m.Mallocs, m.TotalAlloc, cpuTime(), r, w}
}

// per adds allocs/op, B/op, cpu-us/op, reads/op and writes/op to metrics.
func (a costCounter) per(ops int64, metrics map[string]float64) {
	cpu := cpuTime() - a.cpu
	r, w := syscalls()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if ops > 0 {
		metrics["allocs/op"] = float64(m.Mallocs-a.mallocs) / float64(ops)
		metrics["B/op"] = float64(m.TotalAlloc-a.bytes) / float64(ops)
		metrics["cpu-us/op"] = float64(cpu.Nanoseconds()) / 1e3 / float64(ops)
		metrics["reads/op"] = float64(r-a.syscr) / float64(ops)
		metrics["writes/op"] = float64(w-a.syscw) / float64(ops)
	}
}

// bulk writes size-byte chunks from the client to the server for dur, then
// closes the client; the rate is what the server read until its EOF.
func bulk(client, server *goImpl, size int, dur time.Duration) (result, error) {
	c, s, err := pair(client, server)
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	type readDone struct {
		n   int64
		end time.Time
		err error
	}
	done := make(chan readDone, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := s.Read(buf)
			n += int64(k)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				done <- readDone{n, time.Now(), err}
				return
			}
		}
	}()
	buf := make([]byte, size)
	costs := startCosts()
	start := time.Now()
	var writes int64
	for time.Since(start) < dur {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return result{}, err
		}
		writes++
	}
	// Counted before Close: the ends' closing allocations (an error, a
	// timer) are not the steady state's.
	metrics := map[string]float64{}
	costs.per(writes, metrics)
	if err := c.Close(); err != nil {
		return result{}, fmt.Errorf("writer's close: %w", err)
	}
	rd := <-done
	if rd.err != nil {
		return result{}, fmt.Errorf("reader: %w", rd.err)
	}
	if rd.n != writes*int64(size) {
		return result{}, fmt.Errorf("reader got %d bytes, writer wrote %d", rd.n, writes*int64(size))
	}
	elapsed := rd.end.Sub(start)
	metrics["MB/s"] = float64(rd.n) / elapsed.Seconds() / 1e6
	metrics["cpu-us/MB"] = metrics["cpu-us/op"] * 1e6 / float64(size)
	r := result{Metrics: metrics, Ops: writes}
	r.NsPerOp = float64(elapsed.Nanoseconds()) / float64(writes)
	return r, nil
}

// serveHandshakes accepts on l until it is closed: each connection gets a
// server handshake and a Close that sends close_notify. It returns when
// every handler has finished.
func serveHandshakes(l net.Listener, server *goImpl, failures *atomic.Int64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		raw, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			c, err := server.server(raw)
			if err != nil {
				raw.Close()
				failures.Add(1)
				return
			}
			if err := handshake(c); err != nil {
				failures.Add(1)
			}
			c.Close()
		})
	}
}

// handshakes runs clients goroutines that each, for dur, dial, complete a
// verifying handshake, read until the server's close_notify and close.
func handshakes(dial func(string) (net.Conn, error), server *goImpl, clients int, dur time.Duration) (result, error) {
	return handshakeLoop(server, clients, dur, func(addr string) (bool, error) {
		c, err := dial(addr)
		if err != nil {
			return false, err
		}
		return false, finishClient(c)
	})
}

// resumed is handshakes with one client that resumes its previous session.
// The first handshake is full and not counted.
func resumed(dial func(string) (net.Conn, bool, error), server *goImpl, dur time.Duration) (result, error) {
	r, err := handshakeLoop(server, 1, dur, func(addr string) (bool, error) {
		c, resumed, err := dial(addr)
		if err != nil {
			return false, err
		}
		return resumed, finishClient(c)
	})
	if err == nil && r.Metrics["resumed-share"] < 0.99 {
		err = fmt.Errorf("only %.0f%% of the handshakes resumed", 100*r.Metrics["resumed-share"])
	}
	return r, err
}

// finishClient reads until the server's close_notify (in TLS 1.3 the
// session tickets come before it) and closes.
func finishClient(c net.Conn) error {
	var b [1]byte
	_, err := c.Read(b[:])
	c.Close()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		return errors.New("server sent data")
	}
	return err
}

func handshakeLoop(server *goImpl, clients int, dur time.Duration, one func(addr string) (resumed bool, err error)) (result, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	var failures atomic.Int64
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveHandshakes(l, server, &failures)
	}()
	addr := l.Addr().String()
	// One handshake outside the timed part loads what OpenSSL loads once.
	if _, err := one(addr); err != nil {
		l.Close()
		<-served
		return result{}, err
	}
	var count, resumedCount atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	costs := startCosts()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for time.Since(start) < dur {
				resumed, err := one(addr)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				count.Add(1)
				if resumed {
					resumedCount.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	l.Close()
	<-served
	if firstErr != nil {
		return result{}, firstErr
	}
	if n := failures.Load(); n > 0 {
		return result{}, fmt.Errorf("%d server handshakes failed", n)
	}
	n := count.Load()
	r := result{Metrics: map[string]float64{
		"handshakes/s":  float64(n) / elapsed.Seconds(),
		"resumed-share": float64(resumedCount.Load()) / float64(max(n, 1)),
	}, Ops: n}
	r.NsPerOp = float64(elapsed.Nanoseconds()) / float64(max(n, 1))
	costs.per(n, r.Metrics)
	return r, nil
}

// pingPong sends 64 bytes and waits for their echo, for dur, and reports
// the median and 99th percentile of the round trips.
func pingPong(client, server *goImpl, dur time.Duration) (result, error) {
	c, s, err := pair(client, server)
	if err != nil {
		return result{}, err
	}
	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				s.Close()
				echoed <- err
				return
			}
			if _, err := s.Write(buf); err != nil {
				s.Close()
				echoed <- err
				return
			}
		}
	}()
	buf := make([]byte, 64)
	rtts := make([]time.Duration, 0, 1<<20)
	costs := startCosts()
	start := time.Now()
	for time.Since(start) < dur && len(rtts) < cap(rtts) {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return result{}, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			c.Close()
			return result{}, err
		}
		rtts = append(rtts, time.Since(t0))
	}
	n := int64(len(rtts))
	r := result{Metrics: map[string]float64{}, Ops: n}
	costs.per(n, r.Metrics)
	c.Close()
	if err := <-echoed; err != nil {
		return result{}, fmt.Errorf("echo: %w", err)
	}
	slices.Sort(rtts)
	r.Metrics["us/op"] = float64(rtts[len(rtts)/2].Nanoseconds()) / 1e3
	r.Metrics["p99-us"] = float64(rtts[len(rtts)*99/100].Nanoseconds()) / 1e3
	r.NsPerOp = r.Metrics["us/op"] * 1e3
	return r, nil
}

// Idle memory: a server process and a client process, started by the
// driver, hold conns idle connections each, every one with a goroutine
// blocked in Read (as a Go server's per-connection goroutine, or an HTTP
// client's read loop, would be). Each reports its resident set and live
// heap growth per connection, measured against a baseline taken after one
// warm-up connection, so that what is loaded once is not counted. The
// processes keep their connections until the driver closes their stdin.

// idleSettle is how long the idle connections wait before they are
// measured; the C program waits as long.
const idleSettle = 200 * time.Millisecond

// memory returns the process's resident set and live heap, in bytes, after
// a collection that returns free memory to the OS.
func memory() (rss, heap uint64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, err
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0, 0, err
	}
	return resident * uint64(os.Getpagesize()), m.HeapAlloc, nil
}

func idleMetrics(base, after [2]uint64, conns int) map[string]float64 {
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(conns) / 1024 }
	return map[string]float64{
		"rss-KiB/conn":  per(base[0], after[0]),
		"heap-KiB/conn": per(base[1], after[1]),
	}
}

// parkReader keeps a goroutine blocked in c.Read until the connection ends.
func parkReader(c net.Conn) {
	go func() {
		var b [1]byte
		c.Read(b[:])
	}()
}

func idleServer(server *goImpl, conns int) (result, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	fmt.Printf("addr %s\n", l.Addr())
	return holdIdle(conns, func() (net.Conn, error) {
		raw, err := l.Accept()
		if err != nil {
			return nil, err
		}
		return handshaken(server.server(raw))
	}, func(warm net.Conn) {
		io.Copy(io.Discard, warm) // until the client's close
	})
}

func idleClient(client *goImpl, conns int, addr string) (result, error) {
	return holdIdle(conns, func() (net.Conn, error) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		return handshaken(client.client(raw))
	}, func(net.Conn) {})
}

// handshaken completes the handshake of a conn just made.
func handshaken(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	if err := handshake(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// holdIdle makes one warm-up connection (finished by endWarm, then
// closed), takes the baseline, makes conns connections, each with a
// goroutine parked in Read, and prints the growth per connection. It
// keeps the connections until stdin ends, then exits the process.
func holdIdle(conns int, next func() (net.Conn, error), endWarm func(net.Conn)) (result, error) {
	warm, err := next()
	if err != nil {
		return result{}, err
	}
	endWarm(warm)
	warm.Close()
	var base, after [2]uint64
	if base[0], base[1], err = memory(); err != nil {
		return result{}, err
	}
	held := make([]net.Conn, 0, conns)
	for range conns {
		c, err := next()
		if err != nil {
			return result{}, err
		}
		parkReader(c)
		held = append(held, c)
	}
	// Idle means idle for a while: what an implementation does to an idle
	// connection after some time (this package releases OpenSSL's buffers
	// after 5 ms) has run by now.
	time.Sleep(idleSettle)
	if after[0], after[1], err = memory(); err != nil {
		return result{}, err
	}
	r := result{Metrics: idleMetrics(base, after, conns), Ops: int64(conns)}
	if err := printResult(r); err != nil {
		return result{}, err
	}
	waitForStdinEOF()
	runtime.KeepAlive(held)
	os.Exit(0)
	return r, nil
}

func waitForStdinEOF() {
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
}

// parseResultLine reads a child's "result {json}" line.
func parseResultLine(line string) (result, bool, error) {
	rest, ok := strings.CutPrefix(line, "result ")
	if !ok {
		return result{}, false, nil
	}
	var r result
	if err := json.Unmarshal([]byte(rest), &r); err != nil {
		return result{}, true, err
	}
	return r, true, nil
}
