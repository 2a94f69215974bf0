package tlstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
)

// PeerKind is the TLS implementation on the far side of a pair.
type PeerKind int

const (
	// CryptoTLS is Go's crypto/tls in this process ([Pair.Peer]).
	CryptoTLS PeerKind = iota
	// OpenSSLTool is openssl s_server when we are the client, s_client
	// when we are the server ([Pair.Proc]).
	OpenSSLTool
	// GnuTLS is gnutls-serv when we are the client, gnutls-cli when we are
	// the server.
	GnuTLS
	// Python is Python's ssl module (internal/peer's python_peer.py).
	Python
)

// String returns the peer's name as tables show it.
func (k PeerKind) String() string {
	switch k {
	case OpenSSLTool:
		return "openssl"
	case GnuTLS:
		return "gnutls"
	case Python:
		return "python"
	}
	return "crypto/tls"
}

// Spec describes a pair. The zero Spec is our client facing a crypto/tls
// server over TCP, any TLS version, with the default close policy.
type Spec struct {
	Case          // the TLS version (0: any) and our role
	Peer PeerKind // the other side; process peers need TCP
	// Transport connects the two sides.
	Transport Transport
	// OurSndBuf and PeerRcvBuf, when positive, set SO_SNDBUF on our socket
	// and SO_RCVBUF on the peer's (crypto/tls peers only) before the
	// handshake, so that a peer that stops reading fills the pipe quickly.
	// The kernel doubles the value, applies its minimum, and no longer
	// autotunes that buffer.
	OurSndBuf, PeerRcvBuf int
	// MSS, when positive, is TCP_MAXSEG of both sockets (of ours only, with
	// a process peer), set before connect: see [SetMSS].
	MSS int
	// Policy, when set, is our Conn's close policy.
	Policy *openssl.ClosePolicy
	// PKI is the certificates of both sides; nil means [DefaultPKI].
	PKI *testcert.Bundle
	// Ctx is our Conn's Ctx. Nil means a new one from [NewCtx] for our
	// role, limited to Version when the peer is a process (a crypto/tls
	// peer is limited by its Config).
	Ctx *openssl.Ctx
	// Config is a crypto/tls peer's configuration; nil means [PeerConfig].
	Config *tls.Config
	// Deadline is set on a crypto/tls peer's socket, so that no operation
	// of the peer waits longer; zero means [Timeout] from now.
	Deadline time.Time
	// Record makes a crypto/tls peer read through a [Recorder] ([Pair.Rec]).
	Record bool
	// WrapPeer, when set, wraps a crypto/tls peer's socket before the
	// Recorder and crypto/tls: the matrix's peers that stop reading or
	// cork their writes.
	WrapPeer func(Sock) net.Conn
	// Path is what our Conn runs over: FD (the zero Path) is its socket.
	// Kinds other than FD and Generic need a crypto/tls peer over TCP
	// without WrapPeer: Pipe replaces the sockets with net.Pipe (no socket
	// options or route then), TLSInTLS puts crypto/tls between them and
	// both sides.
	Path Path
	// PeerArgs are extra command-line arguments of a process peer (after
	// the version's, for openssl and GnuTLS).
	PeerArgs []string
	// Python are the Python peer's options; its Version defaults to
	// Spec's.
	Python peer.PythonOptions
	// Via, when set, gives the address the client dials to reach the
	// server listening at serverAddr (TCP only): a relay's in front of it,
	// for instance. Nil dials the server itself.
	Via func(serverAddr string) (string, error)
}

// route returns the address the client dials to reach serverAddr.
func (s Spec) route(serverAddr string) (string, error) {
	if s.Via == nil {
		return serverAddr, nil
	}
	return s.Via(serverAddr)
}

// byRole returns the dialing and the accepting side's ends (or the
// client's and the server's) as ours and the peer's, for our role r.
func byRole[T any](r Role, dialed, accepted T) (ours, peer T) {
	if r == WeServer {
		return accepted, dialed
	}
	return dialed, accepted
}

// Pair is our Conn and its peer. Tests may use every field; [Pair.Close]
// releases them all.
type Pair struct {
	Spec    Spec
	Ours    *openssl.Conn
	OurSock Sock // under Ours
	// Peer and PeerSock are set with a crypto/tls peer: the peer, and its
	// socket (under WrapPeer and Rec), which tests close to make the peer
	// vanish without close_notify.
	Peer     *tls.Conn
	PeerSock Sock
	// PeerEnd is a crypto/tls peer's end of the transport, under
	// PeerCount and Rec: PeerSock, or with Spec.Path Pipe net.Pipe's end
	// (PeerSock and OurSock are then nil), with TLSInTLS the outer
	// crypto/tls Conn.
	PeerEnd net.Conn
	Rec     *Recorder // with Spec.Record
	// OurCount and PeerCount count the bytes through our Conn's conn and
	// through PeerEnd (a crypto/tls peer's, without WrapPeer), unless
	// Spec.Path is FD.
	OurCount, PeerCount *Counter
	ourEnd              net.Conn // the transport's end our Conn is made on
	// Proc is a process peer; Files are the PEM files it reads.
	Proc  *peer.Process
	Files Files
	dir   string // holds Files; removed by Close
}

// Open connects our Conn and a peer as spec says, without handshaking. A
// process peer is started; its own handshake runs once ours does. On error
// nothing is left open.
func Open(spec Spec) (p *Pair, err error) {
	p = &Pair{Spec: spec}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	b := spec.PKI
	if b == nil {
		b = DefaultPKI()
	}
	sslCtx := spec.Ctx
	if sslCtx == nil {
		var version uint16
		if spec.Peer != CryptoTLS {
			version = spec.Version
		}
		if sslCtx, err = NewCtx(b, spec.Role, version); err != nil {
			return p, err
		}
	}
	if spec.Peer == CryptoTLS {
		err = p.openCryptoTLS(b)
	} else {
		err = p.openProcess(b)
	}
	if err != nil {
		return p, err
	}
	if spec.OurSndBuf > 0 {
		if err := p.OurSock.SetWriteBuffer(spec.OurSndBuf); err != nil {
			return p, err
		}
	}
	ourConn, ourCount := spec.Path.Wrap(p.ourEnd)
	p.OurCount = ourCount
	if spec.Role == WeClient {
		p.Ours, err = openssl.Client(ourConn, sslCtx)
	} else {
		p.Ours, err = openssl.Server(ourConn, sslCtx)
	}
	if err != nil {
		return p, err
	}
	if spec.Policy != nil {
		p.Ours.SetClosePolicy(*spec.Policy)
	}
	return p, nil
}

func (p *Pair) openCryptoTLS(b *testcert.Bundle) error {
	spec := p.Spec
	if !spec.Path.OnSocket() && (spec.Transport != TCP || spec.WrapPeer != nil) ||
		spec.Path == Pipe && (spec.MSS != 0 || spec.OurSndBuf != 0 || spec.PeerRcvBuf != 0 || spec.Via != nil) {
		return fmt.Errorf("tlstest: Path %v needs TCP and no WrapPeer; net.Pipe has no socket options or route", spec.Path)
	}
	var dialed, accepted net.Conn
	if spec.Path == Pipe {
		dialed, accepted = net.Pipe()
	} else {
		d, a, err := socketPair(spec.Transport, spec.MSS, spec.Via)
		if err != nil {
			return err
		}
		p.OurSock, p.PeerSock = byRole(spec.Role, d, a)
		dialed, accepted = d, a
	}
	if spec.Path == TLSInTLS {
		// PeerConfig(b, 0, WeServer) is a client's, trusting b.
		dialed = tls.Client(dialed, PeerConfig(b, 0, WeServer))
		accepted = tls.Server(accepted, PeerConfig(b, 0, WeClient))
	}
	p.ourEnd, p.PeerEnd = byRole(spec.Role, dialed, accepted)
	if spec.PeerRcvBuf > 0 {
		if err := p.PeerSock.SetReadBuffer(spec.PeerRcvBuf); err != nil {
			return err
		}
	}
	deadline := spec.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(Timeout)
	}
	if err := p.PeerEnd.SetDeadline(deadline); err != nil {
		return err
	}
	conn := p.PeerEnd
	if spec.Path.Counts() {
		p.PeerCount = &Counter{Conn: conn}
		conn = p.PeerCount
	}
	if spec.WrapPeer != nil {
		conn = spec.WrapPeer(p.PeerSock)
	}
	if spec.Record {
		p.Rec = NewRecorder(conn)
		conn = p.Rec
	}
	cfg := spec.Config
	if cfg == nil {
		cfg = PeerConfig(b, spec.Version, spec.Role)
	}
	if spec.Role == WeClient {
		p.Peer = tls.Server(conn, cfg)
	} else {
		p.Peer = tls.Client(conn, cfg)
	}
	return nil
}

// openProcess starts the process peer and connects to it: we dial a
// server, or accept a client on a listener of our own.
func (p *Pair) openProcess(b *testcert.Bundle) (err error) {
	spec := p.Spec
	if spec.Transport != TCP || !spec.Path.OnSocket() || spec.PeerRcvBuf != 0 || spec.Record || spec.Config != nil || spec.WrapPeer != nil {
		return fmt.Errorf("tlstest: a %v peer needs TCP and our Conn on its socket, and has no socket, Recorder or crypto/tls Config of ours", spec.Peer)
	}
	if p.dir, err = os.MkdirTemp("", "tlstest-peer-"); err != nil {
		return err
	}
	if p.Files, err = WriteFiles(b, p.dir); err != nil {
		return err
	}
	args := append(versionArgs(spec.Peer, spec.Version), spec.PeerArgs...)
	py := spec.Python
	if py.Version == 0 {
		py.Version = spec.Version
	}
	// The process lives until Close kills it.
	ctx := context.Background()
	if spec.Role == WeClient {
		switch spec.Peer {
		case OpenSSLTool:
			p.Proc, err = peer.OpenSSLServer(ctx, p.Files.Cert, p.Files.Key, args...)
		case GnuTLS:
			p.Proc, err = peer.GnuTLSServer(ctx, p.Files.Cert, p.Files.Key, args...)
		case Python:
			p.Proc, err = peer.PythonServer(ctx, p.Files.Cert, p.Files.Key, py)
		}
		if err != nil {
			return err
		}
		addr, err := spec.route(p.Proc.Addr())
		if err != nil {
			return err
		}
		c, err := Dial(addr, spec.MSS)
		if err != nil {
			return err
		}
		p.OurSock, p.ourEnd = c, c
		return nil
	}
	ln, err := Listen(spec.MSS)
	if err != nil {
		return err
	}
	defer ln.Close()
	addr, err := spec.route(ln.Addr().String())
	if err != nil {
		return err
	}
	switch spec.Peer {
	case OpenSSLTool:
		p.Proc, err = peer.OpenSSLClient(ctx, addr, p.Files.CA, args...)
	case GnuTLS:
		p.Proc, err = peer.GnuTLSClient(ctx, addr, p.Files.CA, args...)
	case Python:
		p.Proc, err = peer.PythonClient(ctx, addr, p.Files.CA, py)
	}
	if err != nil {
		return err
	}
	c, err := ln.AcceptTCP() // bounded by the listener's deadline
	if err != nil {
		return fmt.Errorf("accepting %s: %w", p.Proc.Name(), err)
	}
	p.OurSock, p.ourEnd = c, c
	return nil
}

// versionArgs are the command-line arguments that limit a process peer to
// version.
func versionArgs(k PeerKind, version uint16) []string {
	switch {
	case k == OpenSSLTool && version == tls.VersionTLS12:
		return []string{"-tls1_2"}
	case k == OpenSSLTool && version == tls.VersionTLS13:
		return []string{"-tls1_3"}
	case k == GnuTLS && version == tls.VersionTLS12:
		return []string{"--priority", peer.GnuTLSPriorityTLS12}
	case k == GnuTLS && version == tls.VersionTLS13:
		return []string{"--priority", peer.GnuTLSPriorityTLS13}
	}
	return nil
}

// Handshake runs both handshakes at once, each bounded by [Timeout], and
// returns their errors. With a process peer, peerErr says whether the
// peer reported its handshake done (s_client's verification, gnutls-cli's
// simple mode, Python's connected line) within Timeout; s_server and
// gnutls-serv report nothing.
func (p *Pair) Handshake() (ourErr, peerErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if p.Peer == nil {
		ourErr = p.Ours.HandshakeContext(ctx)
		if ourErr != nil {
			return ourErr, nil
		}
		if ready := p.peerReady(); ready != "" {
			peerErr = p.Proc.WaitFor(ready, Timeout)
		}
		return nil, peerErr
	}
	done := Go(p.Peer.Handshake) // bounded by the peer socket's deadline
	ourErr = p.Ours.HandshakeContext(ctx)
	return ourErr, <-done
}

// peerReady is what a process peer prints once its handshake is done, or
// "" for peers that print nothing then.
func (p *Pair) peerReady() string {
	switch {
	case p.Spec.Peer == Python:
		v := strings.TrimPrefix(tls.VersionName(p.Ours.ConnectionState().Version), "TLS ")
		return peer.PythonConnected + "TLSv" + v + "\n"
	case p.Spec.Role == WeClient:
		return ""
	case p.Spec.Peer == OpenSSLTool:
		return peer.ClientVerifyOK
	case p.Spec.Peer == GnuTLS:
		return peer.GnuTLSClientSimpleMode
	}
	return ""
}

// Close closes our Conn (under its close policy) and both ends, kills a
// process peer and removes its files. It returns our Conn's Close error.
// It may be called more than once. Over net.Pipe the peer's end goes
// first: our close_notify would wait for a reader.
func (p *Pair) Close() error {
	var err error
	if p.Spec.Path == Pipe && p.PeerEnd != nil {
		p.PeerEnd.Close()
	}
	if p.Ours != nil {
		err = p.Ours.Close()
	}
	for _, c := range []net.Conn{p.ourEnd, p.PeerEnd, p.OurSock, p.PeerSock} {
		if c != nil {
			c.Close()
		}
	}
	if p.Proc != nil {
		p.Proc.Kill()
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
	return err
}

// NewPair is [Open] for tests: it fails tb on error and closes the pair at
// cleanup, logging a process peer's output if tb failed.
func NewPair(tb testing.TB, spec Spec) *Pair {
	tb.Helper()
	p, err := Open(spec)
	if err != nil {
		tb.Fatalf("tlstest: %v peer, %v: %v", spec.Peer, spec.Case, err)
	}
	tb.Cleanup(func() {
		p.Close()
		if p.Proc != nil && tb.Failed() {
			tb.Logf("output of %s (pid %d):\n%s", p.Proc.Name(), p.Proc.Pid(), p.Proc.Output())
		}
	})
	return p
}

// Connect is [NewPair] followed by [Pair.Handshake], which must succeed on
// both sides and, when spec.Version is set, negotiate it.
func Connect(tb testing.TB, spec Spec) *Pair {
	tb.Helper()
	p := NewPair(tb, spec)
	ourErr, peerErr := p.Handshake()
	if ourErr != nil {
		tb.Fatalf("our handshake: %v", ourErr)
	}
	if peerErr != nil {
		tb.Fatalf("peer handshake: %v", peerErr)
	}
	if got := p.Ours.ConnectionState().Version; spec.Version != 0 && got != spec.Version {
		tb.Fatalf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(spec.Version))
	}
	return p
}

// PeerTCP returns a crypto/tls peer's TCP socket.
func (p *Pair) PeerTCP() *net.TCPConn { return p.PeerSock.(*net.TCPConn) }

// ResetPeer makes a crypto/tls peer vanish with a TCP reset: SO_LINGER 0,
// then close(2) on its socket.
func (p *Pair) ResetPeer() error {
	if err := p.PeerTCP().SetLinger(0); err != nil {
		return err
	}
	return p.PeerTCP().Close()
}

// SyncPeer makes sure a crypto/tls peer has read everything our side sent
// during the handshake (TLS 1.3 session tickets from our server in
// particular): we write a marker, the peer reads it. A peer that then
// closes its socket does so with an empty receive buffer, so its kernel
// sends FIN, not RST.
func (p *Pair) SyncPeer(tb testing.TB) {
	tb.Helper()
	const marker = "sync"
	done := Go(func() error {
		buf := make([]byte, len(marker))
		if _, err := io.ReadFull(p.Peer, buf); err != nil {
			return err
		}
		if string(buf) != marker {
			return fmt.Errorf("peer read %q", buf)
		}
		return nil
	})
	if _, err := p.Ours.Write([]byte(marker)); err != nil {
		tb.Fatalf("writing the marker: %v", err)
	}
	Wait(tb, done, "the peer's read of the marker")
}

// Exchange sends "ping" to a crypto/tls peer and reads its "pong".
// Afterwards each side has read everything the other sent so far, the
// TLS 1.3 session tickets included (they precede the data), and our TCP
// has an ACK for all it sent (the pong carries it): nothing unread can
// turn a later close into a reset, and the send queue is empty.
func (p *Pair) Exchange(tb testing.TB) {
	tb.Helper()
	done := Go(func() error {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(p.Peer, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("peer read %q", buf)
		}
		_, err := p.Peer.Write([]byte("pong"))
		return err
	})
	if _, err := p.Ours.Write([]byte("ping")); err != nil {
		tb.Fatalf("writing ping: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(p.Ours, buf); err != nil || string(buf) != "pong" {
		tb.Fatalf("reading pong: %q, %v", buf, err)
	}
	Wait(tb, done, "the peer's ping-pong")
}

// PeerAnswer makes a crypto/tls peer answer our close_notify the only way
// it can: its Read returns io.EOF, then its Close sends close_notify.
func (p *Pair) PeerAnswer() <-chan error {
	return Go(func() error {
		if err := ReadEOF(p.Peer); err != nil {
			return err
		}
		return p.Peer.Close()
	})
}

// FillSize and FillSndBuf are the sizes [Pair.FillSendQueue] works with:
// 128 KiB fits in our send buffer (SO_SNDBUF 1 MiB, doubled by the
// kernel) and far exceeds SOCK_MIN_SNDBUF.
const (
	FillSize   = 128 << 10
	FillSndBuf = 1 << 20
)

// FillSpec returns c's Spec for [Pair.FillSendQueue]: a Unix socket pair
// with our SO_SNDBUF at FillSndBuf.
func FillSpec(c Case) Spec {
	return Spec{Case: c, Transport: Unix, OurSndBuf: FillSndBuf}
}

// FillSendQueue writes data (at most FillSize bytes) to a crypto/tls peer,
// which does not read, then shrinks our SO_SNDBUF below what the kernel
// already holds for the peer, so that the next write(2) on our socket fails
// with EAGAIN: SSL_shutdown's write of the alert gets SSL_ERROR_WANT_WRITE
// with the whole alert record pending in OpenSSL. Once the peer reads, the
// kernel frees the buffers and the alert goes out. The pair must be made
// from [FillSpec].
//
// Why this is deterministic, and why on a Unix socket pair:
//   - Filling with Write until a write deadline passes would leave part of
//     an application-data record inside OpenSSL, and OpenSSL cannot send an
//     alert behind it ("bad write retry"). Here every Write completes (data
//     fits in our large send buffer), so the stream ends on a record
//     boundary.
//   - On TCP, Linux appends a small write to the last unsent segment (up to
//     64 KiB) without looking at SO_SNDBUF, so a 24-31 byte alert usually
//     still fits however full the buffer is. A Unix stream socket allocates
//     a new buffer for every write and refuses it while the bytes the peer
//     has not read yet exceed SO_SNDBUF, whatever their alignment.
//   - SetWriteBuffer(1) makes the limit SOCK_MIN_SNDBUF (about 4.5 KiB),
//     far below the 128 KiB the peer has not read.
func (p *Pair) FillSendQueue(tb testing.TB, data []byte) {
	tb.Helper()
	if err := p.Ours.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		tb.Fatal(err)
	}
	if _, err := p.Ours.Write(data); err != nil {
		tb.Fatalf("the fill must fit in our send buffer: %v", err)
	}
	if err := p.Ours.SetWriteDeadline(time.Time{}); err != nil {
		tb.Fatal(err)
	}
	if err := p.OurSock.SetWriteBuffer(1); err != nil {
		tb.Fatal(err)
	}
	n, err := p.Ours.SendQueueLen()
	if err != nil {
		tb.Fatal(err)
	}
	if n <= 16<<10 {
		tb.Fatalf("the fill must wait in the kernel for the peer: %d bytes queued", n)
	}
}
