package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chartRows are the table rows the chart shows, by label.
var chartRows = []struct{ label, short string }{
	{"bulk, 16 KiB writes, MB/s", "bulk 16 KiB"},
	{"bulk, 1 KiB writes, MB/s", "bulk 1 KiB"},
	{"full handshakes/s, 1 client", "handshakes, 1"},
	{"full handshakes/s, 2 clients", "handshakes, 2"},
	{"64-byte ping-pong, median µs", "ping-pong"},
	{"idle RSS per connection, server, KiB", "idle RSS srv"},
	{"idle RSS per connection, client, KiB", "idle RSS cli"},
}

// drawChart draws, for each figure, each TLS implementation relative to
// crypto/tls (the median of the per-repetition ratios), turned so that
// higher is better: throughput over crypto/tls's, latency and memory as
// crypto/tls's over theirs.
func (r *report) drawChart(path string) error {
	p := plot.New()
	p.Title.Text = "Relative to crypto/tls (1 = crypto/tls, higher is better)"
	p.Y.Label.Text = "× crypto/tls"
	impls := []struct {
		id    string
		color color.Color
	}{
		{"ours", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{"gossl", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}},
		{"c", color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
	}
	byLabel := map[string]row{}
	for _, rw := range rows {
		byLabel[rw.Label] = rw
	}
	var names []string
	for _, cr := range chartRows {
		names = append(names, cr.short)
	}
	width := vg.Points(14)
	top := 1.0
	for i, impl := range impls {
		vals := make(plotter.Values, len(chartRows))
		for k, cr := range chartRows {
			rw := byLabel[cr.label]
			for _, c := range r.cells(rw) {
				if c.Impl != impl.id || c.VsGo == nil || c.VsGo.Median == 0 {
					continue
				}
				vals[k] = c.VsGo.Median
				if !rw.HigherBetter {
					vals[k] = 1 / c.VsGo.Median
				}
				top = max(top, vals[k])
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = impl.color
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(implNames[impl.id], bars)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.Gray{Y: 0x60}
	one.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(one)
	p.Legend.Top = true
	p.NominalX(names...)
	p.Y.Min = 0
	// Room above the bars for the legend.
	p.Y.Max = top * 1.3
	return p.Save(9*vg.Inch, 3.6*vg.Inch, path)
}
