package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/stretchr/testify/require"
)

// outcome is what one case must give, in both roles over both versions.
type outcome struct {
	steps     string
	err       string
	state     string
	discarded int64
}

// wantOutcomes is the table the demo must print, written out independently
// of the command's own expectations (which the test checks agree).
var wantOutcomes = map[string]outcome{
	"answers":            {"0, -1/WANT_READ, 1", "nil", "sent,received", 0},
	"silent-close":       {"0, -1/WANT_READ, -1/SYSCALL", "ErrTruncated", "sent", 0},
	"never-answers":      {"0, -1/WANT_READ", "ErrShutdownTimeout", "sent", 0},
	"keeps-sending":      {"Shutdown, discarded 1048576 B", "nil", "sent,received", 1 << 20},
	"keeps-sending-once": {"0, -1/WANT_READ, -1/SSL", "SSL: application data after close notify", "sent", 0},
	"full-buffer":        {"-1/WANT_WRITE, 0, -1/WANT_READ, 1", "nil", "sent,received", 0},
	"reset":              {"0, -1/WANT_READ, -1/SYSCALL", "ECONNRESET", "sent", 0},
	"half-close":         {"write 5 B, CloseWrite, read 5 B, EOF", "nil", "sent,received", 0},
}

func TestDemoOutcomes(t *testing.T) {
	// Warm up (netpoller, cgo) so that the leak baselines below are stable.
	_, err := runDemo([]string{"answers"})
	require.NoError(t, err)
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	liveSSL, _ := openssl.LiveObjects()

	start := time.Now()
	rows, err := runDemo(nil)
	require.NoError(t, err)
	// Bounded: a few seconds normally; generous for -race on a busy machine.
	require.Less(t, time.Since(start), 30*time.Second)

	require.Len(t, rows, len(wantOutcomes)*len(roles)*len(versions))
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Case]++
		t.Run(fmt.Sprintf("%s/we_are_%s/%s", r.Case, r.Role, tls.VersionName(r.Version)), func(t *testing.T) {
			want, ok := wantOutcomes[r.Case]
			require.True(t, ok, "case %q not in the test's table", r.Case)
			require.Equal(t, want.steps, strings.Join(r.Steps, ", "), "steps; details: %q", r.Details)
			require.Equal(t, want.err, errName(r.Err), "final error: %v", r.Err)
			require.Equal(t, want.state, stateName(r.State))
			require.Equal(t, want.discarded, r.Discarded)
			require.Empty(t, r.Problems, "the command's own check")
			if r.Case == "never-answers" {
				// The wait ends with the context, not before, and not much later.
				require.GreaterOrEqual(t, r.Elapsed, neverAnswersTimeout)
				require.Less(t, r.Elapsed, neverAnswersTimeout+2*time.Second)
			}
		})
	}
	for name := range wantOutcomes {
		require.Equal(t, len(roles)*len(versions), seen[name], "runs of %s", name)
	}

	// Nothing left: every SSL freed, every socket closed, every goroutine
	// ended (a grace period lets finished goroutines exit).
	ssl, _ := openssl.LiveObjects()
	require.Equal(t, liveSSL, ssl, "live SSL objects")
	require.Equal(t, fds, openFDs(t), "open file descriptors")
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		<-time.After(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left (had %d):\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

// TestCommandExpectationsMatch keeps the command's expectations and this
// test's table the same.
func TestCommandExpectationsMatch(t *testing.T) {
	require.Len(t, cases, len(wantOutcomes))
	for _, c := range cases {
		w, ok := wantOutcomes[c.name]
		require.True(t, ok, c.name)
		require.Equal(t, expectation{steps: w.steps, err: w.err, state: w.state, discarded: w.discarded}, c.want, c.name)
	}
}

func TestDemoCommandOneCase(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"demo", "-case", "reset", "-v"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	require.Empty(t, stderr.String())
	out := stdout.String()
	require.Equal(t, 4, strings.Count(out, "\nreset "), out)
	require.Contains(t, out, "0, -1/WANT_READ, -1/SYSCALL")
	require.Contains(t, out, "ECONNRESET")
	require.Contains(t, out, legend)
	require.Contains(t, out, "peer: SetLinger(0) and Close: nil (RST)") // -v details
	require.NotContains(t, out, "UNEXPECTED")
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"demo", "-case", "nope"},
		{"demo", "extra"},
		{"demo", "-x"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, runMain(args, &stdout, &stderr))
			require.Empty(t, stdout.String())
			require.Contains(t, stderr.String(), "usage: closenotify demo")
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}
