// Command benchratio reads `go test -bench` output on standard input,
// echoes it, and then prints, for each benchmark run with both this
// package's implementation and crypto/tls (sub-benchmarks named
// ".../openssl" and ".../cryptotls"), the ratio of their median ns/op,
// B/op and allocs/op: figures from the same run on the same machine.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// benchLine matches "BenchmarkX/.../impl-2   N   123 ns/op ...".
var benchLine = regexp.MustCompile(`^(Benchmark\S+)/(openssl|cryptotls)(-\d+)?\s+\d+\s+(.*)$`)

type samples map[string][]float64 // unit → values

func main() {
	results, order, err := parse(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
	report(os.Stdout, results, order)
}

// parse copies in to echo and collects the samples of each benchmark and
// implementation.
func parse(in io.Reader, echo io.Writer) (map[string]map[string]samples, []string, error) {
	results := map[string]map[string]samples{}
	var order []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, impl := m[1], m[2]
		if results[name] == nil {
			results[name] = map[string]samples{}
			order = append(order, name)
		}
		if results[name][impl] == nil {
			results[name][impl] = samples{}
		}
		fields := strings.Fields(m[4])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			unit := fields[i+1]
			results[name][impl][unit] = append(results[name][impl][unit], v)
		}
	}
	return results, order, sc.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report prints openssl/cryptotls ratios: below 1 means this package is
// faster or smaller.
func report(w io.Writer, results map[string]map[string]samples, order []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nbenchmark\ttime openssl/crypto/tls\tB/op openssl/crypto/tls\tallocs/op openssl, crypto/tls")
	for _, name := range order {
		ours, theirs := results[name]["openssl"], results[name]["cryptotls"]
		if ours == nil || theirs == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s, %s\n", name,
			ratio(ours["ns/op"], theirs["ns/op"]), ratio(ours["B/op"], theirs["B/op"]),
			value(ours["allocs/op"]), value(theirs["allocs/op"]))
	}
	tw.Flush()
}

func ratio(a, b []float64) string {
	if len(a) == 0 || len(b) == 0 || median(b) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", median(a)/median(b))
}

func value(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return strconv.FormatFloat(median(v), 'f', -1, 64)
}
