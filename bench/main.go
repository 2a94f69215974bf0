// Command bench compares this package with crypto/tls, libp2p/go-openssl, a
// C program over libssl and plain TCP on the same workloads, interleaved
// and repeated, and reports medians and per-repetition ratios.
//
//	go run . -quick                      # a short smoke run
//	go run . -cbench ./cbench/cbench     # what make bench-compare runs
//
// Every measurement runs in a child process of its own (this binary with
// -child, or the C program), so that none inherits another's heap, threads
// or OpenSSL state. Within each repetition every workload runs once with
// every implementation, in an order shuffled per repetition; ratios to
// crypto/tls and to C are taken inside each repetition before their median
// is.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/closenotify/openssl/internal/testcert"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		childMain(os.Args[2:])
		return
	}
	var (
		quick    = flag.Bool("quick", false, "few repetitions, short runs, fewer idle connections (development and smoke runs)")
		reps     = flag.Int("reps", 10, "repetitions")
		dur      = flag.Duration("dur", time.Second, "duration of each timed run")
		conns    = flag.Int("conns", 1000, "idle connections per side")
		cbench   = flag.String("cbench", "", "path of the C program (cbench/cbench.c built); empty leaves C out")
		only     = flag.String("only", "", "comma-separated workloads to run (bulk16k,bulk1k,hs1,hs2,resumed,pingpong,idle)")
		impls    = flag.String("impls", "", "comma-separated implementations to run (ours,go,gossl,c,c-epoll,tcp,ctcp,ours2go,go2ours,c-spin,ctcp-spin); empty: all")
		jsonOut  = flag.String("json", "", "write every sample, the table and the targets as JSON to this file")
		pngOut   = flag.String("png", "", "draw the ratio chart into this PNG file")
		benchOut = flag.String("benchfmt", "", "write Go benchmark format lines (for benchstat) to this file")
	)
	flag.Parse()
	cfg := config{Reps: *reps, Dur: *dur, Conns: *conns, CBench: *cbench, Quick: *quick}
	if *quick {
		// Quick defaults; flags given explicitly still win.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["reps"] {
			cfg.Reps = 2
		}
		if !set["dur"] {
			cfg.Dur = 200 * time.Millisecond
		}
		if !set["conns"] {
			cfg.Conns = 200
		}
	}
	if cfg.CBench != "" {
		if _, err := os.Stat(cfg.CBench); err != nil {
			log.Fatalf("the C program: %v (make bench-compare builds it)", err)
		}
	}
	rep, err := run(cfg, splitList(*only), splitList(*impls), os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	rep.print(os.Stdout)
	if *jsonOut != "" {
		if err := rep.writeJSON(*jsonOut); err != nil {
			log.Fatal(err)
		}
	}
	if *benchOut != "" {
		if err := rep.writeBenchfmt(*benchOut); err != nil {
			log.Fatal(err)
		}
	}
	if *pngOut != "" {
		if err := rep.drawChart(*pngOut); err != nil {
			log.Fatal(err)
		}
	}
}

// childMain runs one measurement as the driver asked (bench -child ...)
// and exits non-zero, with the reason on stderr, when it fails.
func childMain(args []string) {
	var spec childSpec
	fs := flag.NewFlagSet("bench -child", flag.ExitOnError)
	fs.StringVar(&spec.Workload, "workload", "", "bulk, handshake, resumed, pingpong, idle-server, idle-client")
	fs.StringVar(&spec.Client, "client", "", "client implementation (the writer in bulk)")
	fs.StringVar(&spec.Server, "server", "", "server implementation (the reader in bulk)")
	fs.IntVar(&spec.Size, "size", 0, "bulk write size")
	fs.IntVar(&spec.Clients, "clients", 1, "concurrent handshake clients")
	fs.DurationVar(&spec.Dur, "dur", time.Second, "duration of the timed part")
	fs.IntVar(&spec.Conns, "conns", 1000, "idle connections")
	fs.StringVar(&spec.Addr, "addr", "", "the idle server's address")
	fs.StringVar(&spec.CertDir, "certs", "", "certificate directory")
	fs.Parse(args)
	if err := runChild(spec); err != nil {
		fmt.Fprintf(os.Stderr, "child %s %s/%s: %v\n", spec.Workload, spec.Client, spec.Server, err)
		os.Exit(1)
	}
}

func splitList(s string) map[string]bool {
	if s == "" {
		return nil
	}
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		m[strings.TrimSpace(f)] = true
	}
	return m
}

// config is what a run was asked to do.
type config struct {
	Reps   int           `json:"reps"`
	Dur    time.Duration `json:"dur_ns"`
	Conns  int           `json:"idle_conns"`
	CBench string        `json:"-"`
	Quick  bool          `json:"quick"`
}

// job is one measurement: a workload with one implementation (or, for
// the mixed rows, one pair).
type job struct {
	Workload string `json:"workload"`
	Impl     string `json:"impl"`
}

// workloads in table order, with the implementations each runs.
var workloads = []struct {
	name  string
	impls []string
}{
	{"bulk16k", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp", "ours2go", "go2ours"}},
	{"bulk1k", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp", "ours2go", "go2ours"}},
	{"hs1", []string{"ours", "go", "gossl", "c", "c-epoll"}},
	{"hs2", []string{"ours", "go", "gossl", "c"}},
	{"resumed", []string{"ours", "go", "gossl", "c"}},
	{"pingpong", []string{"ours", "go", "gossl", "c", "tcp", "ctcp", "c-spin", "ctcp-spin"}},
	{"idle", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}},
}

// isC reports whether impl is run by the C program.
func isC(impl string) bool {
	return impl == "c" || strings.HasPrefix(impl, "c-") || strings.HasPrefix(impl, "ctcp")
}

// goPair returns the client and server Go implementations of impl.
func goPair(impl string) (client, server string) {
	switch impl {
	case "ours2go":
		return "ours", "go"
	case "go2ours":
		return "go", "ours"
	}
	return impl, impl
}

// run makes every repetition and collects the samples.
func run(cfg config, only, implFilter map[string]bool, progress io.Writer) (*report, error) {
	dir, err := os.MkdirTemp("", "bench-certs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeCerts(dir); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := newReport(cfg)
	var jobs []job
	for _, w := range workloads {
		if only != nil && !only[w.name] {
			continue
		}
		for _, impl := range w.impls {
			if implFilter != nil && !implFilter[impl] {
				continue
			}
			if isC(impl) && cfg.CBench == "" {
				continue
			}
			jobs = append(jobs, job{w.name, impl})
		}
	}
	r.Jobs = jobs
	m := &measurer{cfg: cfg, self: self, certDir: dir}
	for rep := range cfg.Reps {
		order := append([]job(nil), jobs...)
		rng := rand.New(rand.NewPCG(uint64(rep), 0x5eed))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for i, j := range order {
			fmt.Fprintf(progress, "\rrep %d/%d, %d/%d: %-10s %-10s", rep+1, cfg.Reps, i+1, len(order), j.Workload, j.Impl)
			res, err := m.measure(j)
			r.add(rep, j, res, err)
		}
	}
	fmt.Fprintln(progress)
	return r, nil
}

// writeCerts writes an ECDSA P-256 CA and leaf (for localhost and
// 127.0.0.1) and the OpenSSL config files into dir.
func writeCerts(dir string) error {
	b, err := testcert.New()
	if err != nil {
		return err
	}
	files := certFilesIn(dir)
	for path, data := range map[string][]byte{files.ca: b.CAPEM, files.cert: b.CertPEM, files.key: b.KeyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	for name, tickets := range map[string]string{"openssl.cnf": "NumTickets = 0\n", "openssl-resume.cnf": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(opensslConf+tickets), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// opensslConf gives every SSL_CTX of a child process the benchmark's
// setup, for the calls a binding does not offer (go-openssl has none for
// TLS 1.3 cipher suites, groups or the number of TLS 1.3 tickets, which the
// resumption workload leaves at OpenSSL's default).
const opensslConf = `openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_defaults
[bench_defaults]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
`

// measurer starts the child processes.
type measurer struct {
	cfg     config
	self    string
	certDir string
}

func (m *measurer) confEnv(workload string) []string {
	name := "openssl.cnf"
	if workload == "resumed" {
		name = "openssl-resume.cnf"
	}
	return append(os.Environ(), "OPENSSL_CONF="+filepath.Join(m.certDir, name))
}

// command returns the child command of one side (side is "" outside the
// idle workload).
func (m *measurer) command(j job, side string) *exec.Cmd {
	dur := strconv.FormatInt(m.cfg.Dur.Milliseconds(), 10)
	var cmd *exec.Cmd
	if isC(j.Impl) {
		mode := "tls"
		if strings.HasPrefix(j.Impl, "ctcp") {
			mode = "tcp"
		}
		spin := "0"
		if strings.HasSuffix(j.Impl, "-spin") {
			spin = "1"
		}
		switch j.Workload {
		case "bulk16k":
			cmd = exec.Command(m.cfg.CBench, "bulk", mode, "16384", dur, m.certDir)
		case "bulk1k":
			cmd = exec.Command(m.cfg.CBench, "bulk", mode, "1024", dur, m.certDir)
		case "hs1", "hs2":
			cmd = exec.Command(m.cfg.CBench, "handshake", mode, j.Workload[2:], dur, m.certDir)
		case "resumed":
			cmd = exec.Command(m.cfg.CBench, "resumed", mode, "1", dur, m.certDir)
		case "pingpong":
			cmd = exec.Command(m.cfg.CBench, "pingpong", mode, spin, dur, m.certDir)
		case "idle":
			cmd = exec.Command(m.cfg.CBench, "idle-"+side, mode, "0", strconv.Itoa(m.cfg.Conns), m.certDir)
		}
	} else {
		client, server := goPair(j.Impl)
		// -child must come first: childMain looks for it there.
		args := []string{"-child", "-client", client, "-server", server, "-certs", m.certDir,
			"-dur", m.cfg.Dur.String(), "-conns", strconv.Itoa(m.cfg.Conns)}
		switch j.Workload {
		case "bulk16k":
			args = append(args, "-workload", "bulk", "-size", "16384")
		case "bulk1k":
			args = append(args, "-workload", "bulk", "-size", "1024")
		case "hs1", "hs2":
			args = append(args, "-workload", "handshake", "-clients", j.Workload[2:])
		case "resumed", "pingpong":
			args = append(args, "-workload", j.Workload)
		case "idle":
			args = append(args, "-workload", "idle-"+side)
		}
		cmd = exec.Command(m.self, args...)
	}
	cmd.Env = m.confEnv(j.Workload)
	if j.Impl == "c-epoll" {
		// The C program as an event loop, like Go's netpoller: see
		// cbench.c.
		cmd.Env = append(cmd.Env, "CBENCH_EPOLL=1", "CBENCH_READ_AHEAD=1")
	}
	return cmd
}

func (m *measurer) measure(j job) (result, error) {
	if j.Workload == "idle" {
		return m.measureIdle(j)
	}
	cmd := m.command(j, "")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if r, ok, err := parseResultLine(line); ok {
			return r, err
		}
	}
	return result{}, fmt.Errorf("no result line in %q", out)
}

// idleChild is one side of the idle measurement.
type idleChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *strings.Builder
}

func (m *measurer) startIdle(j job, side string, extra ...string) (*idleChild, error) {
	cmd := m.command(j, side)
	cmd.Args = append(cmd.Args, extra...)
	c := &idleChild{cmd: cmd, stderr: &strings.Builder{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.lines = bufio.NewScanner(out)
	return c, cmd.Start()
}

// next returns the child's next line with the given prefix.
func (c *idleChild) next(prefix string) (string, error) {
	for c.lines.Scan() {
		if line := c.lines.Text(); strings.HasPrefix(line, prefix) {
			return line, nil
		}
	}
	return "", fmt.Errorf("child ended before %q: %s", prefix, strings.TrimSpace(c.stderr.String()))
}

func (c *idleChild) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// measureIdle starts the server side, then the client side against it,
// and merges their results as server-* and client-* metrics.
func (m *measurer) measureIdle(j job) (result, error) {
	srv, err := m.startIdle(j, "server")
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	line, err := srv.next("addr ")
	if err != nil {
		return result{}, err
	}
	addr := strings.TrimPrefix(line, "addr ")
	var cli *idleChild
	if isC(j.Impl) {
		cli, err = m.startIdle(j, "client", addr)
	} else {
		cli, err = m.startIdle(j, "client", "-addr", addr)
	}
	if err != nil {
		return result{}, err
	}
	defer cli.stop()
	merged := result{Metrics: map[string]float64{}, Ops: int64(m.cfg.Conns)}
	for side, c := range map[string]*idleChild{"server": srv, "client": cli} {
		line, err := c.next("result ")
		if err != nil {
			return result{}, fmt.Errorf("%s: %w", side, err)
		}
		r, _, err := parseResultLine(line)
		if err != nil {
			return result{}, err
		}
		for k, v := range r.Metrics {
			merged.Metrics[side+"-"+k] = v
		}
	}
	return merged, nil
}
