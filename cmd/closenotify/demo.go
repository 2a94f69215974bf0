package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/closenotify/openssl/internal/tlstest"
)

func demoUsage(w io.Writer) {
	fmt.Fprint(w, `usage: closenotify demo [-case NAME] [-v]

demo runs our OpenSSL Conn against Go's crypto/tls on 127.0.0.1, as client
and as server, over TLS 1.2 and 1.3, for each way a peer behaves at shutdown,
and prints what happened step by step. It exits 1 if a run differs from what
the case expects.

  -case NAME  run only this case (may be repeated as -case A -case B)
  -v          print the full errors and what the peer saw

cases:
`)
	for _, c := range cases {
		fmt.Fprintf(w, "  %-19s %s\n", c.name, c.title)
	}
}

// caseFlag collects repeated -case flags.
type caseFlag []*demoCase

func (f *caseFlag) String() string {
	var names []string
	for _, c := range *f {
		names = append(names, c.name)
	}
	return strings.Join(names, ",")
}

func (f *caseFlag) Set(s string) error {
	c := caseByName(s)
	if c == nil {
		return errors.New("unknown case (see the list below)")
	}
	*f = append(*f, c)
	return nil
}

func demoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { demoUsage(stderr) }
	var selected caseFlag
	fs.Var(&selected, "case", "run only this case")
	verbose := fs.Bool("v", false, "print details")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "closenotify demo: unexpected argument %q\n\n", fs.Arg(0))
		demoUsage(stderr)
		return 2
	}
	if len(selected) == 0 {
		selected = cases
	}
	rows := runDemo(selected)
	printTable(stdout, rows)
	if *verbose {
		printDetails(stdout, rows)
	}
	var bad []string
	for _, r := range rows {
		for _, p := range r.Problems {
			bad = append(bad, fmt.Sprintf("  %s, %s: %s", r.Case.name, r.Spec, p))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "closenotify demo: UNEXPECTED outcome (see the check column):\n%s\n", strings.Join(bad, "\n"))
		return 1
	}
	return 0
}

// row is one line of the table: one case, run with our Conn in one role over
// one TLS version.
type row struct {
	Case      *demoCase
	Spec      tlstest.Case
	Steps     []string // what our side did and got, step by step
	Err       error    // the final error of our side
	State     string   // tlstest.StateName of ShutdownState afterwards
	Elapsed   time.Duration
	Discarded int64    // Conn.DiscardedBytes after the run
	Details   []string // for -v: full error texts, what the peer saw
	Problems  []string // how the run differed from the case's expectation
}

// runDemo runs each case in both roles over both TLS versions, one after the
// other, and returns one row per run. Every goroutine it starts has ended
// when it returns.
func runDemo(selected []*demoCase) []row {
	var rows []row
	for _, c := range selected {
		for _, r := range tlstest.Roles {
			for _, v := range tlstest.Versions {
				rows = append(rows, runCase(c, tlstest.Case{Version: v, Role: r}))
			}
		}
	}
	return rows
}

// legend explains the ShutdownOnce results in the steps column.
const legend = "0: our close_notify sent, the peer's not yet in; 1: both exchanged; " +
	"-1/WANT_READ: wait until readable, call again; -1/WANT_WRITE: send buffer full, wait until writable, call again"

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\twe are\tTLS\tsteps (ShutdownOnce results unless named)\tfinal error\tShutdownState\ttime\tcheck")
	for _, r := range rows {
		check := "ok"
		if len(r.Problems) > 0 {
			check = "UNEXPECTED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%dms\t%s\n",
			r.Case.name, roleName(r.Spec.Role), strings.TrimPrefix(tls.VersionName(r.Spec.Version), "TLS "),
			strings.Join(r.Steps, ", "), tlstest.ErrName(r.Err), r.State,
			r.Elapsed.Round(time.Millisecond).Milliseconds(), check)
	}
	tw.Flush()
	fmt.Fprintln(w, legend)
}

func printDetails(w io.Writer, rows []row) {
	var last *demoCase
	for _, r := range rows {
		if r.Case != last {
			last = r.Case
			fmt.Fprintf(w, "\n%s: %s\n", r.Case.name, r.Case.title)
		}
		fmt.Fprintf(w, "  we are %s, %s:\n", roleName(r.Spec.Role), tls.VersionName(r.Spec.Version))
		for _, d := range r.Details {
			fmt.Fprintf(w, "    %s\n", d)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "    UNEXPECTED: %s\n", p)
		}
	}
}

// roleName is our role as the table shows it.
func roleName(r tlstest.Role) string {
	if r == tlstest.WeClient {
		return "client"
	}
	return "server"
}
