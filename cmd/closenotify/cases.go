package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// neverAnswersTimeout bounds our wait for a peer that never answers.
const neverAnswersTimeout = 300 * time.Millisecond

// keepSendingBytes is what the peer of the keeps-sending cases sends after
// our close_notify.
const keepSendingBytes = 1 << 20

// demoCase is one way a peer behaves at shutdown, and what our side does.
type demoCase struct {
	name  string // for -case and the table
	title string // one line, for usage and -v
	// smallBuffers shrinks SO_SNDBUF on our socket and SO_RCVBUF on the
	// peer's before the handshake.
	smallBuffers bool
	// prepare, if set, runs on our side before the timed part.
	prepare func(ctx context.Context, r *run) error
	// ours runs on our side and returns the steps and the final error; ctx
	// ends at the run's deadline.
	ours func(ctx context.Context, r *run) ([]string, error)
	// peer runs in its own goroutine, on r.Peer and r.PeerSock; it returns
	// an error only when the peer saw something the case does not expect.
	peer func(r *run) error
	// want is the outcome the case must have, in every role and version:
	// the command checks every run against it, and so does its test.
	want expectation
}

// expectation is the outcome of a case.
type expectation struct {
	steps     string // the steps, joined with ", "
	err       string // tlstest.ErrName of the final error
	state     string // tlstest.StateName of ShutdownState afterwards
	discarded int64  // DiscardedBytes afterwards
}

// check returns how got differs from e.
func (e expectation) check(got *row) []string {
	var p []string
	if s := strings.Join(got.Steps, ", "); s != e.steps {
		p = append(p, fmt.Sprintf("steps %q, want %q", s, e.steps))
	}
	if s := tlstest.ErrName(got.Err); s != e.err {
		p = append(p, fmt.Sprintf("error %s, want %s", s, e.err))
	}
	if got.State != e.state {
		p = append(p, fmt.Sprintf("state %s, want %s", got.State, e.state))
	}
	if got.Discarded != e.discarded {
		p = append(p, fmt.Sprintf("discarded %d B, want %d B", got.Discarded, e.discarded))
	}
	return p
}

var cases = []*demoCase{
	{
		name:  "answers",
		title: "peer answers close_notify (crypto/tls: Read gives io.EOF, then Close)",
		ours:  shutdownSteps,
		peer: func(r *run) error {
			if err := peerSeesOurCloseNotify(r); err != nil {
				return err
			}
			r.logPeer("Close: %s (sends close_notify, then FIN)", errText(r.Peer.Close()))
			return nil
		},
		want: expectation{steps: "0, -1/WANT_READ, 1", err: "nil", state: "sent,received"},
	},
	{
		name:  "silent-close",
		title: "peer closes TCP silently (no close_notify)",
		ours:  shutdownSteps,
		peer: func(r *run) error {
			if err := peerSeesOurCloseNotify(r); err != nil {
				return err
			}
			r.logPeer("closed TCP under tls.Conn: %s (FIN, no close_notify)", errText(r.PeerSock.Close()))
			return nil
		},
		want: expectation{steps: "0, -1/WANT_READ, -1/SYSCALL", err: "ErrTruncated", state: "sent"},
	},
	{
		name:  "never-answers",
		title: fmt.Sprintf("peer never reads nor answers (our wait bounded by a %v context)", neverAnswersTimeout),
		ours: func(ctx context.Context, r *run) ([]string, error) {
			ctx, cancel := context.WithTimeout(ctx, neverAnswersTimeout)
			defer cancel()
			return shutdownSteps(ctx, r)
		},
		peer: func(r *run) error {
			r.idle()
			r.logPeer("did nothing until we closed")
			return nil
		},
		want: expectation{steps: "0, -1/WANT_READ", err: "ErrShutdownTimeout", state: "sent"},
	},
	{
		name:  "keeps-sending",
		title: fmt.Sprintf("peer sends %d B after our close_notify, then answers; we use Shutdown", keepSendingBytes),
		ours: func(ctx context.Context, r *run) ([]string, error) {
			err := r.Ours.Shutdown(ctx)
			return []string{"Shutdown", fmt.Sprintf("discarded %d B", r.Ours.DiscardedBytes())}, err
		},
		peer: func(r *run) error {
			if err := peerReadEOF(r); err != nil {
				return err
			}
			n, err := r.Peer.Write(make([]byte, keepSendingBytes))
			r.logPeer("wrote %d B: %s", n, errText(err))
			if err != nil {
				return err
			}
			r.logPeer("Close: %s", errText(r.Peer.Close()))
			return nil
		},
		want: expectation{
			steps: fmt.Sprintf("Shutdown, discarded %d B", keepSendingBytes),
			err:   "nil", state: "sent,received", discarded: keepSendingBytes,
		},
	},
	{
		name:  "keeps-sending-once",
		title: "the same peer, but we wait with a second ShutdownOnce: OpenSSL refuses the data",
		ours:  shutdownSteps,
		peer: func(r *run) error {
			if err := peerSeesOurCloseNotify(r); err != nil {
				return err
			}
			// Our side fails at the first record and closes; the write
			// ends when our socket resets, or fits in the buffers.
			n, err := r.Peer.Write(make([]byte, keepSendingBytes))
			r.logPeer("wrote %d B: %s", n, errText(err))
			return nil
		},
		want: expectation{
			steps: "0, -1/WANT_READ, -1/SSL",
			err:   "SSL: application data after close notify", state: "sent",
		},
	},
	{
		name:         "full-buffer",
		title:        "peer stops reading: our close_notify meets a full send buffer, then the peer reads",
		smallBuffers: true,
		prepare:      fillPipe,
		ours: func(ctx context.Context, r *run) ([]string, error) {
			// The pipe was full when fillPipe returned; top it up again
			// right before the first ShutdownOnce in case an ACK made a
			// little room since.
			n, err := tlstest.FillRaw(r.OurSock)
			r.filled += n
			if err != nil {
				return nil, err
			}
			return shutdownSteps(ctx, r)
		},
		peer: func(r *run) error {
			ping := make([]byte, len(pingMsg))
			if _, err := io.ReadFull(r.Peer, ping); err != nil || string(ping) != pingMsg {
				return fmt.Errorf("read %q, %v; want %q", ping, err, pingMsg)
			}
			r.peerReady.fire()
			if err := r.await(r.ready); err != nil {
				return err
			}
			// Our first step is expected to be -1/WANT_WRITE; any first
			// want lets the peer go on, so that a run that differs ends
			// at once instead of at the deadline.
			if err := r.await(r.wantWrite, r.wantRead); err != nil {
				return err
			}
			n, err := io.CopyN(io.Discard, r.PeerSock, r.filled)
			r.logPeer("started reading: skipped %d raw filler bytes: %s", n, errText(err))
			if err != nil {
				return err
			}
			if err := peerSeesOurCloseNotify(r); err != nil {
				return err
			}
			r.logPeer("Close: %s", errText(r.Peer.Close()))
			return nil
		},
		want: expectation{steps: "-1/WANT_WRITE, 0, -1/WANT_READ, 1", err: "nil", state: "sent,received"},
	},
	{
		name:  "reset",
		title: "peer resets the connection (SO_LINGER 0, close: RST)",
		ours:  shutdownSteps,
		peer: func(r *run) error {
			if err := r.await(r.wantRead); err != nil {
				return err
			}
			err := r.ResetPeer()
			r.logPeer("SetLinger(0) and Close: %s (RST)", errText(err))
			return err
		},
		want: expectation{steps: "0, -1/WANT_READ, -1/SYSCALL", err: "ECONNRESET", state: "sent"},
	},
	{
		name:  "half-close",
		title: "half-close: we send a request and CloseWrite, the peer reads to EOF and answers",
		ours:  halfClose,
		peer: func(r *run) error {
			req, err := io.ReadAll(r.Peer)
			r.logPeer("read %q, then io.EOF (close_notify): %s", req, errText(err))
			if err != nil {
				return err
			}
			if string(req) != request {
				return fmt.Errorf("request %q, want %q", req, request)
			}
			n, err := r.Peer.Write([]byte(answer))
			r.logPeer("wrote %d B answer: %s; Close: %s", n, errText(err), errText(r.Peer.Close()))
			return err
		},
		want: expectation{steps: "write 5 B, CloseWrite, read 5 B, EOF", err: "nil", state: "sent,received"},
	},
}

func caseByName(name string) *demoCase {
	for _, c := range cases {
		if c.name == name {
			return c
		}
	}
	return nil
}

// peerSeesOurCloseNotify reads on the peer to io.EOF (peerReadEOF), then
// waits until our side waits for the answer (its first -1/WANT_READ), so
// that what the peer does next meets a waiting ShutdownOnce.
func peerSeesOurCloseNotify(r *run) error {
	if err := peerReadEOF(r); err != nil {
		return err
	}
	return r.await(r.wantRead)
}

// peerReadEOF reads on the peer until crypto/tls returns io.EOF, which it
// does for our close_notify. Data before it is unexpected.
func peerReadEOF(r *run) error {
	err := tlstest.ReadEOF(r.Peer)
	r.logPeer("read until io.EOF (our close_notify): %s", errText(err))
	return err
}

// pingMsg is the record our side sends before filling the pipe: the peer
// reads it, and with it everything else sent before (TLS 1.3 session
// tickets), so that only the filler and our close_notify remain.
const pingMsg = "ping"

// fillPipe prepares the full-buffer case: after the ping, raw filler until
// the peer's receive buffer and our send buffer are full. The filler goes
// straight to the socket, not through TLS: the peer skips exactly that many
// raw bytes before it reads TLS again, so the TLS stream stays intact.
// (Filling with Conn.Write would leave a half-sent record inside OpenSSL,
// which our close_notify would then have to wait behind.)
func fillPipe(ctx context.Context, r *run) error {
	if _, err := r.Ours.Write([]byte(pingMsg)); err != nil {
		return err
	}
	if err := waitSignal(ctx, r.peerReady); err != nil {
		return fmt.Errorf("waiting for the peer to read the ping: %w", err)
	}
	n, err := tlstest.FillRaw(r.OurSock)
	r.filled = n
	r.ready.fire()
	return err
}

const (
	request = "hello"
	answer  = "world"
)

// halfClose sends a request, half-closes (close_notify and FIN) and reads
// the answer until the peer's close_notify.
func halfClose(ctx context.Context, r *run) ([]string, error) {
	n, err := r.Ours.Write([]byte(request))
	steps := []string{fmt.Sprintf("write %d B", n)}
	if err != nil {
		return steps, err
	}
	if err := r.Ours.CloseWrite(); err != nil {
		return append(steps, "CloseWrite/"+tlstest.ErrName(err)), err
	}
	steps = append(steps, "CloseWrite")
	var got bytes.Buffer
	buf := make([]byte, 64)
	for range maxSteps {
		n, err := r.Ours.Read(buf)
		if n > 0 {
			steps = append(steps, fmt.Sprintf("read %d B", n))
			got.Write(buf[:n])
		}
		if err == io.EOF {
			steps = append(steps, "EOF")
			if got.String() != answer {
				return steps, fmt.Errorf("answer %q, want %q", got.String(), answer)
			}
			return steps, nil
		}
		if err != nil {
			return steps, err
		}
	}
	return steps, errTooMany
}

// maxSteps bounds the ShutdownOnce calls, and the Reads, of one run; a
// run that needs more is spinning, which is itself a finding.
const maxSteps = 16

var errTooMany = fmt.Errorf("more than %d steps", maxSteps)

// shutdownSteps shuts r.Ours down the step-by-step way: ShutdownOnce, and
// Conn.Retry to wait whenever it asks to (tlstest.Steps). It fires
// r.wantRead or r.wantWrite at the first result of each.
//
// When ctx or the deadline ends first, Retry returns ShutdownOnce's last
// error and the cause; shutdownSteps reports that as ErrShutdownTimeout
// (still wrapping both), the way Shutdown does.
func shutdownSteps(ctx context.Context, r *run) ([]string, error) {
	s := &tlstest.Steps{Conn: r.Ours, Max: maxSteps, Notify: func(_ openssl.ShutdownResult, err error) {
		switch {
		case errors.Is(err, openssl.ErrWantRead):
			r.wantRead.fire()
		case errors.Is(err, openssl.ErrWantWrite):
			r.wantWrite.fire()
		}
	}}
	err := s.Shutdown(ctx)
	if err != nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		err = fmt.Errorf("%w: %w", openssl.ErrShutdownTimeout, err)
	}
	return s.Seq, err
}
