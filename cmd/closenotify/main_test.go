package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestDemoOutcomes runs every case live, in both roles over both versions,
// and checks each run against the case's expectation (cases' want, the one
// table the demo prints its check column from).
func TestDemoOutcomes(t *testing.T) {
	rows := runDemo(cases)
	require.Len(t, rows, len(cases)*len(tlstest.Cases()))
	for i, r := range rows {
		c := cases[i/len(tlstest.Cases())]
		require.Same(t, c, r.Case)
		t.Run(c.name+"/"+r.Spec.String(), func(t *testing.T) {
			require.Empty(t, r.Problems, "steps %q, error %v, state %s, discarded %d; details: %q",
				r.Steps, r.Err, r.State, r.Discarded, r.Details)
			if c.name == "never-answers" {
				// The wait ends with the context, not before, and not much later.
				require.GreaterOrEqual(t, r.Elapsed, neverAnswersTimeout)
				require.Less(t, r.Elapsed, neverAnswersTimeout+2*time.Second)
			}
		})
	}
}

// TestExpectationCheck proves that the check the demo prints, and the test
// above relies on, tells a run that differs from its case's expectation.
func TestExpectationCheck(t *testing.T) {
	want := caseByName("answers").want
	ok := row{Steps: strings.Split(want.steps, ", "), State: want.state}
	require.Empty(t, want.check(&ok))
	for name, r := range map[string]row{
		"steps":     {Steps: []string{"0", "1"}, State: want.state},
		"error":     {Steps: ok.Steps, State: want.state, Err: openssl.ErrTruncated},
		"state":     {Steps: ok.Steps, State: "sent"},
		"discarded": {Steps: ok.Steps, State: want.state, Discarded: 1},
	} {
		require.Len(t, want.check(&r), 1, name)
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
	for _, c := range []struct {
		args  []string
		usage string
	}{
		{nil, "usage: closenotify COMMAND"},
		{[]string{"nope"}, "usage: closenotify COMMAND"},
		{[]string{"demo", "-case", "nope"}, "usage: closenotify demo"},
		{[]string{"demo", "extra"}, "usage: closenotify demo"},
		{[]string{"demo", "-x"}, "usage: closenotify demo"},
	} {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, runMain(c.args, &stdout, &stderr))
			require.Empty(t, stdout.String())
			require.Contains(t, stderr.String(), c.usage)
		})
	}
}
