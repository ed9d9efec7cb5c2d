package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// row is one compared quantity: the per-round values of both servers.
type row struct {
	name, unit, target string
	ext, bare          []float64
}

func newRow(name, unit string, ext, bare []float64, target string) row {
	return row{name: name, unit: unit, target: target, ext: ext, bare: bare}
}

// ratios pairs round r of the extension with round r of the bare handler.
func (r row) ratios() []float64 {
	out := make([]float64, min(len(r.ext), len(r.bare)))
	for i := range out {
		out[i] = r.ext[i] / r.bare[i]
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func span(v []float64, format string) string {
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(v), slices.Min(v), slices.Max(v))
}

func (b *bench) table() string {
	var s strings.Builder
	fmt.Fprintf(&s, "bench-compare, %s, on %s; %d rounds of %s per endpoint comparison, %d memory rounds, %d init rounds.\n\n",
		time.Now().UTC().Format("2006-01-02"), machine(), b.rounds, b.dur, b.rssRounds, b.initRounds)
	fmt.Fprintln(&s, "| Comparison | Extension, median (range) | Bare handler, median (range) | Ratio, median (range) | Target |")
	fmt.Fprintln(&s, "|---|---|---|---|---|")
	for _, r := range b.rows {
		format := "%.1f"
		if r.unit == "req/s" {
			format = "%.0f"
		}
		fmt.Fprintf(&s, "| %s | %s %s | %s %s | %s | %s |\n", r.name, span(r.ext, format), r.unit, span(r.bare, format), r.unit,
			span(r.ratios(), "%.2f×"), r.target)
	}
	return s.String()
}
