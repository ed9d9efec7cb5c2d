package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// Lambda Managed Instances under RIE's managed-instances path: init runs at
// RIE start, the extension may register for SHUTDOWN only, the runtime keeps
// lmiWorkers workers in /next (awslambdaric forks a process per worker,
// Node runs one loop per worker, aws-lambda-go one goroutine), several
// invokes run at once, nothing is frozen, and every process runs as uid 993.
const (
	lmiWorkers  = 4
	lmiLifetime = 6 * time.Second
	// lmiLoad is how long invokes keep coming, 4 at a time: over 3
	// lifetimes. lmiIdle is the stretch with no invoke after it: over 2
	// lifetimes, so credentials in use at its start expire during it.
	lmiLoad = 3*lmiLifetime + 2*time.Second
	lmiIdle = 2*lmiLifetime + 3*time.Second
)

// lmiRun is one scenario's record: every successful invoke, and how many
// invokes found no idle worker and were sent again.
type lmiRun struct {
	mu      sync.Mutex
	uploads []harness.Upload
	retried int
}

// TestManagedInstances runs each example function (Python and Node through
// the exec wrapper, Go with the client package) on the managed-instances
// path, in the default mode (eager there; the variable unset) and in
// deferred mode, with the token file at the default path (default mode)
// and at a custom path the extension must create (deferred):
//   - > 3 credential lifetimes of load with up to 4 invokes at once, then
//     an idle stretch of > 2 lifetimes, then load again: every invoke
//     succeeds, every S3 request is signed with an assumed-role key that
//     was still valid (0 ExpiredToken at the expiry-enforcing proxy);
//   - AssumeRole calls n within ⌈S/L⌉ ≤ n ≤ ⌊S/(L/2)⌋ + 2 over the span S
//     (each key lives L; no refresh before half of L has passed), and the
//     extension's count, its log lines and the proxy's agree;
//   - the extension registered for SHUTDOWN only and refreshes on its
//     timer, in both modes (deferred from its first request on): during
//     the idle stretch it refreshed at least ⌊idle/(0.65 L)⌋ times and what
//     it holds at the end has more than the floor left;
//   - eager: no request ever waited on STS (waited = 0);
//   - deferred: no STS call before the first request;
//   - one extension process throughout, running as uid 993; SHUTDOWN ends
//     it cleanly inside the 2 s extensions get there; nothing is left over;
//     no secret or token in any log.
func TestManagedInstances(t *testing.T) {
	s := sharedStack(t)
	for _, r := range harness.Runtimes {
		for _, mode := range []string{"", "deferred"} {
			name := mode
			if name == "" {
				name = "default"
			}
			t.Run(string(r)+"/"+name, func(t *testing.T) {
				t.Parallel()
				o := harness.Options{Runtime: r, Mode: mode, Lifetime: lmiLifetime, Workers: lmiWorkers}
				if mode == "deferred" {
					o.TokenFile = "/tmp/e2e-custom/credentials/token" // created by the extension as uid 993
				}
				runManagedInstances(t, s, o)
			})
		}
	}
}

func runManagedInstances(t *testing.T, s *harness.Stack, o harness.Options) {
	ctx := context.Background()
	env := start(t, s, o)
	eager := o.Mode == ""
	// Init ran at RIE start: the extension is up before any invoke.
	pid := waitExtension(t, env, eager)
	if p := procOf(env, pid); p.UID != harness.LMIUID {
		t.Fatalf("extension runs as uid %d, want %d", p.UID, harness.LMIUID)
	}
	checkRegistration(t, env, eager)
	if !eager && env.Proxy.Count(harness.AssumeRole, time.Time{}) != 0 {
		t.Fatal("deferred mode called STS during init")
	}

	run := &lmiRun{}
	begin := time.Now()
	run.load(t, env, "a", lmiLoad)
	idleFrom := time.Now()
	before := env.Proxy.Count(harness.AssumeRole, time.Time{})
	time.Sleep(lmiIdle)
	during := env.Proxy.Count(harness.AssumeRole, idleFrom)
	health, err := env.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkIdle(t, env, health, during)
	run.load(t, env, "b", 2*time.Second)
	t.Logf("%d invokes over %s, %d sent again (no idle worker); AssumeRole: %d before the idle %s, %d during it",
		len(run.uploads), seconds(time.Since(begin)), run.retried, before, seconds(lmiIdle), during)

	checkManagedUploads(t, s, env, run)
	if health, err = env.Health(ctx); err != nil {
		t.Fatal(err)
	}
	checkOneCallPerRefresh(t, env, health)
	def := health.Roles["default"]
	if wantMode := map[bool]string{true: "eager", false: "deferred"}[eager]; health.Mode != wantMode {
		t.Errorf("mode %q, want %q", health.Mode, wantMode)
	}
	if eager && def.Waited != 0 {
		t.Errorf("eager: %d credential requests waited on STS; want 0", def.Waited)
	}
	if now := env.ExtensionPID(harness.ExtensionName); now != pid {
		t.Errorf("extension PID %d → %d: one process throughout", pid, now)
	}
	token := readToken(env)
	if len(token) != 43 {
		t.Errorf("token file %s (seen as %s): %d bytes, want 43", env.TokenFile, env.TokenPath(), len(token))
	}
	checkShutdown(t, env)
	checkNoLeaks(t, s, env, token)
}

// waitExtension waits for the extension process that init started, and
// for its log to say it registered and (eager) that its timer runs: the
// timer starts after the prefetch, and RIE relays the extension's output
// asynchronously.
func waitExtension(t *testing.T, env *harness.Environment, eager bool) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		pid := env.ExtensionPID(harness.ExtensionName)
		if pid != 0 && len(env.Lines(`"registered"`)) > 0 && (!eager || len(env.Lines(`"refreshing on a timer`)) > 0) {
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the extension did not register (and, eager, start its timer) within 15 s of RIE's start")
	return 0
}

func procOf(env *harness.Environment, pid int) harness.Proc {
	for _, p := range env.Processes() {
		if p.PID == pid {
			return p
		}
	}
	return harness.Proc{UID: -1}
}

// checkRegistration reads the extension's "registered" log line: on the
// managed-instances path it subscribes to no INVOKE event, and says it
// refreshes on a timer (both modes; deferred from its first request).
func checkRegistration(t *testing.T, env *harness.Environment, eager bool) {
	t.Helper()
	var registered, timer bool
	for _, r := range env.JSONLogs() {
		switch r.Msg() {
		case "registered":
			registered = true
			if v, ok := r.Fields["invokeEvents"].(bool); !ok || v {
				t.Errorf("registered with invokeEvents=%v; want false on Lambda Managed Instances", r.Fields["invokeEvents"])
			}
		case "refreshing on a timer (no INVOKE events in this execution model)":
			timer = true
		}
	}
	if !registered || !timer {
		t.Errorf("registered %v, timer %v; want both (mode eager: %v)", registered, timer, eager)
	}
	if n := len(env.Lines("Extension.InvalidEventType")) + len(env.Lines("Extension.Crash")); n != 0 {
		t.Errorf("RIE logged %d refused registrations or crashes", n)
	}
}

// load keeps lmiWorkers invokes in flight for d, each writing a few objects.
// An invoke that finds no idle worker (the runtime has not yet returned to
// /next after answering) is sent again.
func (run *lmiRun) load(t *testing.T, env *harness.Environment, tag string, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range lmiWorkers {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				p := prefix(env, 0) + tag + string(rune('a'+w)) + "-" + itoa4(i) + "-"
				u, err := env.Upload(context.Background(), p, 3)
				if errors.Is(err, harness.ErrNoIdleWorker) {
					run.mu.Lock()
					run.retried++
					run.mu.Unlock()
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("invoke %s: %v", p, err)
					return
				}
				run.mu.Lock()
				run.uploads = append(run.uploads, u)
				run.mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

func itoa4(i int) string { b, _ := json.Marshal(10000 + i); return string(b[1:]) }

// checkIdle: in both modes the timer refreshed during the idle stretch
// (deferred mode's since its first request) and what the extension holds at
// its end is servable (above the floor).
func checkIdle(t *testing.T, env *harness.Environment, h harness.Health, during int) {
	t.Helper()
	def := h.Roles["default"]
	exp, err := time.Parse(time.RFC3339, def.Expiration)
	if err != nil {
		t.Fatalf("health after the idle stretch: %+v", def)
	}
	floor := time.Duration(float64(lmiLifetime) * 0.15)
	left := time.Until(exp)
	if want := int(math.Floor(lmiIdle.Seconds() / (0.65 * lmiLifetime.Seconds()))); during < want || def.State != "fresh" && def.State != "refresh-due" || left <= floor {
		t.Errorf("%s, idle %s: %d refreshes (want ≥ %d), state %s with %s left (floor %s)", env.Opts.Mode, seconds(lmiIdle), during, want, def.State, left, floor)
	}
}

// checkManagedUploads: every key used was issued by AssumeRole and still
// valid when the invoke ended; S3 saw only assumed keys; 0 ExpiredToken;
// the AssumeRole count is within the bounds; objects landed.
func checkManagedUploads(t *testing.T, s *harness.Stack, env *harness.Environment, run *lmiRun) {
	t.Helper()
	if len(run.uploads) == 0 {
		t.Fatal("no invoke succeeded")
	}
	for _, u := range run.uploads {
		if exp, ok := env.Proxy.Expiration(u.AccessKeyID); !ok || !exp.After(u.End) {
			t.Errorf("an invoke reported key %s (issued %v, expires %v, invoke ended %v)", u.AccessKeyID, ok, exp, u.End)
		}
	}
	checkSignedByAssumedRole(t, env)
	if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
		t.Errorf("proxy answered %d ExpiredToken; want 0", n)
	}
	first := firstAssumeRole(t, env)
	last := slices.MaxFunc(run.uploads, func(a, b harness.Upload) int { return a.End.Compare(b.End) }).End
	span := last.Sub(first)
	// Both modes keep a valid key at all times once the first request
	// came, idle or not.
	covered := span
	L := lmiLifetime.Seconds()
	lo, hi := int(math.Ceil(covered.Seconds()/L)), int(math.Floor(span.Seconds()/(L/2)))+2
	n := env.Proxy.Count(harness.AssumeRole, time.Time{})
	t.Logf("AssumeRole calls: %d over %s (%s needing credentials) with %v credentials (bounds %d..%d)",
		n, seconds(span), seconds(covered), lmiLifetime, lo, hi)
	if n < lo || n > hi || covered < 3*lmiLifetime {
		t.Errorf("AssumeRole calls = %d over %s; want %d..%d (and at least 3 lifetimes needing credentials)", n, seconds(span), lo, hi)
	}
	u := run.uploads[len(run.uploads)-1]
	checkLanded(t, s, u.Keys[0][:len(u.Keys[0])-4], u, 3)
}
