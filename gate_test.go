package openssl

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gateTimeout bounds every wait of the gate tests (this internal test
// cannot use tlstest, which imports the package).
const gateTimeout = 10 * time.Second

// lockWithin locks g in another goroutine and reports whether that
// succeeded within gateTimeout; the lock is then held.
func lockWithin(g *gate) bool {
	locked := make(chan struct{})
	go func() {
		g.Lock()
		close(locked)
	}()
	select {
	case <-locked:
		return true
	case <-time.After(gateTimeout):
		return false
	}
}

// TestGateLockContext: a free gate is taken even with an ended context; a
// held gate is handed over when its holder unlocks it; a wait whose context
// ends returns the context's error and leaves the gate to whoever comes
// next once the holder unlocks it.
func TestGateLockContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()

	var g gate
	require.NoError(t, g.LockContext(ended), "a free gate, an ended context")
	require.False(t, g.TryLock())
	g.Unlock()

	require.True(t, g.TryLock())
	got := make(chan error, 1)
	go func() { got <- g.LockContext(t.Context()) }()
	g.Unlock() // to the waiter, or to nobody yet: either way the waiter gets it
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(gateTimeout):
		t.Fatal("LockContext did not get the unlocked gate")
	}
	require.False(t, g.TryLock(), "the waiter holds the gate")
	g.Unlock()

	require.True(t, g.TryLock())
	require.ErrorIs(t, g.LockContext(ended), context.Canceled, "a held gate, an ended context")
	g.Unlock()
	require.True(t, lockWithin(&g), "the gate after an abandoned wait")
	g.Unlock()
}

// TestGateLockContextRaces: the holder's Unlock races the waiter's context
// ending. Whatever the outcome, the gate is held by the waiter exactly when
// LockContext returned nil, and is free again afterwards: never lost.
func TestGateLockContextRaces(t *testing.T) {
	var g gate
	for i := range 500 {
		require.True(t, g.TryLock())
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() { got <- g.LockContext(ctx) }()
		if i%2 == 0 {
			cancel()
			g.Unlock()
		} else {
			g.Unlock()
			cancel()
		}
		var err error
		select {
		case err = <-got:
		case <-time.After(gateTimeout):
			t.Fatalf("round %d: LockContext did not return", i)
		}
		if err == nil {
			require.False(t, g.TryLock(), "round %d: LockContext returned nil without the gate", i)
			g.Unlock()
		} else {
			require.ErrorIs(t, err, context.Canceled)
		}
		require.True(t, lockWithin(&g), "round %d: the gate was lost", i)
		g.Unlock()
	}
}
