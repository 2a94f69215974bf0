package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/closenotify/openssl"
)

func probeUsage(w io.Writer) {
	fmt.Fprint(w, `usage: closenotify probe [flags] host:port

probe connects to a TLS server with package openssl and reports what the
server does at shutdown, one fresh connection per phase:

  close       we send close_notify: does the server answer, how fast, does
              it send data after ours, does it close TCP or reset?
  half-close  we send close_notify and FIN (CloseWrite)
  idle        we do nothing: does the server close by itself within the
              timeout, with or without its close_notify?
  http-close  (with --http) we send a request with "Connection: close":
              how does the server end the connection after the response?

Each wait is bounded by --timeout; the whole probe by a few times that.

flags:
`)
}

// probeOptions are the command line of probe.
type probeOptions struct {
	addr       string
	http       bool
	serverName string
	caFile     string
	insecure   bool
	timeout    time.Duration
	json       bool
	phases     []string
}

// probePhases are the phases in the order probe runs them.
var probePhases = []string{"close", "half-close", "idle", "http-close"}

func probeCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o probeOptions
	fs.BoolVar(&o.http, "http", false, "send an HTTP/1.1 request first (and run the http-close phase)")
	fs.StringVar(&o.serverName, "servername", "", "SNI and the name to verify (default: the host)")
	fs.StringVar(&o.caFile, "cafile", "", "PEM file of the CAs to trust (default: the system's)")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound of each wait")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	phases := fs.String("phase", "", "run only these phases, comma-separated")
	fs.Usage = func() { probeUsage(stderr); fs.PrintDefaults() }
	// Flags may come before and after host:port.
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		o.addr = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return usageError(err)
		}
	}
	if o.addr == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		fmt.Fprintf(stderr, "closenotify probe: %v\n", err)
		return 2
	}
	for _, p := range strings.Split(*phases, ",") {
		if p == "" {
			continue
		}
		if !contains(probePhases, p) {
			fmt.Fprintf(stderr, "closenotify probe: unknown phase %q (%s)\n", p, strings.Join(probePhases, ", "))
			return 2
		}
		o.phases = append(o.phases, p)
	}
	rep, err := runProbe(o)
	if err != nil {
		fmt.Fprintf(stderr, "closenotify probe: %v\n", err)
		return 1
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.print(stdout)
	}
	return 0
}

func usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// probeReport is what probe found out.
type probeReport struct {
	Target     string        `json:"target"`
	ServerName string        `json:"server_name"`
	Version    string        `json:"tls_version"`
	Cipher     string        `json:"cipher"`
	ALPN       string        `json:"alpn"`
	Phases     []phaseReport `json:"phases"`
}

// phaseReport is one phase: what we did, what the server did.
type phaseReport struct {
	Phase string `json:"phase"`
	// Steps are our SSL calls and what they returned, in order:
	// "SSL_shutdown=0", "SSL_read=ZERO_RETURN", "SSL_shutdown=-1/WANT_READ".
	Steps []string `json:"steps"`
	// Event is how the server ended our wait:
	//   - "close_notify": its close_notify arrived;
	//   - "eof": it closed TCP without close_notify (truncation);
	//   - "reset": the connection was reset;
	//   - "none": nothing within the timeout;
	//   - "error": something else (Error says what).
	Event string `json:"event"`
	// AfterUS is the time from our action to the event, in microseconds.
	AfterUS int64 `json:"after_us"`
	// DataBytes is application data the server sent during the wait (after
	// our close_notify in the close and half-close phases).
	DataBytes int64 `json:"data_bytes"`
	// TCP is what followed the server's close_notify on the socket: "fin",
	// "reset", "open" (nothing within the timeout), or "data".
	TCP   string `json:"tcp,omitempty"`
	Error string `json:"error,omitempty"`
}

// runProbe runs each phase on a connection of its own.
func runProbe(o probeOptions) (*probeReport, error) {
	host, _, _ := net.SplitHostPort(o.addr)
	if o.serverName == "" {
		o.serverName = host
	}
	phases := o.phases
	if len(phases) == 0 {
		for _, p := range probePhases {
			if p != "http-close" || o.http {
				phases = append(phases, p)
			}
		}
	}
	sslCtx, err := probeCtx(o)
	if err != nil {
		return nil, err
	}
	rep := &probeReport{Target: o.addr, ServerName: o.serverName}
	for _, phase := range phases {
		conn, err := probeDial(o, sslCtx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", phase, err)
		}
		if rep.Version == "" {
			st := conn.ConnectionState()
			rep.Version = versionName(st.Version)
			rep.Cipher = st.CipherSuite
			rep.ALPN = st.NegotiatedProtocol
		}
		pr := probePhase(o, conn, phase)
		conn.SetClosePolicy(openssl.ClosePolicy{Timeout: o.timeout})
		conn.Close()
		rep.Phases = append(rep.Phases, pr)
	}
	return rep, nil
}

func probeCtx(o probeOptions) (*openssl.Ctx, error) {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		return nil, err
	}
	switch {
	case o.insecure:
	case o.caFile != "":
		err = sslCtx.LoadVerifyLocations(o.caFile, "")
	default:
		err = sslCtx.SetDefaultVerifyPaths()
	}
	if err == nil && o.http {
		err = sslCtx.SetNextProtos([]string{"http/1.1"})
	}
	return sslCtx, err
}

// probeDial connects and completes the handshake within the timeout.
func probeDial(o probeOptions, sslCtx *openssl.Ctx) (*openssl.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	d := openssl.DialConfig{ServerName: o.serverName}
	if o.insecure {
		d.Flags = openssl.InsecureSkipHostVerification
	}
	return d.DialContext(ctx, "tcp", o.addr, sslCtx)
}

// probePhase runs one phase on conn.
func probePhase(o probeOptions, conn *openssl.Conn, phase string) phaseReport {
	pr := phaseReport{Phase: phase}
	fail := func(err error) phaseReport {
		pr.Event, pr.Error = "error", err.Error()
		return pr
	}
	if o.http && phase != "idle" {
		keep := phase != "http-close"
		if err := httpExchange(conn, o, keep, &pr); err != nil {
			return fail(err)
		}
		if !keep {
			return pr // httpExchange watched how the server ended it
		}
	}
	start := time.Now()
	switch phase {
	case "close":
		r, err := conn.ShutdownOnce()
		pr.Steps = append(pr.Steps, "SSL_shutdown="+stepName(r, err))
		if err != nil {
			return fail(err)
		}
	case "half-close":
		r, err := conn.ShutdownOnce()
		pr.Steps = append(pr.Steps, "SSL_shutdown="+stepName(r, err))
		if err != nil {
			return fail(err)
		}
		if err := conn.CloseWrite(); err != nil {
			return fail(err)
		}
		pr.Steps = append(pr.Steps, "shutdown(SHUT_WR)")
	}
	watch(conn, o, start, &pr)
	if pr.Event == "close_notify" && phase != "idle" {
		r, err := conn.ShutdownOnce()
		pr.Steps = append(pr.Steps, "SSL_shutdown="+stepName(r, err))
	}
	return pr
}

// httpExchange sends one GET and reads the response. With keep, the
// request asks to keep the connection; without, it asks the server to
// close it ("Connection: close"), and watch records how it did.
func httpExchange(conn *openssl.Conn, o probeOptions, keep bool, pr *phaseReport) error {
	header := "keep-alive"
	if !keep {
		header = "close"
	}
	conn.SetDeadline(time.Now().Add(o.timeout))
	defer conn.SetDeadline(time.Time{})
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: closenotify-probe\r\nConnection: %s\r\n\r\n", o.serverName, header)
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	start := time.Now()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the HTTP response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pr.Steps = append(pr.Steps, fmt.Sprintf("HTTP %d", resp.StatusCode))
	if keep {
		if err != nil || br.Buffered() > 0 {
			return fmt.Errorf("reading the HTTP response body: %v (%d bytes more)", err, br.Buffered())
		}
		return nil
	}
	// The body may have ended with the server's close (no Content-Length):
	// the bufio.Reader then holds the end; watch reads on from conn.
	watchReader(io.MultiReader(br, conn), conn, o, start, pr)
	return nil
}

// watch reads until the server's close_notify, its TCP close, a reset or
// the timeout, counting application data, and records the event.
func watch(conn *openssl.Conn, o probeOptions, start time.Time, pr *phaseReport) {
	watchReader(conn, conn, o, start, pr)
}

func watchReader(r io.Reader, conn *openssl.Conn, o probeOptions, start time.Time, pr *phaseReport) {
	conn.SetReadDeadline(start.Add(o.timeout))
	buf := make([]byte, 16<<10)
	var err error
	for {
		var n int
		n, err = r.Read(buf)
		pr.DataBytes += int64(n)
		if err != nil {
			break
		}
	}
	pr.AfterUS = time.Since(start).Microseconds()
	var e *openssl.Error
	switch {
	case err == io.EOF:
		pr.Event = "close_notify"
		pr.Steps = append(pr.Steps, "SSL_read=ZERO_RETURN")
		pr.TCP = tcpAfter(conn, o)
	case errors.Is(err, openssl.ErrTruncated):
		pr.Event = "eof"
		pr.Steps = append(pr.Steps, "SSL_read=SYSCALL/EOF")
	case errors.Is(err, syscall.ECONNRESET):
		pr.Event = "reset"
		pr.Steps = append(pr.Steps, "SSL_read=SYSCALL/ECONNRESET")
	case errors.Is(err, os.ErrDeadlineExceeded):
		pr.Event = "none"
		pr.Steps = append(pr.Steps, "SSL_read=WANT_READ (timeout)")
	default:
		pr.Event, pr.Error = "error", err.Error()
		if errors.As(err, &e) {
			pr.Steps = append(pr.Steps, "SSL_read="+e.Code.Name())
		}
	}
}

// tcpAfter reads the socket below TLS after the server's close_notify:
// OpenSSL reads no further than the alert.
func tcpAfter(conn *openssl.Conn, o probeOptions) string {
	raw := conn.NetConn()
	raw.SetReadDeadline(time.Now().Add(o.timeout))
	n, err := raw.Read(make([]byte, 1))
	switch {
	case n > 0:
		return "data"
	case err == io.EOF:
		return "fin"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "open"
	}
	return fmt.Sprint(err)
}

// stepName spells a ShutdownOnce result as OpenSSL's users do: "0", "1",
// "-1/WANT_READ".
func stepName(r openssl.ShutdownResult, err error) string {
	var e *openssl.Error
	switch {
	case err == nil:
		return fmt.Sprint(int(r))
	case errors.As(err, &e) && e.Code != openssl.ErrorNone:
		return "-1/" + e.Code.Name()
	}
	return "-1/" + err.Error()
}

func versionName(v uint16) string {
	switch v {
	case 0x0303:
		return "TLS 1.2"
	case 0x0304:
		return "TLS 1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// print writes the report as a table.
func (r *probeReport) print(w io.Writer) {
	alpn := r.ALPN
	if alpn == "" {
		alpn = "-"
	}
	fmt.Fprintf(w, "target %s (server name %s): %s, %s, ALPN %s\n\n", r.Target, r.ServerName, r.Version, r.Cipher, alpn)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tserver did\tafter\tdata bytes\tTCP after its close_notify\tour SSL calls")
	for _, p := range r.Phases {
		event := p.Event
		if p.Error != "" {
			event += ": " + p.Error
		}
		tcp := p.TCP
		if tcp == "" {
			tcp = "-"
		}
		after := time.Duration(p.AfterUS) * time.Microsecond
		if after >= time.Second {
			after = after.Round(time.Millisecond)
		} else {
			after = after.Round(100 * time.Microsecond)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%s\n", p.Phase, eventText[p.Event]+event[len(p.Event):], after, p.DataBytes, tcp, strings.Join(p.Steps, ", "))
	}
	tw.Flush()
}

// eventText says each event in words for the table.
var eventText = map[string]string{
	"close_notify": "sent close_notify",
	"eof":          "closed TCP without close_notify",
	"reset":        "reset the connection",
	"none":         "nothing (timeout)",
	"error":        "error",
}
