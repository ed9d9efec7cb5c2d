package creds_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/fleet"
)

// fakeFleet is a fleet of execution environments in a synctest bubble: each
// has a real keeper, an invocation loop standing in for Lambda and the
// function (INVOKE, then the function's SDK asks the endpoint when its copy
// needs it, botocore style: 15 min window, 3 attempts 1 s apart), and all
// share one in-process STS behind a token bucket (fleet.STS).
type fakeFleet struct {
	n           int
	mode        string // deferred or eager
	lmi         bool   // no INVOKE events: the keeper's timer, as the agent starts it
	noTick      bool   // the agent before issue 10: deferred keepers got no INVOKE tick
	spread      time.Duration
	invokeEvery time.Duration
	quota       float64
	sts         *fleet.STS
}

// run runs the fleet for d of virtual time inside the current bubble.
func (f *fakeFleet) run(t *testing.T, d time.Duration) {
	t.Helper()
	f.sts = &fleet.STS{Now: time.Now, Rate: f.quota, Burst: f.quota, Lifetime: time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range f.n {
		r := rand.New(rand.NewPCG(1, uint64(i)))
		k := creds.NewKeeper(creds.AssumeRole(f.sts, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/fleet"),
			RoleSessionName: aws.String(fmt.Sprintf("env-%d", i)), DurationSeconds: aws.Int32(3600)}), func(o *creds.Options) {
			o.Rand, o.RefreshInBackground = r.Float64, f.mode == "eager"
		})
		start := time.Duration(float64(f.spread) * float64(i) / float64(f.n))
		gaps := rand.New(rand.NewPCG(2, uint64(i)))
		wg.Go(func() { f.environment(ctx, k, start, gaps) })
	}
	time.Sleep(d)
	cancel()
	wg.Wait()
}

// environment is one execution environment: its start, then invocations
// every invokeEvery on average (each gap drawn from 0.5–1.5 times it) until
// ctx ends.
func (f *fakeFleet) environment(ctx context.Context, k *creds.Keeper, start time.Duration, gaps *rand.Rand) {
	defer k.Close()
	time.Sleep(start)
	if f.mode == "eager" {
		_ = k.Prefetch(ctx)
	}
	if f.lmi { // the agent: KeepFresh once the keeper is active
		go func() {
			select {
			case <-k.Active():
				k.KeepFresh(ctx, time.Minute)
			case <-ctx.Done():
			}
		}()
	}
	var sdkExpires time.Time
	for ctx.Err() == nil {
		if !f.lmi && (f.mode == "eager" || !f.noTick) {
			k.Tick()
		}
		for attempt := 0; attempt < 3 && (sdkExpires.IsZero() || time.Until(sdkExpires) <= 15*time.Minute); attempt++ {
			if attempt > 0 {
				time.Sleep(time.Second)
			}
			if c, err := k.Credentials(ctx); err == nil {
				sdkExpires = c.Expires
			}
		}
		select {
		case <-time.After(time.Duration((0.5 + gaps.Float64()) * float64(f.invokeEvery))):
		case <-ctx.Done():
		}
	}
}

// callsByEnv groups the STS requests by environment.
func (f *fakeFleet) callsByEnv() map[int][]fleet.Call {
	by := map[int][]fleet.Call{}
	for _, c := range f.sts.Calls() {
		by[c.Env] = append(by[c.Env], c)
	}
	return by
}

// TestFleetRefreshesSpread pins the fleet behaviour of refreshes after the
// first: 300 environments started within 10 s, quota enough for all, 1 h
// credentials, botocore clients (they ask with 15 min left). In both modes
// and both execution models, each environment refreshes at its own jittered
// refresh point (35–40 min of age), driven by INVOKE (Tick) or by the
// keeper's timer, not when botocore's fixed window would make its request
// arrive (45 min of age), so the second wave spreads over the 5 min of
// jitter. The agent as it was before (deferred keepers got no tick) is run
// too, to show that the test sees the difference: its whole fleet
// refreshes at 45 min, within the 10 s it started in plus one invocation.
func TestFleetRefreshesSpread(t *testing.T) {
	cases := []struct {
		name, mode  string
		lmi, noTick bool
		spread      bool
	}{
		{"deferred", "deferred", false, false, true},
		{"eager", "eager", false, false, true},
		{"deferred on managed instances", "deferred", true, false, true},
		{"eager on managed instances", "eager", true, false, true},
		{"deferred without tick (before)", "deferred", false, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n, invokeEvery = 300, 20 * time.Second
				f := &fakeFleet{n: n, mode: tc.mode, lmi: tc.lmi, noTick: tc.noTick, spread: 10 * time.Second,
					invokeEvery: invokeEvery, quota: 1000}
				begin := time.Now()
				f.run(t, 50*time.Minute)
				var second []time.Duration // each environment's second call, from the fleet's start
				for env, calls := range f.callsByEnv() {
					if len(calls) != 2 || !calls[0].OK || !calls[1].OK {
						t.Fatalf("env %d: %d calls in 50 min (%v), want 2 that succeed", env, len(calls), calls)
					}
					age := calls[1].At.Sub(calls[0].At)
					// The expiry is cut to whole seconds, so the refresh
					// point may be up to 1 s before 35 min of age.
					if lo, hi := 35*time.Minute-time.Second, 40*time.Minute+3*invokeEvery/2; tc.spread && (age < lo || age > hi) {
						t.Errorf("env %d refreshed at %s of age; want %s to %s (its jittered refresh point)", env, age, lo, hi)
					}
					second = append(second, calls[1].At.Sub(begin))
				}
				slices.Sort(second)
				spread, peak := second[n-1]-second[0], peak10s(second)
				t.Logf("second wave: %s to %s, at most %d requests in 10 s", second[0].Round(time.Second), second[n-1].Round(time.Second), peak)
				if tc.spread && (spread < 4*time.Minute || peak > n/10) {
					t.Errorf("second wave spread over %s with %d requests in its busiest 10 s; want ≥ 4 min and ≤ %d", spread, peak, n/10)
				}
				if narrow := 10*time.Second + 3*invokeEvery/2; !tc.spread && (second[0] < 45*time.Minute || spread > narrow) {
					t.Errorf("the old agent: second wave from %s over %s; the test expects botocore's fixed 45 min wave, within %s", second[0], spread, narrow)
				}
			})
		})
	}
}

// peak10s is the most times within any 10 s; ts sorted.
func peak10s(ts []time.Duration) int {
	most, j := 0, 0
	for i := range ts {
		for ts[i]-ts[j] >= 10*time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// TestFleetColdBurstUnderQuota pins the cold start of the fleet,
// scaled down tenfold (1,000 environments within 10 s against 60/s: the
// same demand for the same quota): each environment sends at most 1.5 STS
// requests on average until it has credentials, and every one has them
// within 20 s, in both modes. Throttling waits 4–8 s (not the 0.5–1 s of
// other failures), so retries mostly land after the burst instead of
// taking the place of other environments' first requests.
func TestFleetColdBurstUnderQuota(t *testing.T) {
	for _, mode := range []string{"deferred", "eager"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeFleet{n: 1000, mode: mode, spread: 10 * time.Second, invokeEvery: 100 * time.Millisecond, quota: 60}
				begin := time.Now()
				f.run(t, 40*time.Second)
				sent, last, throttled := 0, time.Duration(0), 0
				for env, calls := range f.callsByEnv() {
					ok := slices.IndexFunc(calls, func(c fleet.Call) bool { return c.OK })
					if ok < 0 {
						t.Fatalf("env %d has no credentials after 40 s (%d requests)", env, len(calls))
					}
					sent += ok + 1
					throttled += ok
					last = max(last, calls[ok].At.Sub(begin))
				}
				perEnv := float64(sent) / float64(f.n)
				t.Logf("%.2f requests per environment (%d throttled); every environment served after %s", perEnv, throttled, last)
				if perEnv > 1.5 || last > 20*time.Second {
					t.Errorf("%.2f requests per environment, last served after %s; want ≤ 1.5 and ≤ 20 s", perEnv, last)
				}
			})
		})
	}
}
