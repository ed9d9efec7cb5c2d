// Command benchcompare is `make bench-compare`: the extension's credentials
// endpoint, memory and init time side by side with a bare Go net/http
// handler serving the same bytes (bench/barehandler), A/B interleaved and
// repeated, printed as a markdown table of ratios (medians and ranges).
//
//	go run ./bench/benchcompare                  the full suite (about 10 min)
//	go run ./bench/benchcompare -quick           a tiny run, to see that it works
//
// Comparisons, each with fresh server processes:
//   - GET /v1/credentials with 1 and 64 keep-alive clients, and with a new
//     connection per request (1 client): p50 latency, throughput and the
//     server's CPU time per request, in rounds of -dur each, the two
//     servers alternating (ABBA) round by round;
//   - RSS at start, after 100k and after 1M requests from 64 keep-alive
//     clients, a fresh pair of processes per round;
//   - init time: process start to /register (deferred mode: no STS call on
//     that path, checked), against a minimal extension that only registers.
//
// On a shared machine no single figure means much: read the medians and
// the ranges of the per-round ratios.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type bench struct {
	root, tmp, ext, bare string
	sts                  *fakeSTS
	extraEnv             []string // extra variables for the extension
	rounds, rssRounds    int
	initRounds           int
	dur                  time.Duration
	rssCounts            [2]int64
	stderr               bool
	rows                 []row
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	b := &bench{}
	fs := flag.NewFlagSet("benchcompare", flag.ContinueOnError)
	fs.IntVar(&b.rounds, "rounds", 7, "rounds per endpoint comparison")
	fs.DurationVar(&b.dur, "dur", 3*time.Second, "length of one endpoint run")
	fs.IntVar(&b.rssRounds, "rss-rounds", 3, "rounds of the memory comparison")
	fs.IntVar(&b.initRounds, "init-rounds", 15, "rounds of the init-time comparison")
	quick := fs.Bool("quick", false, "a tiny run: 1 round of everything, 200 ms runs, 2k and 5k requests")
	out := fs.String("out", "", "also write the table to this file")
	env := fs.String("env", "", "extra KEY=VALUE;... for both servers (e.g. GODEBUG=gctrace=1,inittrace=1)")
	fs.BoolVar(&b.stderr, "stderr", false, "pass the servers' stderr through (with -env GODEBUG=gctrace=1, say)")
	only := fs.String("only", "", "run only this step: endpoint, memory or init")
	extBin := fs.String("extension", "", "a prebuilt extension binary to measure instead of building ./extension (e.g. an older version)")
	hold := fs.Duration("hold", 0, "only start the extension (registered, nothing fetched), print its PID and address, keep it this long (for pprof-less digging: /proc/PID/smaps, perf)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b.rssCounts = [2]int64{100_000, 1_000_000}
	if *quick {
		b.rounds, b.dur, b.rssRounds, b.initRounds, b.rssCounts = 1, 200*time.Millisecond, 1, 1, [2]int64{2_000, 5_000}
	}
	if *env != "" {
		b.extraEnv = strings.Split(*env, ";")
	}
	var err error
	if b.root, err = repoRoot(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "bench-compare-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	if b.ext, b.bare, err = binaries(ctx, b.root, b.tmp); err != nil {
		return err
	}
	if *extBin != "" {
		b.ext = *extBin
	}
	if b.sts, err = newFakeSTS(); err != nil {
		return err
	}
	defer b.sts.srv.Close()
	if *hold > 0 {
		s, d, err := b.startExtension(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "extension PID %d on %s, token %s... registered after %s\n", s.pid(), s.addr, s.token[:4], d)
		time.Sleep(*hold)
		s.stop()
		return nil
	}
	steps := map[string]func(context.Context) error{"endpoint": b.endpoint, "memory": b.memory, "init": b.initTime}
	for _, name := range []string{"endpoint", "memory", "init"} {
		if *only != "" && *only != name {
			continue
		}
		if err := steps[name](ctx); err != nil {
			return err
		}
	}
	table := b.table()
	fmt.Fprint(stdout, table)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(*out, []byte(table), 0o644)
	}
	return nil
}

// repoRoot is the directory of the go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/lambda-credential-refresh/lambda-credential-refresh\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the repository")
		}
		dir = parent
	}
}

// body fetches the extension's credentials body (its first request makes
// the one STS call), for the bare handler to serve.
func body(s *server) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/v1/credentials", nil)
	req.Header.Set("Authorization", s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET /v1/credentials: %d %s", resp.StatusCode, b)
	}
	return b, err
}

// pair starts a fresh extension (and fetches its body) and a bare handler
// serving that body.
func (b *bench) pair(ctx context.Context) (ext, bare *server, err error) {
	if ext, _, err = b.startExtension(ctx); err != nil {
		return nil, nil, err
	}
	bd, err := body(ext)
	if err != nil {
		ext.stop()
		return nil, nil, err
	}
	if bare, err = b.startBare(bd); err != nil {
		ext.stop()
		return nil, nil, err
	}
	return ext, bare, nil
}

// endpoint compares GET /v1/credentials, ABBA round by round.
func (b *bench) endpoint(ctx context.Context) error {
	for _, sc := range []struct {
		name string
		l    load
	}{
		{"keep-alive, 1 client", load{clients: 1}},
		{"keep-alive, 64 clients", load{clients: 64}},
		{"new connection per request, 1 client", load{clients: 1, fresh: true}},
	} {
		ext, bare, err := b.pair(ctx)
		if err != nil {
			return err
		}
		warm := sc.l
		warm.dur = min(b.dur, time.Second)
		for _, s := range []*server{ext, bare} {
			if _, err := warm.run(s); err != nil {
				return fmt.Errorf("%s warm-up of %s: %w", sc.name, s.name, err)
			}
		}
		l := sc.l
		l.dur = b.dur
		var pe, pb, te, tb, ce, cb []float64
		for r := range b.rounds {
			order := []*server{ext, bare}
			if r%2 == 1 {
				order = []*server{bare, ext}
			}
			got := map[*server]outcome{}
			for _, s := range order {
				o, err := l.run(s)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", sc.name, s.name, err)
				}
				got[s] = o
			}
			e, a := got[ext], got[bare]
			pe, pb = append(pe, us(e.p50)), append(pb, us(a.p50))
			te, tb = append(te, e.perSecond()), append(tb, a.perSecond())
			ce, cb = append(ce, us(e.cpuPerRequest())), append(cb, us(a.cpuPerRequest()))
			fmt.Fprintf(os.Stderr, "bench-compare: %s round %d: p50 %.1f/%.1f µs, %.0f/%.0f req/s, CPU %.1f/%.1f µs per request\n",
				sc.name, r+1, us(e.p50), us(a.p50), e.perSecond(), a.perSecond(), us(e.cpuPerRequest()), us(a.cpuPerRequest()))
		}
		ext.stop()
		bare.stop()
		b.rows = append(b.rows,
			newRow("GET, "+sc.name+": p50 latency", "µs", pe, pb, "≤ 1.05×"),
			newRow("GET, "+sc.name+": throughput", "req/s", te, tb, "≥ 0.95×"),
			newRow("GET, "+sc.name+": server CPU per request", "µs", ce, cb, "≤ 1.1×"))
	}
	return nil
}

// memory compares RSS at start, after 100k and after 1M requests from 64
// keep-alive clients, with fresh processes each round.
func (b *bench) memory(ctx context.Context) error {
	var rss [3][2][]float64 // [point][ext, bare]
	for r := range b.rssRounds {
		ext, bare, err := b.pair(ctx)
		if err != nil {
			return err
		}
		order := []*server{ext, bare}
		if r%2 == 1 {
			order = []*server{bare, ext}
		}
		for _, s := range order {
			i := map[*server]int{ext: 0, bare: 1}[s]
			time.Sleep(200 * time.Millisecond)
			points := [3]float64{}
			var split [3]string
			var prev int64
			for p := range 3 {
				if p > 0 {
					if _, err := (load{clients: 64, count: b.rssCounts[p-1] - prev}).run(s); err != nil {
						return fmt.Errorf("memory, %s: %w", s.name, err)
					}
					prev = b.rssCounts[p-1]
				}
				kb, err := rssKB(s.pid())
				if err != nil {
					return err
				}
				points[p] = float64(kb) / 1024
				rss[p][i] = append(rss[p][i], points[p])
				anon, file := rssSplit(s.pid())
				split[p] = fmt.Sprintf("%.1f anon + %.1f file", anon, file)
			}
			fmt.Fprintf(os.Stderr, "bench-compare: memory round %d, %s: RSS %.1f MB at start (%s), %.1f MB after %d (%s), %.1f MB after %d requests (%s)\n",
				r+1, s.name, points[0], split[0], points[1], b.rssCounts[0], split[1], points[2], b.rssCounts[1], split[2])
		}
		ext.stop()
		bare.stop()
	}
	b.rows = append(b.rows,
		newRow("RSS at start (the extension: registered, nothing fetched)", "MB", rss[0][0], rss[0][1], "≤ 8 MB"),
		newRow(fmt.Sprintf("RSS after %s requests", count(b.rssCounts[0])), "MB", rss[1][0], rss[1][1], ""),
		newRow(fmt.Sprintf("RSS after %s requests", count(b.rssCounts[1])), "MB", rss[2][0], rss[2][1], "≤ 1.1×"))
	return nil
}

// initTime compares process start to /register.
func (b *bench) initTime(ctx context.Context) error {
	var e, a []float64
	for r := range b.initRounds {
		for i := range 2 {
			if (i+r)%2 == 0 {
				s, d, err := b.startExtension(ctx)
				if err != nil {
					return err
				}
				s.stop()
				e = append(e, ms(d))
			} else {
				d, err := b.initTimeBare(ctx)
				if err != nil {
					return err
				}
				a = append(a, ms(d))
			}
		}
	}
	b.rows = append(b.rows, newRow("init: process start to /register (deferred, no STS call)", "ms", e, a, ""))
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func count(n int64) string {
	if n%1_000_000 == 0 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// machine describes where the suite ran.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
