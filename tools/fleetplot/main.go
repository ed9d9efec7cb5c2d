// Command fleetplot draws docs/fleet-*.png from the CSV series that
// extension/cmd/fleetsim -docs -out DIR writes. It is a module of its own so
// that the extension's module does not depend on a plotting library.
//
//	go run . -in DIR -out ../../docs
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

func main() {
	in := flag.String("in", "", "fleetsim's -out directory")
	out := flag.String("out", ".", "where to write the PNG files")
	quota := flag.Float64("quota", 600, "the simulated quota, requests per second")
	flag.Parse()
	if err := run(*in, *out, *quota); err != nil {
		fmt.Fprintln(os.Stderr, "fleetplot:", err)
		os.Exit(1)
	}
}

func run(in, out string, quota float64) error {
	load := func(name string) (series, error) { return readSeries(filepath.Join(in, name+".csv")) }
	def, err := load("deferred")
	if err != nil {
		return err
	}
	eag, err := load("eager")
	if err != nil {
		return err
	}
	lmi, err := load("deferred-lmi")
	if err != nil {
		return err
	}
	before, err := load("deferred-before")
	if err != nil {
		return err
	}
	if err := coldStart(filepath.Join(out, "fleet-cold-start.png"), def, before, quota); err != nil {
		return err
	}
	if err := waves(filepath.Join(out, "fleet-refresh-waves.png"), def, eag, lmi, before, quota); err != nil {
		return err
	}
	hAfter, err := readPairs(filepath.Join(in, "deferred-requests.csv"))
	if err != nil {
		return err
	}
	hBefore, err := readPairs(filepath.Join(in, "deferred-before-requests.csv"))
	if err != nil {
		return err
	}
	return requestsPerEnv(filepath.Join(out, "fleet-requests-per-environment.png"), hAfter, hBefore)
}

// series is fleetsim's per-second CSV: sent, ok, throttled.
type series struct{ sent, ok, throttled []float64 }

func readSeries(path string) (series, error) {
	rows, err := readCSV(path)
	if err != nil {
		return series{}, err
	}
	var s series
	for _, r := range rows {
		s.sent = append(s.sent, num(r[1]))
		s.ok = append(s.ok, num(r[2]))
		s.throttled = append(s.throttled, num(r[3]))
	}
	return s, nil
}

func readPairs(path string) (plotter.XYs, error) {
	rows, err := readCSV(path)
	if err != nil {
		return nil, err
	}
	var xy plotter.XYs
	for _, r := range rows {
		xy = append(xy, plotter.XY{X: num(r[0]), Y: num(r[1])})
	}
	return xy, nil
}

func readCSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("%s: %v (%d rows)", path, err, len(rows))
	}
	return rows[1:], nil
}

func num(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }

// xy is v[from:to] against seconds (or minutes, scaled by per).
func xy(v []float64, from, to int, per float64) plotter.XYs {
	to = min(to, len(v))
	pts := make(plotter.XYs, 0, to-from)
	for i := from; i < to; i++ {
		pts = append(pts, plotter.XY{X: float64(i) / per, Y: v[i]})
	}
	return pts
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, c color.Color, dashed bool) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color, l.Width = c, vg.Points(1.2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func hline(p *plot.Plot, name string, y, x0, x1 float64, c color.Color) error {
	return addLine(p, name, plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, c, true)
}

// coldStart: the first 40 s, after and before issue 10, deferred mode
// (eager is the same there: both fetch at the environment's start).
func coldStart(path string, after, before series, quota float64) error {
	var plots [][]*plot.Plot
	for _, c := range []struct {
		title string
		s     series
	}{{"after issue 10", after}, {"before issue 10 (the SDK's own retries not counted)", before}} {
		p := plot.New()
		p.Title.Text = "Cold start of 10,000 environments within 10 s, " + c.title
		p.X.Label.Text = "seconds"
		p.Y.Label.Text = "AssumeRole requests per second"
		p.Y.Min, p.Y.Max = 0, 1300
		p.Legend.Top = true
		if err := addLine(p, "sent", xy(c.s.sent, 0, 40, 1), blue, false); err != nil {
			return err
		}
		if err := addLine(p, "throttled", xy(c.s.throttled, 0, 40, 1), red, false); err != nil {
			return err
		}
		if err := hline(p, "quota", quota, 0, 40, grey); err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
	}
	return saveTiles(path, plots, 8*vg.Inch, 7*vg.Inch)
}

// waves: three hours of requests per second; before (deferred, over the
// quota at botocore's window) above, after (deferred, eager, deferred on
// Managed Instances) below, with 10% of the quota marked.
func waves(path string, def, eag, lmi, before series, quota float64) error {
	const per = 60 // x in minutes
	top := plot.New()
	top.Title.Text = "Refresh waves, deferred mode before issue 10"
	top.X.Label.Text = "minutes"
	top.Y.Label.Text = "requests per second"
	top.Legend.Top = true
	n := len(before.sent)
	if err := addLine(top, "sent", xy(before.sent, 60, n, per), orange, false); err != nil {
		return err
	}
	if err := hline(top, "quota", quota, 0, float64(n)/per, grey); err != nil {
		return err
	}
	bottom := plot.New()
	bottom.Title.Text = "Refresh waves after issue 10 (each second's requests)"
	bottom.X.Label.Text = "minutes"
	bottom.Y.Label.Text = "requests per second"
	bottom.Y.Min, bottom.Y.Max = 0, quota*0.12
	bottom.Legend.Top = true
	for _, l := range []struct {
		name   string
		s      series
		c      color.Color
		dashed bool
	}{{"deferred", def, blue, false}, {"eager (the same as deferred here)", eag, green, true}, {"deferred, Managed Instances", lmi, red, false}} {
		if err := addLine(bottom, l.name, xy(l.s.sent, 60, n, per), l.c, l.dashed); err != nil {
			return err
		}
	}
	if err := hline(bottom, "10% of the quota", quota/10, 0, float64(n)/per, grey); err != nil {
		return err
	}
	return saveTiles(path, [][]*plot.Plot{{top}, {bottom}}, 9*vg.Inch, 7*vg.Inch)
}

func requestsPerEnv(path string, after, before plotter.XYs) error {
	p := plot.New()
	p.Title.Text = "STS requests an environment sent until it had credentials"
	p.X.Label.Text = "requests"
	p.Y.Label.Text = "environments"
	p.Legend.Top = true
	w := vg.Points(12)
	for i, h := range []struct {
		name string
		xy   plotter.XYs
		c    color.Color
	}{{"after issue 10", after, blue}, {"before (without the SDK's retries)", before, orange}} {
		vals := make(plotter.Values, 0, 6)
		for x := 1; x <= 6; x++ {
			v := 0.0
			for _, pt := range h.xy {
				if int(pt.X) == x {
					v = pt.Y
				}
			}
			vals = append(vals, v)
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color, b.LineStyle.Width = h.c, 0
		b.Offset = vg.Length(i*2-1) * w / 2
		p.Add(b)
		p.Legend.Add(h.name, b)
	}
	p.NominalX("1", "2", "3", "4", "5", "6")
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}

func saveTiles(path string, plots [][]*plot.Plot, w, h vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
