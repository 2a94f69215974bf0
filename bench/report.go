package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"

	ours "github.com/closenotify/openssl"
)

// report holds every sample of a run.
type report struct {
	Config  config   `json:"config"`
	OpenSSL string   `json:"openssl"`
	Go      string   `json:"go"`
	Jobs    []job    `json:"jobs"`
	Samples []sample `json:"samples"`
}

// sample is one measurement of one repetition; Err says why it has none.
type sample struct {
	Rep int `json:"rep"`
	job
	Result *result `json:"result,omitempty"`
	Err    string  `json:"error,omitempty"`
}

func newReport(cfg config) *report {
	return &report{Config: cfg, OpenSSL: ours.Version(), Go: runtime.Version()}
}

func (r *report) add(rep int, j job, res result, err error) {
	s := sample{Rep: rep, job: j}
	if err != nil {
		s.Err = err.Error()
	} else {
		s.Result = &res
	}
	r.Samples = append(r.Samples, s)
}

// value returns a metric of one repetition, with ok false when missing.
// The workload "ppcost" is derived: the ping-pong round trip minus the
// same side's plain TCP round trip (tcp for Go, ctcp for C, ctcp-spin for
// the busy-polling C).
func (r *report) value(rep int, workload, impl, metric string) (float64, bool) {
	if workload == "ppcost" {
		tcp := "tcp"
		switch {
		case impl == "c":
			tcp = "ctcp"
		case impl == "c-spin":
			tcp = "ctcp-spin"
		}
		a, ok1 := r.value(rep, "pingpong", impl, metric)
		b, ok2 := r.value(rep, "pingpong", tcp, metric)
		return a - b, ok1 && ok2
	}
	for _, s := range r.Samples {
		if s.Rep == rep && s.Workload == workload && s.Impl == impl && s.Result != nil {
			v, ok := s.Result.Metrics[metric]
			return v, ok
		}
	}
	return 0, false
}

// failure returns the first error of a job, if every repetition failed.
func (r *report) failure(workload, impl string) string {
	msg := ""
	for _, s := range r.Samples {
		if s.Workload == workload && s.Impl == impl {
			if s.Result != nil {
				return ""
			}
			if msg == "" {
				msg = s.Err
			}
		}
	}
	return msg
}

// row is one figure of the table.
type row struct {
	Label    string   `json:"label"`
	Workload string   `json:"workload"`
	Metric   string   `json:"metric"`
	Impls    []string `json:"-"`
	// RefGo and RefC are the implementations ratios are taken against,
	// within the same repetition ("" for none).
	RefGo, RefC string `json:"-"`
	// HigherBetter says which way is good, for the chart.
	HigherBetter bool `json:"higher_better"`
}

var rows = []row{
	{"bulk, 16 KiB writes, MB/s", "bulk16k", "MB/s", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp"}, "go", "c", true},
	{"mixed, 16 KiB writes, MB/s", "bulk16k", "MB/s", []string{"ours2go", "go2ours"}, "go", "c", true},
	{"bulk, 1 KiB writes, MB/s", "bulk1k", "MB/s", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp"}, "go", "c", true},
	{"mixed, 1 KiB writes, MB/s", "bulk1k", "MB/s", []string{"ours2go", "go2ours"}, "go", "c", true},
	{"full handshakes/s, 1 client", "hs1", "handshakes/s", []string{"ours", "go", "gossl", "c", "c-epoll"}, "go", "c", true},
	{"full handshakes/s, 2 clients", "hs2", "handshakes/s", []string{"ours", "go", "gossl", "c"}, "go", "c", true},
	{"resumed handshakes/s, 1 client", "resumed", "handshakes/s", []string{"ours", "go", "gossl", "c"}, "go", "c", true},
	{"64-byte ping-pong, median µs", "pingpong", "us/op", []string{"ours", "go", "gossl", "c", "tcp", "ctcp", "c-spin", "ctcp-spin"}, "go", "c", false},
	{"64-byte ping-pong, p99 µs", "pingpong", "p99-us", []string{"ours", "go", "gossl", "c", "tcp", "ctcp", "c-spin", "ctcp-spin"}, "go", "c", false},
	{"ping-pong TLS cost over own TCP, µs", "ppcost", "us/op", []string{"ours", "go", "gossl", "c", "c-spin"}, "go", "c-spin", false},
	{"idle RSS per connection, server, KiB", "idle", "server-rss-KiB/conn", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"idle RSS per connection, client, KiB", "idle", "client-rss-KiB/conn", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"idle Go heap per connection, server, KiB", "idle", "server-heap-KiB/conn", []string{"ours", "go", "gossl", "tcp"}, "go", "", false},
	{"idle Go heap per connection, client, KiB", "idle", "client-heap-KiB/conn", []string{"ours", "go", "gossl", "tcp"}, "go", "", false},
	{"CPU per MB, 16 KiB writes (both ends), µs", "bulk16k", "cpu-us/MB", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp", "ours2go", "go2ours"}, "go", "c", false},
	{"CPU per MB, 1 KiB writes (both ends), µs", "bulk1k", "cpu-us/MB", []string{"ours", "go", "gossl", "c", "c-epoll", "tcp", "ctcp", "ours2go", "go2ours"}, "go", "c", false},
	{"CPU per full handshake (both ends), µs", "hs1", "cpu-us/op", []string{"ours", "go", "gossl", "c", "c-epoll"}, "go", "c", false},
	{"CPU per ping-pong round trip (both ends), µs", "pingpong", "cpu-us/op", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"read(2) calls per 16 KiB write (both ends)", "bulk16k", "reads/op", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"read(2) calls per 1 KiB write (both ends)", "bulk1k", "reads/op", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"read(2) calls per ping-pong round trip", "pingpong", "reads/op", []string{"ours", "go", "gossl", "c", "tcp", "ctcp"}, "go", "c", false},
	{"allocs per 16 KiB write (both ends)", "bulk16k", "allocs/op", []string{"ours", "go", "gossl", "tcp"}, "", "", false},
	{"allocs per 1 KiB write (both ends)", "bulk1k", "allocs/op", []string{"ours", "go", "gossl", "tcp"}, "", "", false},
	{"allocs per ping-pong round trip", "pingpong", "allocs/op", []string{"ours", "go", "gossl", "tcp"}, "", "", false},
	{"allocs per full handshake (both ends)", "hs1", "allocs/op", []string{"ours", "go", "gossl"}, "", "", false},
}

var implNames = map[string]string{
	"ours":      "this package",
	"go":        "crypto/tls",
	"gossl":     "go-openssl",
	"c":         "C libssl",
	"tcp":       "Go TCP",
	"ctcp":      "C TCP",
	"c-epoll":   "C libssl, epoll",
	"c-spin":    "C libssl, busy-poll",
	"ctcp-spin": "C TCP, busy-poll",
	"ours2go":   "ours → crypto/tls",
	"go2ours":   "crypto/tls → ours",
}

// stat is a median with its range over the repetitions.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func statOf(v []float64) (stat, bool) {
	if len(v) == 0 {
		return stat{}, false
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{m, v[0], v[len(v)-1], len(v)}, true
}

// cell is one implementation's figure in a row.
type cell struct {
	Impl    string `json:"impl"`
	Value   *stat  `json:"value,omitempty"`
	VsGo    *stat  `json:"vs_go,omitempty"`
	VsC     *stat  `json:"vs_c,omitempty"`
	Missing string `json:"missing,omitempty"`
}

// cells computes a row: the values over the repetitions, and the ratios
// to the references taken inside each repetition.
func (r *report) cells(rw row) []cell {
	var out []cell
	for _, impl := range rw.Impls {
		if !r.ran(rw.Workload, impl) {
			continue
		}
		var vals, vsGo, vsC []float64
		for rep := range r.Config.Reps {
			v, ok := r.value(rep, rw.Workload, impl, rw.Metric)
			if !ok {
				continue
			}
			vals = append(vals, v)
			if g, ok := r.value(rep, rw.Workload, rw.RefGo, rw.Metric); ok && rw.RefGo != "" && g != 0 {
				vsGo = append(vsGo, v/g)
			}
			if c, ok := r.value(rep, rw.Workload, rw.RefC, rw.Metric); ok && rw.RefC != "" && c != 0 && !isPlain(impl) {
				vsC = append(vsC, v/c)
			}
		}
		c := cell{Impl: impl}
		if s, ok := statOf(vals); ok {
			c.Value = &s
		} else {
			c.Missing = r.failure(rw.Workload, impl)
			if rw.Workload == "ppcost" {
				c.Missing = "no ping-pong figures"
			}
		}
		if s, ok := statOf(vsGo); ok && impl != rw.RefGo {
			c.VsGo = &s
		}
		if s, ok := statOf(vsC); ok && impl != rw.RefC {
			c.VsC = &s
		}
		out = append(out, c)
	}
	return out
}

// ran reports whether the run included the job behind a row's cell.
func (r *report) ran(workload, impl string) bool {
	if workload == "ppcost" {
		workload = "pingpong"
	}
	return slices.Contains(r.Jobs, job{workload, impl})
}

func isPlain(impl string) bool { return impl == "tcp" || strings.HasPrefix(impl, "ctcp") }

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtStat(s *stat) string {
	if s == nil {
		return ""
	}
	if s.N == 1 {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

func fmtRatio(s *stat) string {
	if s == nil {
		return ""
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// print writes the table (markdown) and the targets of issue 10.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "%s, %s, %d repetitions of %v each (idle: %d connections per side); medians with min–max; ratios taken inside each repetition.\n\n",
		r.OpenSSL, r.Go, r.Config.Reps, r.Config.Dur, r.Config.Conns)
	fmt.Fprintln(w, "| figure | implementation | median (min–max) | × crypto/tls | × C |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, rw := range rows {
		for _, c := range r.cells(rw) {
			val := fmtStat(c.Value)
			if c.Value == nil {
				val = "n/a: " + shorten(c.Missing)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", rw.Label, implNames[c.Impl], val, fmtRatio(c.VsGo), fmtRatio(c.VsC))
		}
	}
	fmt.Fprintln(w)
	r.printTargets(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Summary (medians; for this package, the medians of its per-repetition ratios to crypto/tls and to C):")
	fmt.Fprintln(w)
	r.printSummary(w)
}

// summaryRows are the figures of the compact table (printSummary), by
// label, in the layout of issue 10's table.
var summaryRows = []string{
	"bulk, 16 KiB writes, MB/s",
	"bulk, 1 KiB writes, MB/s",
	"CPU per MB, 16 KiB writes (both ends), µs",
	"CPU per MB, 1 KiB writes (both ends), µs",
	"full handshakes/s, 1 client",
	"full handshakes/s, 2 clients",
	"CPU per full handshake (both ends), µs",
	"resumed handshakes/s, 1 client",
	"64-byte ping-pong, median µs",
	"64-byte ping-pong, p99 µs",
	"ping-pong TLS cost over own TCP, µs",
	"idle RSS per connection, server, KiB",
	"idle RSS per connection, client, KiB",
	"idle Go heap per connection, server, KiB",
	"idle Go heap per connection, client, KiB",
}

// printSummary writes the compact table: one row per figure, the median
// of each implementation, and for this package its ratios to crypto/tls
// and to C (medians of the per-repetition ratios). The mixed pairs get
// rows of their own.
func (r *report) printSummary(w io.Writer) {
	cols := []string{"ours", "go", "c", "c-epoll", "gossl", "tcp", "ctcp"}
	fmt.Fprintln(w, "| figure | this package (× crypto/tls, × C) | crypto/tls | C libssl | C libssl, epoll | go-openssl | Go TCP | C TCP |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	byLabel := map[string]row{}
	for _, rw := range rows {
		byLabel[rw.Label] = rw
	}
	for _, label := range summaryRows {
		rw := byLabel[label]
		cells := map[string]cell{}
		for _, c := range r.cells(rw) {
			cells[c.Impl] = c
		}
		if len(cells) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s |", label)
		for _, impl := range cols {
			if rw.Workload == "ppcost" && impl == "c" {
				// The C program's cost row is the busy-polling one, as
				// the target has it.
				impl = "c-spin"
			}
			c, ok := cells[impl]
			switch {
			case !ok:
				fmt.Fprint(w, " |")
			case c.Value == nil:
				fmt.Fprint(w, " n/a |")
			case impl == "ours":
				fmt.Fprintf(w, " %s (%s, %s) |", fmtNum(c.Value.Median), fmtRatioShort(c.VsGo), fmtRatioShort(c.VsC))
			default:
				fmt.Fprintf(w, " %s |", fmtNum(c.Value.Median))
			}
		}
		fmt.Fprintln(w)
	}
	for _, pair := range []struct{ workload, label string }{
		{"bulk16k", "16 KiB"}, {"bulk1k", "1 KiB"},
	} {
		rw := row{Workload: pair.workload, Metric: "MB/s", Impls: []string{"ours2go", "go2ours"}, RefGo: "go", RefC: "c"}
		for _, c := range r.cells(rw) {
			if c.Value == nil {
				continue
			}
			fmt.Fprintf(w, "| %s, %s writes, MB/s | %s (%s, %s) | | | | | | |\n", implNames[c.Impl], pair.label,
				fmtNum(c.Value.Median), fmtRatioShort(c.VsGo), fmtRatioShort(c.VsC))
		}
	}
}

func fmtRatioShort(s *stat) string {
	if s == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f×", s.Median)
}

func shorten(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// target is one of issue 10's goals, as a bound on a ratio's median.
type target struct {
	what           string
	workload, impl string
	metric         string
	ref            string  // implementation the ratio is taken against
	atLeast        bool    // ratio >= bound (else <=)
	bound          float64 // 0: a ratio shown for reference
}

var targets = []target{
	{"bulk 16 KiB ≥ 1.05× C", "bulk16k", "ours", "MB/s", "c", true, 1.05},
	{"bulk 1 KiB ≥ 1.05× C", "bulk1k", "ours", "MB/s", "c", true, 1.05},
	{"bulk 16 KiB ≥ 1.0× crypto/tls", "bulk16k", "ours", "MB/s", "go", true, 1.0},
	{"ours → crypto/tls 16 KiB ≥ 1.0× crypto/tls → crypto/tls", "bulk16k", "ours2go", "MB/s", "go", true, 1.0},
	{"crypto/tls → ours 16 KiB ≥ 1.0× crypto/tls → crypto/tls", "bulk16k", "go2ours", "MB/s", "go", true, 1.0},
	{"full handshakes/s, 1 client ≥ 1.0× C", "hs1", "ours", "handshakes/s", "c", true, 1.0},
	{"ping-pong TLS cost (ours − Go TCP) ≤ 1.05× (C busy-poll − C TCP busy-poll)", "ppcost", "ours", "us/op", "c-spin", false, 1.05},
	{"idle RSS, server ≤ crypto/tls", "idle", "ours", "server-rss-KiB/conn", "go", false, 1.0},
	{"idle RSS, client ≤ C", "idle", "ours", "client-rss-KiB/conn", "c", false, 1.0},
	// For reference, not targets: the C program as an event loop, which is
	// what a binding that waits in Go's netpoller can at best be.
	{"bulk 16 KiB, × C as an event loop", "bulk16k", "ours", "MB/s", "c-epoll", true, 0},
	{"bulk 1 KiB, × C as an event loop", "bulk1k", "ours", "MB/s", "c-epoll", true, 0},
	{"full handshakes/s, 1 client, × C as an event loop", "hs1", "ours", "handshakes/s", "c-epoll", true, 0},
	{"C as an event loop, bulk 1 KiB, × C", "bulk1k", "c-epoll", "MB/s", "c", true, 0},
}

// targetResult is a target's verdict.
type targetResult struct {
	What      string `json:"what"`
	Ratio     *stat  `json:"ratio,omitempty"`
	Holds     bool   `json:"holds"`
	Reference bool   `json:"reference,omitempty"` // a ratio shown for reference, with no bound
}

func (r *report) targetResults() []targetResult {
	var out []targetResult
	for _, t := range targets {
		var ratios []float64
		for rep := range r.Config.Reps {
			a, ok1 := r.value(rep, t.workload, t.impl, t.metric)
			b, ok2 := r.value(rep, t.workload, t.ref, t.metric)
			if ok1 && ok2 && b != 0 {
				ratios = append(ratios, a/b)
			}
		}
		tr := targetResult{What: t.what, Reference: t.bound == 0}
		if s, ok := statOf(ratios); ok {
			tr.Ratio = &s
			tr.Holds = s.Median >= t.bound
			if !t.atLeast {
				tr.Holds = s.Median <= t.bound
			}
		}
		out = append(out, tr)
	}
	// Zero allocations per Read and Write: the bulk and ping-pong runs of
	// this package, both ends ours.
	allocs := targetResult{What: "0 allocations per Read and Write (bulk and ping-pong, both ends ours)", Holds: true}
	any := false
	for _, w := range []string{"bulk16k", "bulk1k", "pingpong"} {
		for rep := range r.Config.Reps {
			if v, ok := r.value(rep, w, "ours", "allocs/op"); ok {
				any = true
				// The timed part's own bookkeeping (the reader's final
				// error, a goroutine) shows as a few allocations in
				// total, far below one per operation.
				if v >= 0.01 {
					allocs.Holds = false
				}
			}
		}
	}
	if any {
		out = append(out, allocs)
	}
	return out
}

func (r *report) printTargets(w io.Writer) {
	fmt.Fprintln(w, "| target (issue 10) | ratio, median (min–max) | holds |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range r.targetResults() {
		verdict := "no"
		if t.Reference {
			verdict = "(reference)"
		} else if t.Ratio == nil && !strings.HasPrefix(t.What, "0 alloc") {
			verdict = "not measured"
		} else if t.Holds {
			verdict = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.What, fmtRatio(t.Ratio), verdict)
	}
}

// writeJSON writes the samples, the table's cells and the targets.
func (r *report) writeJSON(path string) error {
	type jsonRow struct {
		row
		Cells []cell `json:"cells"`
	}
	out := struct {
		*report
		Rows    []jsonRow      `json:"rows"`
		Targets []targetResult `json:"targets"`
	}{report: r, Targets: r.targetResults()}
	for _, rw := range rows {
		out.Rows = append(out.Rows, jsonRow{rw, r.cells(rw)})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// benchNames are the Go benchmark names of the workloads.
var benchNames = map[string]string{
	"bulk16k":  "BenchmarkBulk/size=16KiB",
	"bulk1k":   "BenchmarkBulk/size=1KiB",
	"hs1":      "BenchmarkHandshake/clients=1",
	"hs2":      "BenchmarkHandshake/clients=2",
	"resumed":  "BenchmarkResumedHandshake/clients=1",
	"pingpong": "BenchmarkPingPong64",
	"idle":     "BenchmarkIdle",
}

// writeBenchfmt writes one Go benchmark line per sample, so that
// benchstat can compare implementations (-col /impl) or runs.
func (r *report) writeBenchfmt(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ngoarch: %s\npkg: github.com/closenotify/openssl/bench\nopenssl: %s\n", runtime.GOOS, runtime.GOARCH, r.OpenSSL)
	for _, s := range r.Samples {
		if s.Result == nil {
			continue
		}
		fmt.Fprintf(&b, "%s/impl=%s %d", benchNames[s.Workload], s.Impl, max(s.Result.Ops, 1))
		if s.Result.NsPerOp > 0 {
			fmt.Fprintf(&b, " %.1f ns/op", s.Result.NsPerOp)
		}
		keys := make([]string, 0, len(s.Result.Metrics))
		for k := range s.Result.Metrics {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %.4g %s", s.Result.Metrics[k], k)
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
