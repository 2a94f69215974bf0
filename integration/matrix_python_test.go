package integration_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The Python ssl peer of the matrix, in both roles. Python's ssl module
// never answers a close_notify by itself: recv returns b"" and the
// application calls unwrap(), which sends its close_notify.

var peerPython = &peerImpl{name: "Python ssl", roles: []role{weClient, weServer}, connect: connectPython}

// pythonTimeout is the Python peer's socket timeout: a recv or unwrap
// that waits longer replies TimeoutError, well before our own waits
// (wait) give up, so its replies stay in step with its commands.
const pythonTimeout = wait / 2

// pythonSide drives the Python peer line by line: one command on its
// standard input, then its reply lines, read from the output in order.
type pythonSide struct {
	p          *peer.Process
	truncation string // the exception class Python raises for a truncation

	mu      sync.Mutex // held for a command and its replies
	mark    int        // protected by mu; output up to mark is consumed
	pending int        // protected by mu; replies of commands sent but not waited for
	got     string     // protected by mu; data received from us
	ended   peerEnd    // protected by mu; "" while the peer's reading has not ended
	broken  error      // protected by mu; the replies are out of step
}

func connectPython(t *testing.T, c cell, via route) (*openssl.Conn, peerSide) {
	pair := openPair(t, c, tlstest.Python, via, tlstest.Spec{Python: peer.PythonOptions{Timeout: pythonTimeout}})
	p := pair.Proc
	connected := peer.PythonConnected + "TLSv" + strings.TrimPrefix(c.v.name, "TLS") + "\n"
	require.NoError(t, p.WaitFor(connected, wait))
	pyVersion, err := peer.PythonVersion(p, wait)
	require.NoError(t, err)
	out := p.Output()
	return pair.Ours, &pythonSide{
		p:          p,
		truncation: peer.PythonTruncationClass(pyVersion),
		mark:       strings.Index(out, connected) + len(connected),
	}
}

// line returns the next reply line, waiting at most until deadline.
// The caller holds s.mu.
func (s *pythonSide) line(deadline time.Time) (string, error) {
	if err := s.p.WaitForAfter(s.mark, "\n", time.Until(deadline)); err != nil {
		return "", err
	}
	out := s.p.Output()[s.mark:]
	i := strings.IndexByte(out, '\n')
	s.mark += i + 1
	return out[:i+1], nil
}

// command sends cmd and returns its n reply lines, after the replies of
// commands sent earlier without waiting (drain). The caller holds s.mu.
func (s *pythonSide) command(cmd string, n int) ([]string, error) {
	deadline := time.Now().Add(wait)
	if err := s.drain(deadline); err != nil {
		return nil, err
	}
	if err := s.p.Send(cmd); err != nil {
		return nil, err
	}
	var replies []string
	for len(replies) < n {
		l, err := s.line(deadline)
		if err != nil {
			s.broken = fmt.Errorf("python peer: no reply to %q: %w", strings.TrimSpace(cmd), err)
			return nil, s.broken
		}
		replies = append(replies, l)
	}
	return replies, nil
}

// drain waits for the reply of the unwrap that closeNotify sent without
// waiting: UNWRAPPED says the peer's reading ended with our close_notify.
// The caller holds s.mu.
func (s *pythonSide) drain(deadline time.Time) error {
	if s.broken != nil {
		return s.broken
	}
	for ; s.pending > 0; s.pending-- {
		l, err := s.line(deadline)
		if err != nil {
			s.broken = fmt.Errorf("python peer: no reply to unwrap: %w", err)
			return s.broken
		}
		switch end := s.classify(l); {
		case l == peer.PythonUnwrapped:
			s.ended = endCloseNotify
		case end == endTruncated || end == endReset:
			s.ended = end
		}
	}
	return nil
}

// classify says what a reply to recv or recvall other than DATA means:
// EOF is a close_notify (SuppressRaggedEOFs and IgnoreUnexpectedEOF are
// false), OpenSSL's UNEXPECTED_EOF reason a truncation, an SSLEOFError
// without it a reset (Python's report of ECONNRESET, see peer.PythonServer),
// a timeout a reading that has not ended.
func (s *pythonSide) classify(reply string) peerEnd {
	switch {
	case reply == peer.PythonEOF:
		return endCloseNotify
	case strings.HasPrefix(reply, peer.PythonError+s.truncation+": ") && strings.Contains(reply, peer.PythonUnexpectedEOF):
		return endTruncated
	case strings.HasPrefix(reply, peer.PythonError+peer.PythonSSLEOFError+": "+peer.PythonEOFViolation):
		return endReset
	case strings.HasPrefix(reply, peer.PythonError+"ConnectionResetError: "):
		return endReset
	case strings.HasPrefix(reply, peer.PythonError+peer.PythonTimeoutError):
		return endOpen
	}
	return endUnknown
}

// data decodes a DATA reply.
func data(reply string) (string, error) {
	h, ok := strings.CutPrefix(reply, peer.PythonData)
	if !ok {
		return "", fmt.Errorf("python peer replied %q, not data", reply)
	}
	b, err := hex.DecodeString(strings.TrimSuffix(h, "\n"))
	return string(b), err
}

func (s *pythonSide) send(d string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.command(peer.PythonSend([]byte(d)), 1)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("%s%d\n", peer.PythonSent, len(d)); r[0] != want {
		return fmt.Errorf("python peer replied %q to send, want %q", r[0], want)
	}
	return nil
}

// received calls recv for the bytes still missing until the peer has
// want, or its reading ends.
func (s *pythonSide) received(want string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(wait)
	for len(s.got) < len(want) && s.ended == "" && time.Now().Before(deadline) {
		r, err := s.command(peer.PythonRecv(len(want)-len(s.got)), 1)
		if err != nil {
			return err
		}
		if d, err := data(r[0]); err == nil {
			s.got += d
			continue
		}
		if s.ended = s.classify(r[0]); s.ended == endOpen {
			s.ended = ""
		} else if s.ended == endUnknown {
			return fmt.Errorf("python peer replied %q to recv", r[0])
		}
	}
	switch {
	case s.got == want:
		return nil
	case strings.HasPrefix(want, s.got) && s.ended != "":
		return fmt.Errorf("python peer's reading ended (%s) after %s", s.ended, quoteShort(s.got))
	}
	return fmt.Errorf("python peer received %s, want %s", quoteShort(s.got), quoteShort(want))
}

// recvAll reads until the peer's reading ends and returns how. The caller
// holds s.mu.
func (s *pythonSide) recvAll() (peerEnd, error) {
	if s.ended != "" {
		return s.ended, nil
	}
	r, err := s.command(peer.PythonCmdRecvAll, 2)
	if err != nil {
		return endOpen, err
	}
	d, err := data(r[0])
	if err != nil {
		return endUnknown, err
	}
	s.got += d
	end := s.classify(r[1])
	if end == endUnknown {
		return end, fmt.Errorf("python peer replied %q to recvall", r[1])
	}
	if end != endOpen {
		s.ended = end
	}
	return end, nil
}

// answer: Python never answers by itself; a well-behaved application reads
// to EOF (our close_notify), calls unwrap, which sends its close_notify,
// and closes the socket.
func (s *pythonSide) answer() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	end, err := s.recvAll()
	if err != nil {
		return "", err
	}
	if end != endCloseNotify {
		return "", fmt.Errorf("python peer's reading ended as %s, not with our close_notify", end)
	}
	r, err := s.command(peer.PythonCmdUnwrap, 1)
	if err != nil {
		return "", err
	}
	if r[0] != peer.PythonUnwrapped {
		return "", fmt.Errorf("python peer replied %q to unwrap", r[0])
	}
	// unwrap leaves the TCP connection open; the application closes it,
	// as crypto/tls's Close does after its alert.
	if r, err = s.command(peer.PythonCmdClose, 1); err != nil {
		return "", err
	}
	if r[0] != peer.PythonClosed {
		return "", fmt.Errorf("python peer replied %q to close after unwrap", r[0])
	}
	return "answers only when the application calls unwrap()", nil
}

// closeNotify calls unwrap and does not wait for its reply: unwrap sends
// close_notify, then waits (at most pythonTimeout) for ours, which the
// scenario sends only later.
func (s *pythonSide) closeNotify() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	if err := s.p.Send(peer.PythonCmdUnwrap); err != nil {
		return err
	}
	s.pending++
	return nil
}

func (s *pythonSide) closed(cmd string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.command(cmd, 1)
	if err != nil {
		return err
	}
	if r[0] != peer.PythonClosed {
		return fmt.Errorf("python peer replied %q to %q", r[0], strings.TrimSpace(cmd))
	}
	return nil
}

// closeTCP closes the socket under the SSL object: FIN, no close_notify.
func (s *pythonSide) closeTCP() error { return s.closed(peer.PythonCmdRawClose) }

// reset closes the socket with SO_LINGER 0: RST.
func (s *pythonSide) reset() error { return s.closed(peer.PythonCmdReset) }

func (s *pythonSide) pause() error  { return pauseProcess(s.p) }
func (s *pythonSide) resume() error { return resumeProcess(s.p) }

// end reads until the peer's reading ends (recvall) and says how; after
// closeNotify, unwrap's reply says it.
func (s *pythonSide) end() peerEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.drain(time.Now().Add(wait)); err != nil {
		return endOpen
	}
	end, _ := s.recvAll() // endOpen if no reply came, endUnknown if it made no sense
	return end
}
