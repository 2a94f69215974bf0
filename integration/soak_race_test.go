//go:build race

package integration_test

// soakConns is how many connections TestSoak makes under the race detector.
// It slows CPU-bound Go code 5 to 10 times, this test about 2 times (its time
// goes mostly to OpenSSL and the kernel): a quarter of the normal count
// (soak_norace_test.go) keeps the run well under two minutes on two cores.
const soakConns = 5000
