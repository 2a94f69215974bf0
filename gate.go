package openssl

import "context"

// gate is a mutex whose Lock can give up when a context ends, so that
// Shutdown stays bounded while another goroutine reads or writes.
type gate chan struct{}

func newGate() gate { return make(gate, 1) }

func (g gate) Lock() { g <- struct{}{} }

func (g gate) Unlock() { <-g }

func (g gate) TryLock() bool {
	select {
	case g <- struct{}{}:
		return true
	default:
		return false
	}
}

// LockContext locks g, or returns ctx's error when ctx ends first. A free
// gate is taken even when ctx has already ended.
func (g gate) LockContext(ctx context.Context) error {
	if g.TryLock() {
		return nil
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
