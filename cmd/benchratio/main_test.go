package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRatios(t *testing.T) {
	in := `goos: linux
BenchmarkWrite/1KiB/openssl-2     100  200 ns/op  5.00 MB/s  16 B/op  0 allocs/op
BenchmarkWrite/1KiB/openssl-2     100  400 ns/op  5.00 MB/s  16 B/op  0 allocs/op
BenchmarkWrite/1KiB/openssl-2     100  300 ns/op  5.00 MB/s  16 B/op  0 allocs/op
BenchmarkWrite/1KiB/cryptotls-2   100  100 ns/op  9.00 MB/s  32 B/op  1 allocs/op
BenchmarkHandshake/openssl-2      10   1000 ns/op
PASS
`
	var echo, out bytes.Buffer
	results, order, err := parse(strings.NewReader(in), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != in {
		t.Fatalf("echo differs:\n%s", echo.String())
	}
	report(&out, results, order)
	got := out.String()
	// Median 300 ns against 100 ns; 16 B against 32 B; allocs 0 and 1.
	for _, want := range []string{"BenchmarkWrite/1KiB", "3.00x", "0.50x", "0, 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "BenchmarkHandshake") {
		t.Errorf("a benchmark without a crypto/tls run has no ratio:\n%s", got)
	}
}
