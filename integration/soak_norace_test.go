//go:build !race

package integration_test

// soakConns is how many connections TestSoak makes. The race detector slows
// the run down; soak_race_test.go sets a smaller count for it.
const soakConns = 20000
