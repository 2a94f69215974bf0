package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/relay"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/stretchr/testify/require"
)

// wait bounds every wait of these tests.
const wait = 10 * time.Second

var pki = mustPKI()

func mustPKI() *testcert.Bundle {
	b, err := testcert.New()
	if err != nil {
		panic(err)
	}
	return b
}

// TestMain fails the run when a relay leaves a goroutine, a file descriptor,
// an SSL or SSL_CTX object behind.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

var dirs = []relay.Direction{relay.ClientToServer, relay.ServerToClient}

// tap is a peer's socket that keeps every byte the peer read from it and
// wrote to it: the wire as that peer saw it.
type tap struct {
	*net.TCPConn
	mu      sync.Mutex // guards in and out
	in, out []byte
}

func (t *tap) Read(b []byte) (int, error) {
	n, err := t.TCPConn.Read(b)
	t.mu.Lock()
	t.in = append(t.in, b[:n]...)
	t.mu.Unlock()
	return n, err
}

func (t *tap) Write(b []byte) (int, error) {
	n, err := t.TCPConn.Write(b)
	t.mu.Lock()
	t.out = append(t.out, b[:n]...)
	t.mu.Unlock()
	return n, err
}

func (t *tap) received() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.in)
}

func (t *tap) sent() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.out)
}

// records returns the sizes of the complete TLS records at the start of b.
func records(b []byte) []int {
	var sizes []int
	for len(b) >= 5 {
		size := 5 + int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < size {
			break
		}
		sizes = append(sizes, size)
		b = b[size:]
	}
	return sizes
}

// link is a relay and the sockets of the two peers it joins: client
// (connected to the relay) and server (accepted from the relay).
type link struct {
	relay          *relay.Relay
	client, server *tap
}

// connect starts a relay with faults between a new client socket and a new
// server socket on 127.0.0.1, both with a deadline wait from now. Cleanup
// closes the sockets, then the relay.
func connect(t *testing.T, faults ...relay.Fault) *link {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	r, err := relay.New(ln.Addr().String(), faults...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	c, err := net.DialTimeout("tcp", r.Addr(), wait)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, ln.SetDeadline(time.Now().Add(wait)))
	s, err := ln.AcceptTCP()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	deadline := time.Now().Add(wait)
	require.NoError(t, c.SetDeadline(deadline))
	require.NoError(t, s.SetDeadline(deadline))
	return &link{relay: r, client: &tap{TCPConn: c.(*net.TCPConn)}, server: &tap{TCPConn: s}}
}

func serverConfig(v uint16) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: v, MaxVersion: v}
}

// goTLS joins a crypto/tls client and server, both limited to version v,
// through a relay with faults, and runs their handshakes.
func goTLS(t *testing.T, v uint16, faults ...relay.Fault) (*link, *tls.Conn, *tls.Conn) {
	t.Helper()
	l := connect(t, faults...)
	client := tls.Client(l.client, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", MinVersion: v, MaxVersion: v})
	server := tls.Server(l.server, serverConfig(v))
	handshake(t, client, server)
	return l, client, server
}

// handshake runs both handshakes at once; the sockets' deadlines bound them.
func handshake(t *testing.T, a, b interface{ Handshake() error }) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.Handshake() }()
	require.NoError(t, a.Handshake())
	require.NoError(t, <-done)
}

// roundTrip sends "ping" from client to server and "pong" back. Everything
// sent before (TLS 1.3 session tickets included) has then been read, and
// both directions are idle: the moment to arm a fault.
func roundTrip(t *testing.T, client, server io.ReadWriter) {
	t.Helper()
	buf := make([]byte, 4)
	_, err := client.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(server, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	_, err = server.Write([]byte("pong"))
	require.NoError(t, err)
	_, err = io.ReadFull(client, buf)
	require.NoError(t, err)
	require.Equal(t, "pong", string(buf))
}

// side is one peer: its TLS connection and its socket.
type side struct {
	conn *tls.Conn
	tap  *tap
}

// ends returns the sender and the receiver of direction d.
func ends(l *link, d relay.Direction, client, server *tls.Conn) (sender, receiver side) {
	if d == relay.ClientToServer {
		return side{client, l.client}, side{server, l.server}
	}
	return side{server, l.server}, side{client, l.client}
}

// exchange sends up from client to server, then down from server to client,
// each followed by a close_notify; it checks what arrived, closes both and
// waits until the relay has passed on both FINs.
func exchange(t *testing.T, l *link, client, server *tls.Conn, up, down []byte) {
	t.Helper()
	errs := make(chan error, 2)
	go func() {
		_, err := client.Write(up)
		if err == nil {
			err = client.CloseWrite() // close_notify only
		}
		errs <- err
	}()
	got, err := io.ReadAll(server)
	require.NoError(t, err)
	require.NoError(t, <-errs)
	require.True(t, bytes.Equal(up, got), "server got %d bytes, want the %d sent", len(got), len(up))
	go func() {
		_, err := server.Write(down)
		if err == nil {
			err = server.Close()
		}
		errs <- err
	}()
	got, err = io.ReadAll(client)
	require.NoError(t, err)
	require.NoError(t, <-errs)
	require.True(t, bytes.Equal(down, got), "client got %d bytes, want the %d sent", len(got), len(down))
	require.NoError(t, client.Close()) // FIN: the alert was sent by CloseWrite
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = l.relay.Await(ctx, func(s relay.Stats) bool {
		return s.Dir[relay.ClientToServer].Receiver == relay.FIN && s.Dir[relay.ServerToClient].Receiver == relay.FIN
	})
	require.NoError(t, err, "the relay passes both FINs on")
}

// checkTransparent checks that, in each direction, the relay read exactly
// what the sender wrote, forwarded all of it to the receiver as the same
// records, and passed on the FIN.
func checkTransparent(t *testing.T, l *link) relay.Stats {
	t.Helper()
	s := l.relay.Stats()
	require.True(t, s.Connected)
	require.NoError(t, s.Err)
	for _, c := range []struct {
		d        relay.Direction
		from, to *tap
	}{{relay.ClientToServer, l.client, l.server}, {relay.ServerToClient, l.server, l.client}} {
		ds, sent, got := s.Dir[c.d], c.from.sent(), c.to.received()
		require.True(t, bytes.Equal(sent, got), "%v: %d bytes sent, %d received", c.d, len(sent), len(got))
		sizes := records(sent)
		require.Equal(t, len(sent), sum(sizes), "%v: the sender wrote whole records", c.d)
		require.EqualValues(t, len(sent), ds.Read, c.d)
		require.EqualValues(t, len(sent), ds.Forwarded, c.d)
		require.Zero(t, ds.Dropped, c.d)
		require.Equal(t, len(sizes), ds.Records, c.d)
		require.Equal(t, relay.FIN, ds.Sender, c.d)
		require.Equal(t, relay.FIN, ds.Receiver, c.d)
		require.False(t, ds.ReceiverReset, c.d)
		require.False(t, ds.Stalled, c.d)
	}
	return s
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestForward proves that without faults the relay is transparent: a 1 MiB
// transfer each way arrives intact, each peer receives byte for byte what the
// other wrote, close_notify and FIN included, and Stats count exactly those
// bytes and records.
func TestForward(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			l, client, server := goTLS(t, v.v)
			exchange(t, l, client, server, random(t, 1<<20), random(t, 1<<20))
			s := checkTransparent(t, l)
			for _, d := range dirs {
				require.Empty(t, s.Dir[d].Fired, d)
			}
		})
	}
}

// TestCutFIN proves what crypto/tls makes of a FIN without close_notify, in
// each direction: inside an application data record its Read returns
// io.ErrUnexpectedEOF; at a record boundary it returns io.EOF, exactly as for
// a close_notify: crypto/tls cannot detect that truncation. The receiver gets
// exactly the bytes before the cut, and Stats say where it happened.
func TestCutFIN(t *testing.T) {
	msg := []byte("a message in one application data record")
	for _, v := range versions {
		for _, d := range dirs {
			for _, mid := range []bool{true, false} {
				name := v.name + "/" + d.String() + "/boundary"
				after, offset := 1, int64(0)
				if mid {
					name = v.name + "/" + d.String() + "/mid-record"
					after, offset = 0, 10
				}
				t.Run(name, func(t *testing.T) {
					arm := make(chan struct{})
					l, client, server := goTLS(t, v.v, relay.Fault{Dir: d, AfterRecords: after, Offset: offset, Action: relay.CutFIN, Arm: arm})
					roundTrip(t, client, server)
					sender, receiver := ends(l, d, client, server)
					before := len(sender.tap.sent())
					k := len(records(sender.tap.sent()))
					close(arm)
					_, err := sender.conn.Write(msg)
					require.NoError(t, err)
					got, err := io.ReadAll(receiver.conn)

					ds := l.relay.Stats().Dir[d]
					if mid {
						require.ErrorIs(t, err, io.ErrUnexpectedEOF)
						require.Empty(t, got)
						require.Equal(t, []relay.Firing{{Action: relay.CutFIN, Pos: int64(before) + 10, Record: k, Offset: 10}}, ds.Fired)
						require.EqualValues(t, before+10, ds.Forwarded)
						require.Equal(t, k, ds.Records)
					} else {
						require.NoError(t, err, "crypto/tls reports a FIN at a record boundary as io.EOF")
						require.Equal(t, msg, got)
						end := len(sender.tap.sent())
						require.Equal(t, []relay.Firing{{Action: relay.CutFIN, Pos: int64(end), Record: k + 1}}, ds.Fired)
						require.EqualValues(t, end, ds.Forwarded)
						require.Equal(t, k+1, ds.Records)
					}
					require.EqualValues(t, len(receiver.tap.received()), ds.Forwarded)
					require.Equal(t, sender.tap.sent()[:ds.Forwarded], receiver.tap.received())
					require.Equal(t, relay.FIN, ds.Receiver)
					require.Equal(t, relay.Open, ds.Sender)
				})
			}
		}
	}
}

// TestCutRST proves that a CutRST resets both peers: the receiver first reads
// every byte forwarded before the cut, then gets ECONNRESET, and the sender's
// next Read gets ECONNRESET too. "idle" arms the cut while nothing is in
// flight: it fires at once, without waiting for input.
func TestCutRST(t *testing.T) {
	msg := []byte("last words")
	for _, v := range versions {
		for _, d := range dirs {
			for _, idle := range []bool{true, false} {
				name := v.name + "/" + d.String() + "/after-a-record"
				after := 1
				if idle {
					name = v.name + "/" + d.String() + "/idle"
					after = 0
				}
				t.Run(name, func(t *testing.T) {
					arm := make(chan struct{})
					l, client, server := goTLS(t, v.v, relay.Fault{Dir: d, AfterRecords: after, Action: relay.CutRST, Arm: arm})
					roundTrip(t, client, server)
					sender, receiver := ends(l, d, client, server)
					k := len(records(sender.tap.sent()))
					close(arm)
					buf := make([]byte, 64)
					if !idle {
						_, err := sender.conn.Write(msg)
						require.NoError(t, err)
						n, err := receiver.conn.Read(buf)
						require.NoError(t, err)
						require.Equal(t, msg, buf[:n])
						k++
					}
					_, err := receiver.conn.Read(buf)
					require.ErrorIs(t, err, syscall.ECONNRESET, "receiver")
					_, err = sender.conn.Read(buf)
					require.ErrorIs(t, err, syscall.ECONNRESET, "sender")

					s := l.relay.Stats()
					end := int64(len(sender.tap.sent()))
					require.Equal(t, []relay.Firing{{Action: relay.CutRST, Pos: end, Record: k}}, s.Dir[d].Fired)
					require.Equal(t, end, s.Dir[d].Forwarded)
					require.Equal(t, relay.RST, s.Dir[relay.ClientToServer].Receiver)
					require.Equal(t, relay.RST, s.Dir[relay.ServerToClient].Receiver)
					require.NoError(t, s.Err)
				})
			}
		}
	}
}

// TestStall proves that a stalled direction builds TCP backpressure up to
// the sender: its Write times out at its deadline, the relay read at most one
// buffer beyond the stall and forwarded nothing; after Resume the receiver
// gets every byte the sender's Writes reported.
func TestStall(t *testing.T) {
	chunk := random(t, 16<<10)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			arm := make(chan struct{})
			l, client, server := goTLS(t, v.v, relay.Fault{Dir: relay.ServerToClient, Action: relay.Stall, Arm: arm})
			roundTrip(t, client, server)
			before := int64(len(l.server.sent()))
			k := len(records(l.server.sent()))
			close(arm)

			require.NoError(t, server.SetWriteDeadline(time.Now().Add(time.Second)))
			var written int
			var err error
			for i := 0; i < 4096 && err == nil; i++ { // at most 64 MiB
				var n int
				n, err = server.Write(chunk)
				written += n
			}
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			s := l.relay.Stats().Dir[relay.ServerToClient]
			require.True(t, s.Stalled)
			require.Equal(t, []relay.Firing{{Action: relay.Stall, Pos: before, Record: k}}, s.Fired)
			require.Equal(t, before, s.Forwarded)
			require.LessOrEqual(t, s.Read-before, int64(32<<10), "the relay stopped reading")
			require.Greater(t, int64(written), s.Read-before, "the rest waits in the kernels' buffers")
			t.Logf("written before the timeout: %d bytes, read by the relay beyond the stall: %d", written, s.Read-before)

			require.True(t, l.relay.Resume(relay.ServerToClient))
			require.False(t, l.relay.Resume(relay.ServerToClient), "not stalled any more")
			got := make([]byte, written)
			_, err = io.ReadFull(client, got)
			require.NoError(t, err)
			for i := 0; i < written; i += len(chunk) {
				require.True(t, bytes.Equal(chunk[:min(len(chunk), written-i)], got[i:min(i+len(chunk), written)]), "chunk at %d", i)
			}
			require.False(t, l.relay.Stats().Dir[relay.ServerToClient].Stalled)
		})
	}
}

// TestResetPassedOn proves that the relay passes a peer's reset on: the
// server closes with SO_LINGER 0, the client's Read gets ECONNRESET, and
// Stats show the server's RST and the relay's resets.
func TestResetPassedOn(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			l, client, server := goTLS(t, v.v)
			roundTrip(t, client, server)
			require.NoError(t, l.server.SetLinger(0))
			require.NoError(t, l.server.Close())
			_, err := client.Read(make([]byte, 8))
			require.ErrorIs(t, err, syscall.ECONNRESET)
			s := l.relay.Stats()
			require.Equal(t, relay.RST, s.Dir[relay.ServerToClient].Sender)
			require.Equal(t, relay.RST, s.Dir[relay.ServerToClient].Receiver)
			require.Equal(t, relay.RST, s.Dir[relay.ClientToServer].Receiver)
			require.Empty(t, s.Dir[relay.ServerToClient].Fired)
			require.NoError(t, s.Err)
		})
	}
}

// TestClose proves that Close ends everything, whatever the relay is doing:
// nothing connected yet, a Stall, a blocked write, idle connections (the
// client then reads EOF: Close closes the ordinary way). TestMain's leak
// check proves no goroutine or descriptor is left.
func TestClose(t *testing.T) {
	t.Run("no connection", func(t *testing.T) {
		r, err := relay.New("127.0.0.1:1")
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.NoError(t, r.Close(), "a second Close")
		require.False(t, r.Stats().Connected)
	})
	t.Run("in a Stall", func(t *testing.T) {
		l := connect(t, relay.Fault{Dir: relay.ClientToServer, Action: relay.Stall})
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := l.relay.Await(ctx, func(s relay.Stats) bool { return s.Dir[relay.ClientToServer].Stalled })
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, l.relay.Close())
		require.Less(t, time.Since(start), wait, "Close returned")
		require.False(t, l.relay.Resume(relay.ClientToServer))
	})
	t.Run("in a blocked write", func(t *testing.T) {
		// The client sends raw bytes that the server never reads: the relay's
		// writes to the server block once the server's receive buffer is full.
		l := connect(t)
		wrote := make(chan error, 1)
		go func() {
			chunk := bytes.Repeat([]byte{0xff}, 64<<10) // read as records of 64 KiB
			var err error
			for i := 0; i < 256 && err == nil; i++ { // at most 16 MiB, bounded by the socket's deadline
				_, err = l.client.Write(chunk)
			}
			wrote <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := l.relay.Await(ctx, func(s relay.Stats) bool { return s.Dir[relay.ClientToServer].Read >= 1<<20 })
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, l.relay.Close())
		require.Less(t, time.Since(start), wait, "Close returned")
		require.Error(t, <-wrote, "the client's writes end when the relay closes")
	})
	t.Run("idle", func(t *testing.T) {
		l := connect(t)
		require.NoError(t, l.relay.Close())
		_, err := l.client.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF)
		_, err = l.server.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF)
	})
}

// TestDialFailure proves that a relay whose target refuses the connection
// resets the client and reports the dial error.
func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	require.NoError(t, ln.Close())
	r, err := relay.New(target)
	require.NoError(t, err)
	defer r.Close()
	c, err := net.DialTimeout("tcp", r.Addr(), wait)
	if err == nil { // else the reset came before Dial read the socket's state
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
		_, err = c.Read(make([]byte, 1))
	}
	require.ErrorIs(t, err, syscall.ECONNRESET)
	s := r.Stats()
	require.False(t, s.Connected)
	require.ErrorIs(t, s.Err, syscall.ECONNREFUSED)
	require.Equal(t, relay.RST, s.Dir[relay.ServerToClient].Receiver)
}

// TestNewRejects proves that New refuses faults that make no sense, and
// starts nothing then.
func TestNewRejects(t *testing.T) {
	for name, f := range map[string]relay.Fault{
		"no action":        {Dir: relay.ClientToServer},
		"bad direction":    {Dir: 7, Action: relay.CutFIN},
		"bad action":       {Action: relay.Stall + 1},
		"negative offset":  {Action: relay.CutFIN, Offset: -1},
		"negative records": {Action: relay.CutFIN, AfterRecords: -1},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := relay.New("127.0.0.1:1", f)
			require.Error(t, err)
			require.Nil(t, r)
		})
	}
	_, err := relay.New("")
	require.Error(t, err, "an empty target")
}
