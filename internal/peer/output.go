package peer

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// output is the combined standard output and standard error of a process.
// It wakes waiters on every write and when the output ends, so that WaitFor
// needs no polling.
type output struct {
	mu      sync.Mutex
	buf     strings.Builder // protected by mu
	changed chan struct{}   // closed and replaced on every write; protected by mu
	ended   chan struct{}   // closed by end once the process's output is at EOF
}

func newOutput() *output {
	return &output{changed: make(chan struct{}), ended: make(chan struct{})}
}

// Write appends b and wakes every waiter. It never fails.
func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

// end records that no more output will come. It must be called exactly once.
func (o *output) end() {
	close(o.ended)
}

// String returns everything written so far.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output after the first from bytes contains substr.
// It returns nil as soon as it does; an error if the output ends or timeout
// passes first. The error quotes the output.
func (o *output) waitFor(from int, substr string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		o.mu.Lock()
		s := o.buf.String()
		changed := o.changed
		o.mu.Unlock()
		if from > len(s) {
			from = len(s)
		}
		if strings.Contains(s[from:], substr) {
			return nil
		}
		select {
		case <-changed:
		case <-o.ended:
			// Writes happen before end, so this read is final.
			if s := o.String(); strings.Contains(s[min(from, len(s)):], substr) {
				return nil
			}
			return fmt.Errorf("output ended without %q; output was:\n%s", substr, o.String())
		case <-timer.C:
			return fmt.Errorf("%w: no %q after %v; output was:\n%s", ErrTimeout, substr, timeout, o.String())
		}
	}
}
