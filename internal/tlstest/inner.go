package tlstest

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
)

// Inner is the kind of net.Conn our Conn is given instead of its bare
// socket ([Spec.Inner]). Every kind but Bare counts the bytes through its
// own Read and Write ([Pair.OurCount]); the peer's end is counted too
// ([Pair.PeerCount]). Every kind but Bare and OptIn makes our Conn take the
// generic path.
type Inner int

const (
	// Bare is our socket itself, or what [Spec.WrapOurs] makes of it.
	Bare Inner = iota
	// Pipe is a [Counter] over one end of net.Pipe: a Write there waits
	// until the other side reads.
	Pipe
	// Wrapper is a [Counter] over a TCP socket, which it hides.
	Wrapper
	// TCPEmbed embeds *net.TCPConn, as metrics and rate-limiting wrappers
	// do, and has Read and Write of its own (counting ones): it exposes the
	// socket (SyscallConn, CloseWrite are promoted) but must not be
	// bypassed.
	TCPEmbed
	// TLSInTLS is TCPEmbed's twin over a crypto/tls connection over TCP:
	// our Conn in TLS, with the outer connection's CloseWrite.
	TLSInTLS
	// OptIn is TCPEmbed asking for the socket-fd path
	// ([openssl.SocketFD]): our Conn bypasses its Read and Write.
	OptIn
)

// Inners are the kinds over which our Conn takes the generic path.
var Inners = []Inner{Pipe, Wrapper, TCPEmbed, TLSInTLS}

// String returns the kind's subtest name, such as "tcp-embed".
func (k Inner) String() string {
	return [...]string{"bare", "pipe", "wrapper", "tcp-embed", "tls", "opt-in"}[k]
}

// EachInner runs f for each of [Inners] and, inside, each of [Cases]:
// subtests such as "pipe/TLS 1.3/we-client".
func EachInner(t *testing.T, f func(t *testing.T, c Case, k Inner)) {
	for _, k := range Inners {
		t.Run(k.String(), func(t *testing.T) {
			Each(t, func(t *testing.T, c Case) { f(t, c, k) })
		})
	}
}

// wrap returns what our Conn is made on over end, our end of the
// transport, and the counts of the bytes through it.
func (k Inner) wrap(end net.Conn) (net.Conn, *Counter) {
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
