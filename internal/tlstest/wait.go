package tlstest

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
)

// Timeout bounds every wait of the harness and of the tests built on it.
const Timeout = 10 * time.Second

// Go runs f in a goroutine and delivers its error on the returned channel,
// which has room for it: the goroutine never blocks on a reader that gave
// up.
func Go(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// Result waits at most [Timeout] for ch and returns its error; it fails tb
// if nothing arrives in time.
func Result(tb testing.TB, ch <-chan error, what string) error {
	tb.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(Timeout):
		tb.Fatalf("%s: no result within %v", what, Timeout)
		return nil
	}
}

// Wait is [Result] requiring a nil error.
func Wait(tb testing.TB, ch <-chan error, what string) {
	tb.Helper()
	if err := Result(tb, ch, what); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Within runs f in a goroutine and fails tb if it has not returned after
// d: it proves that f is bounded, the only timing assertion tests make. f
// must not fail tb itself (FailNow works on the test's goroutine only):
// let it store results that the caller checks afterwards.
func Within(tb testing.TB, d time.Duration, what string, f func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		tb.Fatalf("%s did not return within %v", what, d)
	}
}

// ReadEOF reads from r until an error, and returns nil if that is io.EOF
// with no data before it.
func ReadEOF(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("read %d unexpected bytes before EOF", n)
	}
	return nil
}

// Pattern returns n bytes that are not all alike, so that a lost or
// reordered chunk shows.
func Pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// Context returns a context that ends after [Timeout], or when tb's test
// ends.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), Timeout)
	tb.Cleanup(cancel)
	return ctx
}

// PollUntil calls cond every millisecond until it returns true, and fails
// tb if that takes longer than [Timeout]. It is for kernel state that no
// readiness event reports (SIOCOUTQ, as Close's DrainSendQueue polls it),
// never for ordering goroutines: use channels for that.
func PollUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, Timeout)
		}
		<-tick.C
	}
}

// Started returns a function that fails t if a peer constructor failed,
// and otherwise returns the process and kills it at cleanup, logging its
// output if t failed: Started(t)(peer.OpenSSLServer(t.Context(), ...)).
func Started(t testing.TB) func(*peer.Process, error) *peer.Process {
	return func(p *peer.Process, err error) *peer.Process {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				t.Logf("output of %s (pid %d):\n%s", p.Name(), p.Pid(), p.Output())
			}
		})
		return p
	}
}
