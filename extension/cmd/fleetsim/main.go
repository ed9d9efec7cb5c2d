// Command fleetsim simulates a fleet of execution environments, each with
// the extension's real keeper, against one account's STS quota (package
// fleet), and reports STS requests per second, requests sent per
// environment and the time until every environment has credentials.
//
//	go run ./extension/cmd/fleetsim                 one fleet, a summary line
//	go run ./extension/cmd/fleetsim -docs -out DIR  the scenarios of docs/fleet.md: CSV series + a markdown table
//
// `make fleet` runs the second and draws docs/fleet-*.png from the CSV
// files (tools/fleetplot).
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/fleet"
)

// scenario is one named fleet of docs/fleet.md.
type scenario struct {
	name, what string
	cfg        fleet.Config
}

// docsScenarios are the fleet (fleet.Defaults: 10,000 environments
// started within 10 s, 1 h credentials, 600/s) in both modes, on both
// platforms, before and after issue 10, and with sparse traffic.
func docsScenarios(base fleet.Config) []scenario {
	with := func(fn func(*fleet.Config)) fleet.Config { c := base; fn(&c); return c }
	return []scenario{
		{"deferred", "deferred, INVOKE-driven", with(func(c *fleet.Config) { c.Mode = "deferred" })},
		{"eager", "eager, INVOKE-driven", with(func(c *fleet.Config) { c.Mode = "eager" })},
		{"deferred-lmi", "deferred, Managed Instances (timer)", with(func(c *fleet.Config) { c.Mode, c.Platform = "deferred", "lmi" })},
		{"eager-lmi", "eager, Managed Instances (timer)", with(func(c *fleet.Config) { c.Mode, c.Platform = "eager", "lmi" })},
		{"deferred-sparse", "deferred, one invoke a minute per environment", with(func(c *fleet.Config) {
			c.Mode, c.InvokeEvery = "deferred", time.Minute
		})},
		{"deferred-before", "deferred before issue 10 (no tick, old backoff)", with(func(c *fleet.Config) {
			c.Mode, c.LegacyDeferred, c.LegacyBackoff = "deferred", true, true
		})},
		{"eager-before", "eager before issue 10 (old backoff)", with(func(c *fleet.Config) { c.Mode, c.LegacyBackoff = "eager", true })},
	}
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	c := fleet.Defaults
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.IntVar(&c.N, "n", c.N, "execution environments")
	fs.DurationVar(&c.Lifetime, "lifetime", c.Lifetime, "credentials lifetime (DurationSeconds)")
	fs.DurationVar(&c.StartSpread, "spread", c.StartSpread, "environments start uniformly over this long")
	fs.Float64Var(&c.Quota, "quota", c.Quota, "the account's AssumeRole quota, requests per second")
	fs.Float64Var(&c.Burst, "burst", 0, "the quota bucket's size (default: one second of quota)")
	fs.StringVar(&c.Mode, "mode", c.Mode, "deferred or eager")
	fs.StringVar(&c.Platform, "platform", c.Platform, "classic (INVOKE events) or lmi (Managed Instances: timer)")
	fs.DurationVar(&c.InvokeEvery, "invoke-every", c.InvokeEvery, "mean time between an environment's invocations")
	fs.DurationVar(&c.SDKWindow, "sdk-window", c.SDKWindow, "the function's SDK asks when its copy has this much left (botocore 15m, JS/Go 5m)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "simulated time")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed")
	fs.BoolVar(&c.LegacyDeferred, "legacy-deferred", false, "deferred keepers get no INVOKE tick or timer (before issue 10)")
	fs.BoolVar(&c.LegacyBackoff, "legacy-backoff", false, "Throttling backs off like any failure (before issue 10)")
	docs := fs.Bool("docs", false, "run the scenarios of docs/fleet.md instead of one fleet")
	out := fs.String("out", "", "write CSV series (and with -docs, results.md) to this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scenarios := []scenario{{"fleet", "the fleet given by the flags", c}}
	if *docs {
		scenarios = docsScenarios(c)
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	var table strings.Builder
	writeHeader(&table, c)
	for _, sc := range scenarios {
		start := time.Now()
		r, err := fleet.Run(sc.cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Fprintf(os.Stderr, "fleetsim: %s simulated in %s\n", sc.name, time.Since(start).Round(time.Millisecond))
		writeRow(&table, sc, r)
		if *out != "" {
			if err := writeSeries(filepath.Join(*out, sc.name+".csv"), r); err != nil {
				return err
			}
			if err := writeHistogram(filepath.Join(*out, sc.name+"-requests.csv"), r); err != nil {
				return err
			}
		}
	}
	fmt.Fprint(stdout, table.String())
	if *out != "" && *docs {
		return os.WriteFile(filepath.Join(*out, "results.md"), []byte(table.String()), 0o644)
	}
	return nil
}

func writeHeader(w io.Writer, c fleet.Config) {
	fmt.Fprintf(w, "N = %d environments started within %s, L = %s, quota %g/s (bucket %g), invoked every %s on average, SDK window %s, %s simulated, seed %d.\n\n",
		c.N, c.StartSpread, c.Lifetime, c.Quota, max(c.Burst, c.Quota), c.InvokeEvery, c.SDKWindow, c.Duration, c.Seed)
	fmt.Fprintln(w, "| Scenario | STS requests per environment until served (mean, max) | every environment served after | served after start, p50 / p99 | invocations failed for want of credentials | later peak, requests/s (% of quota, at) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
}

func writeRow(w io.Writer, sc scenario, r *fleet.Result) {
	most := 0
	for _, n := range r.ColdRequests {
		most = max(most, n)
	}
	served := "never (" + strconv.Itoa(r.Unserved) + " unserved)"
	if r.Unserved == 0 {
		served = secs(r.AllServed)
	}
	fmt.Fprintf(w, "| %s: %s | %.2f, %d | %s | %s / %s | %d | %d (%.1f%%, at %s) |\n", sc.name, sc.what, r.RequestsPerEnv(), most,
		served, secs(r.ServedQuantile(.5)), secs(r.ServedQuantile(.99)), r.FailedInvocations,
		r.LaterPeak, 100*r.PeakShare(), r.LaterPeakAt.Round(time.Second))
}

func secs(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// writeSeries writes second,sent,ok,throttled.
func writeSeries(path string, r *fleet.Result) error {
	rows := [][]string{{"second", "sent", "ok", "throttled"}}
	for s := range r.Sent {
		rows = append(rows, []string{strconv.Itoa(s), strconv.Itoa(r.Sent[s]), strconv.Itoa(r.OK[s]), strconv.Itoa(r.Throttled[s])})
	}
	return writeCSV(path, rows)
}

// writeHistogram writes requests,environments: how many environments sent
// that many requests until served.
func writeHistogram(path string, r *fleet.Result) error {
	counts := map[int]int{}
	most := 0
	for _, n := range r.ColdRequests {
		counts[n]++
		most = max(most, n)
	}
	rows := [][]string{{"requests", "environments"}}
	for n := 1; n <= most; n++ {
		rows = append(rows, []string{strconv.Itoa(n), strconv.Itoa(counts[n])})
	}
	return writeCSV(path, rows)
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
