package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the child process: the driver
// re-executes its own binary with -child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		childMain(os.Args[2:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildCBench compiles the C program, as make bench-compare does.
func buildCBench(t *testing.T) string {
	t.Helper()
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libssl", "libcrypto").Output()
	if err != nil {
		t.Fatalf("pkg-config libssl: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cbench")
	args := append([]string{"-O2", "-Wall", "-Werror", "-o", bin, "cbench/cbench.c"}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", append(args, "-lpthread")...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs every workload once, briefly, with every implementation,
// and checks that each produced its figures, except go-openssl's resumed
// handshakes, which fail for the stated reason.
func TestSmoke(t *testing.T) {
	cfg := config{Reps: 1, Dur: 50 * time.Millisecond, Conns: 20, CBench: buildCBench(t)}
	rep, err := run(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantErr := map[job]string{
		// go-openssl v0.1.0 passes a Go pointer holding Go pointers to C
		// when it sets a session, which cgo refuses.
		{"resumed", "gossl"}: "Go pointer to unpinned Go pointer",
	}
	if len(rep.Samples) != len(rep.Jobs) {
		t.Fatalf("%d samples for %d jobs", len(rep.Samples), len(rep.Jobs))
	}
	for _, s := range rep.Samples {
		if want, ok := wantErr[s.job]; ok {
			if !strings.Contains(s.Err, want) {
				t.Errorf("%s/%s: error %q, want one containing %q", s.Workload, s.Impl, s.Err, want)
			}
			continue
		}
		if s.Result == nil {
			t.Errorf("%s/%s failed: %s", s.Workload, s.Impl, s.Err)
			continue
		}
		for _, metric := range wantMetrics(s.Workload) {
			v, ok := s.Result.Metrics[metric]
			// A TCP connection's idle RSS may round to zero pages: there,
			// presence is what counts.
			if !ok || v <= 0 && s.Workload != "idle" {
				t.Errorf("%s/%s: metric %s = %v (present %t)", s.Workload, s.Impl, metric, v, ok)
			}
		}
	}

	// The outputs: table, JSON, benchmark lines, chart.
	var table bytes.Buffer
	rep.print(&table)
	for _, want := range []string{"| bulk, 16 KiB writes, MB/s | this package |", "| target (issue 10) |", "n/a: "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	dir := t.TempDir()
	if err := rep.writeJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	bf := filepath.Join(dir, "r.txt")
	if err := rep.writeBenchfmt(bf); err != nil {
		t.Fatal(err)
	}
	lines, err := os.ReadFile(bf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lines), "BenchmarkBulk/size=16KiB/impl=ours ") {
		t.Errorf("benchmark lines lack the 16 KiB bulk of ours:\n%s", lines)
	}
	png := filepath.Join(dir, "r.png")
	if err := rep.drawChart(png); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("chart: %v, not a PNG", err)
	}
}

func wantMetrics(workload string) []string {
	switch workload {
	case "bulk16k", "bulk1k":
		return []string{"MB/s"}
	case "hs1", "hs2", "resumed":
		return []string{"handshakes/s"}
	case "pingpong":
		return []string{"us/op", "p99-us"}
	case "idle":
		return []string{"server-rss-KiB/conn", "client-rss-KiB/conn"}
	}
	return nil
}
