package openssl

import (
	"context"
	"sync"
)

// gate is a mutex whose Lock can give up when a context ends, so that
// Shutdown stays bounded while another goroutine reads or writes. Read and
// Write take one on every call, so the common paths are sync.Mutex's own;
// only LockContext on a held gate costs more (see there). The zero gate is
// unlocked.
type gate struct{ mu sync.Mutex }

func (g *gate) Lock() { g.mu.Lock() }

func (g *gate) Unlock() { g.mu.Unlock() }

func (g *gate) TryLock() bool { return g.mu.TryLock() }

// LockContext locks g, or returns ctx's error when ctx ends first. A free
// gate is taken even when ctx has already ended.
//
// A sync.Mutex wait cannot be abandoned, so on a held gate another
// goroutine waits for it and hands it over. When ctx ends first, that
// goroutine unlocks the gate as soon as it gets it: it lives as long as
// the holder keeps the gate (a Read parked for the peer, say), and no
// longer. The handover is an unbuffered send, so the gate is either
// received by the caller or released, never lost.
func (g *gate) LockContext(ctx context.Context) error {
	if g.mu.TryLock() {
		return nil
	}
	done := ctx.Done()
	if done == nil {
		g.mu.Lock()
		return nil
	}
	handover := make(chan struct{})
	go func() {
		g.mu.Lock()
		select {
		case handover <- struct{}{}:
		case <-done:
			g.mu.Unlock()
		}
	}()
	select {
	case <-handover:
		return nil
	case <-done:
		return ctx.Err()
	}
}
