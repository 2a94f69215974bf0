package openssl

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSchedSliceDue: a slice starts at the first call after a wait on the
// Conn, a direction yields once it has made calls for timeSlice since then,
// and the next slice starts at that call; a wait of either direction (the
// count changed) starts over.
func TestSchedSliceDue(t *testing.T) {
	const ms = time.Millisecond
	type call struct {
		waits uint64
		now   time.Duration
		yield bool
	}
	for _, tc := range []struct {
		name  string
		calls []call
	}{
		{"a slice starts at the first call", []call{{0, 5 * ms, false}, {0, 5*ms + timeSlice - 1, false}, {0, 5*ms + timeSlice, true}}},
		{"the next slice starts at the yield", []call{{0, 1, false}, {0, timeSlice + 1, true}, {0, 2 * timeSlice, false}, {0, 2*timeSlice + 1, true}}},
		{"a wait starts over", []call{{0, 1, false}, {1, timeSlice + 1, false}, {1, timeSlice + 2, false}, {1, 2 * timeSlice, false}, {1, 2*timeSlice + 2, true}}},
		{"every call waiting", []call{{1, 1, false}, {2, 10 * ms, false}, {3, 20 * ms, false}, {4, 30 * ms, false}}},
		{"the other direction's waits", []call{{0, 1, false}, {0, 2, false}, {5, timeSlice + 1, false}, {5, timeSlice + 2, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s schedSlice
			yields := 0
			for i, c := range tc.calls {
				got := s.due(c.waits, c.now)
				require.Equal(t, c.yield, got, "call %d", i)
				if got {
					yields++
				}
			}
			require.Equal(t, yields, s.yields)
		})
	}
}
