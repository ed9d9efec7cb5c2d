package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// act is one execution environment of the demo.
type act struct {
	runtime  harness.Runtime
	title    string
	mode     string
	lifetime time.Duration
	invokes  int
	gap      time.Duration // pause between invokes
	count    int           // objects per invoke
	// workers > 0 runs the environment as Lambda Managed Instances do
	// (RIE's managed-instances path, that many runtime workers, uid 993):
	// each "invoke" is then a round of that many concurrent invokes, and
	// after round idleAfter nothing is invoked for idle.
	workers   int
	idleAfter int
	idle      time.Duration
}

// The invokes come every ~1 s, well inside the 1.6–2.4 s between the
// extension's refresh point (35–45% of the lifetime left) and its floor
// (15% left) for 8 s credentials: so in eager mode every refresh happens in
// the background at an INVOKE and no request waits. (Lambda freezes the
// environment between invokes, so nothing can refresh in a longer gap; with
// 1 h credentials that gap is 15–20 minutes.)
var acts = []act{
	{harness.Go, "Go function (provided.al2023, credrefresh.LoadDefaultConfig)", "deferred", 8 * time.Second, 12, time.Second, 8, 0, 0, 0},
	{harness.Python, "Python function (boto3, no credential code, exec wrapper)", "eager", 8 * time.Second, 12, time.Second, 8, 0, 0, 0},
	{harness.Node, "Node.js function (@aws-sdk/client-s3, no credential code, exec wrapper)", "eager", 8 * time.Second, 12, time.Second, 8, 0, 0, 0},
	// On Lambda Managed Instances nothing is frozen and no INVOKE event
	// comes: the extension refreshes on a wall-clock timer, so even after
	// 12 s without any invoke (1.5 lifetimes) the next round finds fresh
	// credentials at once.
	{harness.Python, "Python function on Lambda Managed Instances (4 workers, 4 invokes at once, exec wrapper)", "", 8 * time.Second, 8, time.Second, 4, 4, 4, 12 * time.Second},
}

func run(ctx context.Context, w io.Writer) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	tools, err := harness.FindTools(root)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "credential-refresh-demo-")
	if err != nil {
		return err
	}
	began := time.Now()
	fmt.Fprintf(w, "Building the layer (extension + exec wrapper) and the Go function; starting moto ...\n")
	stack, err := harness.NewStack(ctx, tools, dir, "demo-bucket")
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Fprintf(w, "moto at %s (auth on): the execution user %s may only sts:AssumeRole %s;\n",
		stack.Moto.URL, stack.Account.User.AccessKeyID, stack.Account.RoleARN)
	fmt.Fprintf(w, "only that role may write to s3://%s (checked: the user's own keys get AccessDenied).\n", stack.Account.Bucket)
	fmt.Fprintf(w, "Ready in %.1fs. Logs: %s\n", time.Since(began).Seconds(), dir)

	var failed []string
	for _, a := range acts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.play(ctx, w, stack); err != nil {
			fmt.Fprintf(w, "  FAILED: %v\n", err)
			failed = append(failed, string(a.runtime))
		}
	}
	fmt.Fprintf(w, "\nDemo took %.1fs.\n", time.Since(began).Seconds())
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s (logs in %s)", strings.Join(failed, ", "), dir)
	}
	os.RemoveAll(dir)
	return nil
}

// play runs one environment: cold start, warm invokes across several
// credential lifetimes, SHUTDOWN; then prints its timeline and checks.
func (a act) play(ctx context.Context, w io.Writer, s *harness.Stack) error {
	if a.workers > 0 {
		fmt.Fprintf(w, "\n== %s ==\n   CREDENTIAL_REFRESH_MODE unset (eager there), credentials live %v, %d rounds of %d concurrent invokes %v apart, "+
			"%v without invokes after round %d, %d parallel uploads each\n",
			a.title, a.lifetime, a.invokes, a.workers, a.gap, a.idle, a.idleAfter, a.count)
	} else {
		fmt.Fprintf(w, "\n== %s ==\n   CREDENTIAL_REFRESH_MODE=%s, credentials live %v, %d invokes %v apart, %d parallel uploads each\n",
			a.title, a.mode, a.lifetime, a.invokes, a.gap, a.count)
	}
	env, err := s.Start(ctx, harness.Options{Name: "demo-" + a.prefix(), Runtime: a.runtime, Mode: a.mode, Lifetime: a.lifetime, Workers: a.workers})
	if err != nil {
		return err
	}
	defer env.Close()
	t0 := time.Now()
	tl := &timeline{t0: t0}
	var uploads []harness.Upload
	var errs []error
	for i := range a.invokes {
		switch {
		case i > 0 && i == a.idleAfter:
			tl.add(time.Now(), "invoke", "no invokes for %v", a.idle)
			time.Sleep(a.idle)
		case i > 0:
			time.Sleep(a.gap)
		}
		if a.workers > 0 {
			note := ""
			if i == 0 {
				note = " (init already ran at RIE's start, as on Lambda Managed Instances)"
			}
			tl.add(time.Now(), "invoke", "#%d.x: %d invokes at once%s", i+1, a.workers, note)
		}
		for j, r := range a.round(ctx, env, i+1) {
			uploads = append(uploads, r.u)
			tl.invocation(a.label(i+1, j), r.u, r.err, env)
			if r.err != nil {
				errs = append(errs, fmt.Errorf("invoke %s: %w", a.label(i+1, j), r.err))
			}
		}
	}
	health, herr := env.Health(ctx)
	sd, serr := env.Stop(10 * time.Second)
	tl.proxy(env.Proxy.Events())
	tl.extension(env.JSONLogs())
	tl.print(w)
	errs = append(errs, herr, serr)
	errs = append(errs, a.summary(ctx, w, s, env, uploads, health, sd))
	return errors.Join(errs...)
}

// prefix names the act's objects and environment.
func (a act) prefix() string {
	if a.workers > 0 {
		return "lmi-" + string(a.runtime)
	}
	return string(a.runtime)
}

func (a act) label(round, worker int) string {
	if a.workers > 0 {
		return fmt.Sprintf("%d.%d", round, worker+1)
	}
	return fmt.Sprint(round)
}

type result struct {
	u   harness.Upload
	err error
}

// round sends one invoke, or a.workers at once on Lambda Managed Instances
// (an invoke that finds every worker still busy is sent again).
func (a act) round(ctx context.Context, env *harness.Environment, n int) []result {
	out := make([]result, max(1, a.workers))
	var wg sync.WaitGroup
	for j := range out {
		wg.Go(func() {
			p := fmt.Sprintf("%s-%02d-", a.prefix(), n)
			if a.workers > 0 {
				p = fmt.Sprintf("%s-%02d-%d-", a.prefix(), n, j+1)
			}
			for {
				out[j].u, out[j].err = env.Upload(ctx, p, a.count)
				if !errors.Is(out[j].err, harness.ErrNoIdleWorker) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return out
}

// summary prints and checks the outcome: objects landed, STS calls,
// ExpiredToken answers, waits, shutdown.
func (a act) summary(ctx context.Context, w io.Writer, s *harness.Stack, env *harness.Environment, uploads []harness.Upload, h harness.Health, sd harness.Shutdown) error {
	landed, err := s.Moto.Keys(ctx, s.Account, a.prefix()+"-")
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, u := range uploads {
		keys[u.AccessKeyID] = true
	}
	assumed := env.Proxy.Count(harness.AssumeRole, time.Time{})
	expired := env.Proxy.Count(harness.ExpiredToken, time.Time{})
	def := h.Roles["default"]
	fmt.Fprintf(w, "   summary: %d objects in the bucket (listed as admin), written with %d different assumed-role keys;\n",
		len(landed), len(keys))
	fmt.Fprintf(w, "            %d AssumeRole calls at the proxy, %d ExpiredToken answers; extension health: stsCalls=%d served=%d waited=%d\n",
		assumed, expired, def.STSCalls, def.Served, def.Waited)
	fmt.Fprintf(w, "            SIGTERM → SHUTDOWN → RIE exit %d in %v, %d leftover processes\n",
		sd.ExitCode, sd.Took.Round(time.Millisecond), len(sd.Leftovers))
	var errs []error
	if want := a.invokes * max(1, a.workers) * a.count; len(landed) != want {
		errs = append(errs, fmt.Errorf("%d objects landed, want %d", len(landed), want))
	}
	if expired != 0 {
		errs = append(errs, fmt.Errorf("%d ExpiredToken", expired))
	}
	if (a.mode == "eager" || a.workers > 0) && def.Waited != 0 {
		errs = append(errs, fmt.Errorf("eager mode: %d requests waited on STS", def.Waited))
	}
	if sd.ExitCode != 0 || len(sd.Leftovers) != 0 {
		errs = append(errs, fmt.Errorf("unclean shutdown: %+v", sd))
	}
	if ids := env.Proxy.LeakedIn(env.Output()); len(ids) > 0 {
		errs = append(errs, fmt.Errorf("logs contain secrets of %v", ids))
	}
	return errors.Join(errs...)
}

// timeline collects what happened, from three sources, for one
// environment.
type timeline struct {
	t0    time.Time
	lines []line
}

type line struct {
	at   time.Time
	who  string
	text string
}

func (tl *timeline) add(at time.Time, who, format string, args ...any) {
	tl.lines = append(tl.lines, line{at, who, fmt.Sprintf(format, args...)})
}

func (tl *timeline) invocation(n string, u harness.Upload, err error, env *harness.Environment) {
	switch {
	case n == "1" && env.Opts.Workers == 0:
		tl.add(u.Start, "invoke", "#1 starts (cold start: RIE starts the extension, then the runtime)")
	case strings.Contains(n, "."): // the round's line says it (play)
	default:
		tl.add(u.Start, "invoke", "#%s starts", n)
	}
	if err != nil {
		tl.add(u.End, "invoke", "#%s FAILED: %.200v", n, err)
		return
	}
	exp, _ := env.Proxy.Expiration(u.AccessKeyID)
	tl.add(u.End, "invoke", "#%s done in %v: %d objects written with %s (expires in %.1fs)",
		n, u.End.Sub(u.Start).Round(time.Millisecond), u.Written, u.AccessKeyID, exp.Sub(u.End).Seconds())
}

func (tl *timeline) proxy(events []harness.Event) {
	calls := 0
	for _, e := range events {
		switch e.Kind {
		case harness.AssumeRole:
			calls++
			tl.add(e.Time, "sts", "AssumeRole #%d → %s, expires %s", calls, e.AccessKeyID, e.Expiration.UTC().Format("15:04:05.000Z"))
		case harness.AssumeRoleFailed, harness.STSDown:
			tl.add(e.Time, "sts", "AssumeRole failed: HTTP %d", e.Status)
		case harness.ExpiredToken:
			tl.add(e.Time, "s3", "ExpiredToken for %s %s signed by %s", e.Method, e.Path, e.AccessKeyID)
		}
	}
}

func (tl *timeline) extension(recs []harness.LogRecord) {
	for _, r := range recs {
		at := r.Time()
		switch msg := r.Msg(); {
		case msg == "credentials refreshed":
			tl.add(at, "ext", "credentials refreshed (role %s, took %s, expire %s)", r.Str("role"), r.Str("took"), r.Str("expiration"))
		case r.Str("level") == "WARN" || r.Str("level") == "ERROR":
			tl.add(at, "ext", "%s: %s", strings.ToLower(r.Str("level")), msg)
		}
	}
}

func (tl *timeline) print(w io.Writer) {
	sort.SliceStable(tl.lines, func(i, j int) bool { return tl.lines[i].at.Before(tl.lines[j].at) })
	for _, l := range tl.lines {
		fmt.Fprintf(w, "   %+7.3fs  %-6s  %s\n", l.at.Sub(tl.t0).Seconds(), l.who, l.text)
	}
}
