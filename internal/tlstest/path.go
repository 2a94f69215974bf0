package tlstest

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
)

// Path is what our Conn runs over ([Spec.Path]), and so which of its two
// paths it takes: [FD] and [OptIn] the socket-fd path, every other kind
// the generic path (a BIO pair and the conn's own Read and Write). Every
// kind but FD counts the bytes through its conn's Read and Write
// ([Pair.OurCount], and the peer's end's in [Pair.PeerCount]).
//
// Kinds differ in what a test may assume of them; the methods say what:
// [Path.OnSocket], [Path.HalfCloses], [Path.Buffers], [Path.Counts].
type Path int

const (
	// FD is our socket itself: the socket-fd path.
	FD Path = iota
	// Generic is a [Counter] over our socket, which hides everything but
	// net.Conn: the generic path over the same socket, on any transport
	// and with any peer.
	Generic
	// Pipe is a [Counter] over one end of net.Pipe: there is no socket,
	// and a Write waits until the other side reads.
	Pipe
	// TCPEmbed embeds *net.TCPConn, as metrics and rate-limiting wrappers
	// do, and has Read and Write of its own (counting ones): it exposes the
	// socket (SyscallConn, CloseWrite are promoted) but must not be
	// bypassed.
	TCPEmbed
	// TLSInTLS is TCPEmbed's twin over a crypto/tls connection over TCP:
	// our Conn in TLS, with the outer connection's CloseWrite. The peer's
	// end ([Pair.PeerEnd]) is the outer crypto/tls connection.
	TLSInTLS
	// OptIn is TCPEmbed asking for the socket-fd path
	// ([openssl.SocketFD]): our Conn bypasses its Read and Write. It is
	// not in [Paths].
	OptIn
)

// Paths are the kinds every test of our Conn's behaviour may run over,
// the socket-fd path first.
var Paths = []Path{FD, Generic, Pipe, TCPEmbed, TLSInTLS}

// String returns the kind's subtest name, such as "tcp-embed".
func (k Path) String() string {
	return [...]string{"fd", "generic", "pipe", "tcp-embed", "tls", "opt-in"}[k]
}

// OnSocket reports whether our Conn is made on the pair's socket itself
// or on Generic's wrapper of it: every [Spec] works (Unix sockets, process
// peers, socket buffers), and [Pair.OurSock] and [Pair.PeerSock] are the
// two ends of what our Conn runs over.
func (k Path) OnSocket() bool { return k == FD || k == Generic }

// HalfCloses reports whether our Conn's conn has a CloseWrite of its own,
// which [openssl.Conn.CloseWrite] calls after the alert: the peer's end
// then reads EOF below TLS.
func (k Path) HalfCloses() bool { return k != Generic && k != Pipe }

// Buffers reports whether a Write returns before the other side reads (a
// kernel buffer takes the bytes): not over net.Pipe, where a Write waits
// for the reader and fails once the reader closed its end.
func (k Path) Buffers() bool { return k != Pipe }

// Counts reports whether [Pair.OurCount] and [Pair.PeerCount] count the
// TLS stream: every kind on the generic path.
func (k Path) Counts() bool { return k != FD && k != OptIn }

// EachPath runs f as a subtest for each of [Paths] for which every one of
// where holds, such as [Path.OnSocket].
func EachPath(t *testing.T, f func(t *testing.T, path Path), where ...func(Path) bool) {
	for _, k := range Paths {
		if all(where, k) {
			t.Run(k.String(), func(t *testing.T) { f(t, k) })
		}
	}
}

func all(where []func(Path) bool, k Path) bool {
	for _, ok := range where {
		if !ok(k) {
			return false
		}
	}
	return true
}

// EachOnPaths is [EachPath] and, inside, [Each]: subtests such as
// "pipe/TLS 1.3/we-client".
func EachOnPaths(t *testing.T, f func(t *testing.T, c Case, path Path), where ...func(Path) bool) {
	EachPath(t, func(t *testing.T, k Path) {
		Each(t, func(t *testing.T, c Case) { f(t, c, k) })
	}, where...)
}

// Wrap returns what our Conn is made on over end, our end of the
// transport, and the counts of the bytes through it (nil for FD).
func (k Path) Wrap(end net.Conn) (net.Conn, *Counter) {
	if k == FD {
		return end, nil
	}
	counts := &Counter{Conn: end}
	switch k {
	case TCPEmbed:
		return &tcpCounter{end.(*net.TCPConn), counts}, counts
	case OptIn:
		return optIn{&tcpCounter{end.(*net.TCPConn), counts}}, counts
	case TLSInTLS:
		return &tlsCounter{end.(*tls.Conn), counts}, counts
	}
	return counts, counts
}

// Counter counts the bytes through its Read and Write. It embeds the
// net.Conn interface, so it exposes no socket.
type Counter struct {
	net.Conn
	BytesRead, BytesWritten atomic.Int64
}

func (c *Counter) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.BytesRead.Add(int64(n))
	return n, err
}

func (c *Counter) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.BytesWritten.Add(int64(n))
	return n, err
}

// tcpCounter is [TCPEmbed]'s conn.
type tcpCounter struct {
	*net.TCPConn
	counts *Counter // its Conn is the TCPConn
}

func (c *tcpCounter) Read(b []byte) (int, error)  { return c.counts.Read(b) }
func (c *tcpCounter) Write(b []byte) (int, error) { return c.counts.Write(b) }

// tlsCounter is [TLSInTLS]'s conn.
type tlsCounter struct {
	*tls.Conn
	counts *Counter // its Conn is the *tls.Conn
}

func (c *tlsCounter) Read(b []byte) (int, error)  { return c.counts.Read(b) }
func (c *tlsCounter) Write(b []byte) (int, error) { return c.counts.Write(b) }

// optIn is [OptIn]'s conn.
type optIn struct{ *tcpCounter }

func (optIn) UseSocketFD() bool { return true }
