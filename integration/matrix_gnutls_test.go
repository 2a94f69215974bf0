package integration_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The GnuTLS peers of the matrix: gnutls-serv when we are the client,
// gnutls-cli when we are the server.

var (
	peerGnuTLSServ = &peerImpl{name: "gnutls-serv", roles: []role{weClient}, connect: connectGnuTLSServer}
	peerGnuTLSCli  = &peerImpl{name: "gnutls-cli", roles: []role{weServer}, connect: connectGnuTLSClient}
)

// gnutlsCloseNotifyReceived is the GnuTLS debug line (level 5, gnutls-serv
// -d 5) logged when a close_notify alert arrives. gnutls-serv prints
// nothing else about it.
const gnutlsCloseNotifyReceived = "Alert[1|0] - Close notify - was received"

// gnutlsPushError is GnuTLS's message when sending fails
// (GNUTLS_E_PUSH_ERROR): gnutls-serv prints "Error while sending data",
// then "Error: " and this, when echoing to a peer that has reset the
// connection (we closed with its echo unread).
const gnutlsPushError = "Error in the push function."

// waitForAny waits at most timeout until p's output after mark contains
// one of subs, and returns its index, or -1 with the error if the output
// ended or the timeout passed first.
func waitForAny(p *peer.Process, mark int, timeout time.Duration, subs ...string) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		out := p.Output()
		for i, sub := range subs {
			if strings.Contains(out[mark:], sub) {
				return i, nil
			}
		}
		// Every line the peers print ends in "\n": wait for the next one.
		if err := p.WaitForAfter(len(out), "\n", time.Until(deadline)); err != nil {
			return -1, err
		}
	}
}

// gnutlsServSide is gnutls-serv --echo, the only mode in which it sends
// application data: it sends back every record it receives. So received
// reads the echo on our Conn (which also keeps the echo out of the
// scenario's own reads), and send makes the peer send data by writing it
// from our Conn for the peer to echo: the peer then has received it too.
type gnutlsServSide struct {
	p      *peer.Process
	c      *openssl.Conn
	echoed string // the echo read back so far; only the scenario's goroutine calls received
}

func connectGnuTLSServer(t *testing.T, c cell, via route) (*openssl.Conn, peerSide) {
	require.Equal(t, weClient, c.ours, "gnutls-serv is a server")
	p := openPair(t, c, tlstest.GnuTLS, via, tlstest.Spec{PeerArgs: []string{"-d", "5"}})
	return p.Ours, &gnutlsServSide{p: p.Proc, c: p.Ours}
}

// send writes data from our side; gnutls-serv echoes it, so the peer sends
// it to us.
func (s *gnutlsServSide) send(data string) error {
	if err := s.c.SetWriteDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	defer s.c.SetWriteDeadline(time.Time{})
	if _, err := s.c.Write([]byte(data)); err != nil {
		return fmt.Errorf("gnutls-serv sends only the echo of our data, and we cannot write: %w", err)
	}
	return nil
}

// received reads back, from our Conn, gnutls-serv's echo of what it
// received beyond the echo read so far, and compares.
func (s *gnutlsServSide) received(want string) error {
	if len(want) > len(s.echoed) {
		if err := s.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return err
		}
		defer s.c.SetReadDeadline(time.Time{})
		buf := make([]byte, len(want)-len(s.echoed))
		n, err := io.ReadFull(s.c, buf)
		s.echoed += string(buf[:n])
		if err != nil {
			return fmt.Errorf("gnutls-serv echoed %s, then our Read failed: %w", quoteShort(s.echoed), err)
		}
	}
	if !strings.HasPrefix(s.echoed, want) {
		return fmt.Errorf("gnutls-serv echoed %s, want %s", quoteShort(s.echoed), quoteShort(want))
	}
	return nil
}

// answer: gnutls-serv answers close_notify by itself, then sends FIN.
func (s *gnutlsServSide) answer() (string, error) { return "answers by itself", nil }

// closeNotify: gnutls-serv has no way to be told to close first.
func (s *gnutlsServSide) closeNotify() error { return errUnsupported }

// closeTCP kills gnutls-serv; its kernel closes the connection with FIN
// (it has read everything we sent: received saw the echo).
func (s *gnutlsServSide) closeTCP() error {
	s.p.Kill()
	return nil
}

// reset: gnutls-serv cannot reset on demand. It is stopped first, so that
// the scenario's fallback (our Close wakes our blocked Read) is not raced by
// gnutls-serv answering our close_notify and closing; it is killed at
// cleanup.
func (s *gnutlsServSide) reset() error {
	if err := pauseProcess(s.p); err != nil {
		return err
	}
	return errUnsupported
}

func (s *gnutlsServSide) pause() error  { return pauseProcess(s.p) }
func (s *gnutlsServSide) resume() error { return resumeProcess(s.p) }

// end waits for gnutls-serv's report of how the connection ended: the
// debug line of a close_notify, or the error that ended it (a reset shows
// as a pull error when receiving, a push error when echoing).
func (s *gnutlsServSide) end() peerEnd {
	i, err := waitForAny(s.p, 0, wait,
		gnutlsCloseNotifyReceived,
		"Error: "+peer.GnuTLSPrematureEOF,
		"Error: "+peer.GnuTLSPullError,
		"Error: "+gnutlsPushError)
	if err != nil {
		return endOpen
	}
	return []peerEnd{endCloseNotify, endTruncated, endReset, endReset}[i]
}

// gnutlsCliSide is gnutls-cli: its standard input is sent as data, the
// data it receives is printed on its standard output.
type gnutlsCliSide struct {
	p    *peer.Process
	mark int // output offset where the received data starts
}

func connectGnuTLSClient(t *testing.T, c cell, via route) (*openssl.Conn, peerSide) {
	require.Equal(t, weServer, c.ours, "gnutls-cli is a client")
	p := openPair(t, c, tlstest.GnuTLS, via, tlstest.Spec{})
	// gnutls-cli prints an empty line after GnuTLSClientSimpleMode.
	const simpleMode = peer.GnuTLSClientSimpleMode + "\n"
	require.NoError(t, p.Proc.WaitFor(simpleMode, wait))
	out := p.Proc.Output()
	return p.Ours, &gnutlsCliSide{p: p.Proc, mark: strings.Index(out, simpleMode) + len(simpleMode)}
}

func (s *gnutlsCliSide) send(data string) error { return s.p.Send(data) }

// received waits until gnutls-cli has printed want, and checks it is
// exactly what it printed since the handshake.
func (s *gnutlsCliSide) received(want string) error {
	if err := s.p.WaitForAfter(s.mark, want, wait); err != nil {
		return err
	}
	if got := s.p.Output()[s.mark:]; !strings.HasPrefix(got, want) {
		return fmt.Errorf("gnutls-cli printed %s, want %s", quoteShort(got), quoteShort(want))
	}
	return nil
}

// errNoAnswer: gnutls-cli never answers close_notify.
var errNoAnswer = fmt.Errorf("gnutls-cli closes TCP without answering close_notify: %w", errUnsupported)

func (s *gnutlsCliSide) answer() (string, error) { return "", errNoAnswer }

// closeNotify: end of standard input makes gnutls-cli send close_notify
// and FIN, and exit. When our close_notify reached it first, it has already
// exited (closing TCP without answering, see errNoAnswer) and its standard
// input with it: the peer's side of the race is done then, not failed.
func (s *gnutlsCliSide) closeNotify() error {
	err := s.p.CloseStdin()
	select {
	case <-s.p.Exited():
		return nil
	default:
		return err
	}
}

// closeTCP kills gnutls-cli; its kernel sends FIN.
func (s *gnutlsCliSide) closeTCP() error {
	s.p.Kill()
	return nil
}

// reset: gnutls-cli cannot reset on demand. It is stopped first, so that
// the scenario's fallback (our Close wakes our blocked Read) is not raced by
// gnutls-cli closing TCP as soon as our close_notify arrives; it is killed
// at cleanup.
func (s *gnutlsCliSide) reset() error {
	// Stopped, it cannot react to what the scenario does next; it may
	// also have exited already (it does at our close_notify).
	pauseProcess(s.p)
	return errUnsupported
}

func (s *gnutlsCliSide) pause() error  { return pauseProcess(s.p) }
func (s *gnutlsCliSide) resume() error { return resumeProcess(s.p) }

// end waits for gnutls-cli to exit (it does when its reading ends) and
// reads how from its output.
func (s *gnutlsCliSide) end() peerEnd {
	if _, err := s.p.Wait(wait); err != nil {
		return endOpen
	}
	out := s.p.Output()[s.mark:]
	switch {
	case strings.Contains(out, peer.GnuTLSClientPeerClosed):
		return endCloseNotify
	case strings.Contains(out, peer.GnuTLSClientFatal+peer.GnuTLSPrematureEOF):
		return endTruncated
	case strings.Contains(out, peer.GnuTLSClientFatal+peer.GnuTLSPullError):
		return endReset
	}
	return endUnknown
}
