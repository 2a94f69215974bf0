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
	"fmt"
	"io"
	"os"
)

// command is a subcommand: closenotify NAME [args].
type command struct {
	name    string
	summary string // one line, for the usage message
	// run runs the command with the arguments after its name and returns
	// the exit status.
	run func(args []string, stdout, stderr io.Writer) int
}

// commands are the subcommands, in the order usage lists them.
var commands = []command{
	{"demo", "run our Conn against crypto/tls for each way a peer ends a connection", demoCommand},
	{"probe", "report what a TLS server at host:port does at shutdown", probeCommand},
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the subcommand named by args[0] and returns its exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "closenotify: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: closenotify COMMAND [arguments]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun closenotify COMMAND -h for a command's arguments.")
}
