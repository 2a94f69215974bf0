// Command closenotify shows how package openssl's Conn shuts a TLS
// connection down against Go's crypto/tls in the ways peers really behave.
//
//	closenotify demo [-case NAME] [-v]
//
// demo starts crypto/tls servers and clients on 127.0.0.1 with a certificate
// it generates, runs each case with our Conn as client and as server over
// TLS 1.2 and TLS 1.3, and prints one table: the steps our side took (for
// most cases the results of ShutdownOnce, waited out with Conn.Retry), the
// final error, ShutdownState and the time taken. It exits with status 0 when
// every run behaved as its case expects, 1 when one did not, 2 on bad usage.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the command with args and returns its exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "demo":
		return demoCommand(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "closenotify: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
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
type caseFlag []string

func (f *caseFlag) String() string { return strings.Join(*f, ",") }

func (f *caseFlag) Set(s string) error {
	if caseByName(s) == nil {
		return errors.New("unknown case (see the list below)")
	}
	*f = append(*f, s)
	return nil
}

func demoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	var names caseFlag
	fs.Var(&names, "case", "run only this case")
	verbose := fs.Bool("v", false, "print details")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "closenotify demo: unexpected argument %q\n\n", fs.Arg(0))
		usage(stderr)
		return 2
	}
	rows, err := runDemo(names)
	if err != nil {
		fmt.Fprintf(stderr, "closenotify demo: %v\n", err)
		return 1
	}
	printTable(stdout, rows)
	if *verbose {
		printDetails(stdout, rows)
	}
	var bad []string
	for _, r := range rows {
		for _, p := range r.Problems {
			bad = append(bad, fmt.Sprintf("  %s, we are %s, %s: %s", r.Case, r.Role, tls.VersionName(r.Version), p))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "closenotify demo: UNEXPECTED outcome (see the check column):\n%s\n", strings.Join(bad, "\n"))
		return 1
	}
	return 0
}

// legend explains the ShutdownOnce results in the steps column.
const legend = "0: our close_notify sent, the peer's not yet in; 1: both exchanged; " +
	"-1/WANT_READ: wait until readable, call again; -1/WANT_WRITE: send buffer full, wait until writable, call again"

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\twe are\tTLS\tsteps (ShutdownOnce results unless named)\tfinal error\tShutdownState\ttime\tcheck")
	for _, r := range rows {
		check := "ok"
		if !r.OK() {
			check = "UNEXPECTED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%dms\t%s\n",
			r.Case, r.Role, strings.TrimPrefix(tls.VersionName(r.Version), "TLS "),
			strings.Join(r.Steps, ", "), errName(r.Err), stateName(r.State),
			r.Elapsed.Round(time.Millisecond).Milliseconds(), check)
	}
	tw.Flush()
	fmt.Fprintln(w, legend)
}

func printDetails(w io.Writer, rows []row) {
	last := ""
	for _, r := range rows {
		if r.Case != last {
			last = r.Case
			fmt.Fprintf(w, "\n%s: %s\n", r.Case, caseByName(r.Case).title)
		}
		fmt.Fprintf(w, "  we are %s, %s:\n", r.Role, tls.VersionName(r.Version))
		for _, d := range r.Details {
			fmt.Fprintf(w, "    %s\n", d)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "    UNEXPECTED: %s\n", p)
		}
	}
}
