package openssl

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSchedSliceDue: a direction yields once it has made calls for
// timeSlice with no wait on its Conn, as the clock says when due reads it
// (every clockEvery calls; the first read starts the slice); the next slice
// starts at the yield, and a wait of either direction (the count changed)
// starts over.
func TestSchedSliceDue(t *testing.T) {
	const ms = time.Millisecond
	// Each batch makes calls calls at time at, with the Conn's wait count
	// at waits, and expects yields yields.
	type batch struct {
		waits  uint64
		at     time.Duration
		calls  int
		yields int
	}
	for _, tc := range []struct {
		name    string
		batches []batch
	}{
		{"the first clock read starts the slice", []batch{
			{0, 5 * ms, clockEvery, 0}, {0, 5*ms + timeSlice - 1, clockEvery, 0}, {0, 5*ms + timeSlice, clockEvery, 1}}},
		{"the clock is read every clockEvery calls", []batch{
			{0, 1, clockEvery - 1, 0}, {0, 10 * timeSlice, 1, 0}, {0, 11*timeSlice - 1, clockEvery - 1, 0}, {0, 11 * timeSlice, 1, 1}}},
		{"the next slice starts at the yield", []batch{
			{0, 1, clockEvery, 0}, {0, timeSlice + 1, clockEvery, 1}, {0, 2 * timeSlice, clockEvery, 0}, {0, 2*timeSlice + 1, clockEvery, 1}}},
		{"a wait starts over", []batch{
			{0, 1, clockEvery, 0}, {1, timeSlice + 1, clockEvery + 1, 0}, {1, 2*timeSlice + 1, clockEvery, 1}}},
		{"every call waiting", []batch{
			{1, 1, 1, 0}, {2, 10 * ms, 1, 0}, {3, 20 * ms, 1, 0}, {4, 30 * ms, 1, 0}}},
		{"the other direction's waits", []batch{
			{0, 1, clockEvery, 0}, {5, timeSlice + 1, clockEvery, 0}, {6, 3 * timeSlice, clockEvery, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s schedSlice
			total := 0
			for i, b := range tc.batches {
				yields := 0
				for range b.calls {
					if s.due(b.waits, func() time.Duration { return b.at }) {
						yields++
					}
				}
				require.Equal(t, b.yields, yields, "batch %d", i)
				total += yields
			}
			require.Equal(t, total, s.yields)
		})
	}
}
