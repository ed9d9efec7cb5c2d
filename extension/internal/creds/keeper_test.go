package creds_test

import (
	"context"
	"errors"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/logcapture"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type fixture struct {
	clock  *ststest.Clock
	sts    *ststest.Server
	keeper *creds.Keeper
	logs   *logcapture.Buffer
}

// newFixture builds a keeper over an in-process fake STS, for tests that
// run in a testing/synctest bubble: every wait (StaleWait, the refresh
// timeout, the SDK's retry delay) is then in virtual time. Decisions read
// the fixture's manual clock.
func newFixture(t *testing.T, duration int32, optFns ...func(*creds.Options)) *fixture {
	t.Helper()
	return newFixtureWith(t, ststest.NewInProcess, duration, optFns...)
}

// newSocketFixture is newFixture over a fake STS on a real socket, for the
// tests of network failures.
func newSocketFixture(t *testing.T, duration int32, optFns ...func(*creds.Options)) *fixture {
	t.Helper()
	return newFixtureWith(t, func(now func() time.Time) *ststest.Server { return ststest.New(t, now) }, duration, optFns...)
}

func newFixtureWith(t *testing.T, newSTS func(func() time.Time) *ststest.Server, duration int32, optFns ...func(*creds.Options)) *fixture {
	t.Helper()
	f := &fixture{clock: ststest.NewClock(t0), logs: &logcapture.Buffer{}}
	f.sts = newSTS(f.clock.Now)
	opts := append([]func(*creds.Options){func(o *creds.Options) {
		o.Now = f.clock.Now
		o.Rand = func() float64 { return 0 }
		o.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}}, optFns...)
	f.keeper = creds.NewKeeper(creds.AssumeRole(f.sts.Client(2), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::123456789012:role/target"), RoleSessionName: aws.String("test"),
		DurationSeconds: aws.Int32(duration)}), opts...)
	t.Cleanup(f.keeper.Close)
	return f
}

func (f *fixture) get(t *testing.T) aws.Credentials {
	t.Helper()
	c, err := f.keeper.Credentials(context.Background())
	if err != nil {
		t.Fatalf("Credentials: %v", err)
	}
	return c
}

// settle waits, in virtual time, until every goroutine of the bubble is
// blocked: any refresh in flight has finished.
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	synctest.Wait()
	if f.keeper.Health().Refreshing {
		t.Fatal("a refresh is still in flight")
	}
}

// eventually checks cond once the bubble has settled.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	synctest.Wait()
	if !cond() {
		t.Fatalf("not so once settled: %s", what)
	}
}

func TestWindowFor(t *testing.T) {
	cases := []struct {
		lifetime                     time.Duration
		refresh, jitter, floor, bmax time.Duration
	}{
		{time.Hour, 20 * time.Minute, 5 * time.Minute, 5 * time.Minute, 30 * time.Second},
		{15 * time.Minute, 315 * time.Second, 90 * time.Second, 135 * time.Second, 30 * time.Second},
		{6 * time.Second, 2100 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			w := creds.WindowFor(tc.lifetime)
			if w.Refresh != tc.refresh || w.Jitter != tc.jitter || w.Floor != tc.floor || w.BackoffMax != tc.bmax {
				t.Errorf("WindowFor(%s) = %+v", tc.lifetime, w)
			}
			if w.Floor >= w.Refresh {
				t.Errorf("floor %s must be below refresh %s", w.Floor, w.Refresh)
			}
		})
	}
}

func TestDeferredFetchesOnFirstRequestOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		if f.sts.Calls() != 0 || f.keeper.Health().State != creds.StateEmpty {
			t.Fatal("STS called before the first request")
		}
		c := f.get(t)
		if c.AccessKeyID != "ASIAFAKE000000000001" || !c.CanExpire || !c.Expires.Equal(t0.Add(time.Hour)) || c.AccountID != "123456789012" {
			t.Errorf("credentials = %+v", c)
		}
		for range 10 {
			f.get(t)
		}
		if n := f.sts.Calls(); n != 1 {
			t.Errorf("STS calls = %d, want 1", n)
		}
		if h := f.keeper.Health(); h.Served != 11 || h.Waited != 1 || h.State != creds.StateFresh {
			t.Errorf("health = %+v", h)
		}
	})
}

// With a 1 h lifetime, a client polling every minute for five hours never
// receives credentials with 15 minutes or less left, and STS is called about
// once per 40 minutes.
func TestServedCredentialsOutliveClientWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600, func(o *creds.Options) {
			var mu sync.Mutex
			n := 0
			o.Rand = func() float64 { mu.Lock(); defer mu.Unlock(); n++; return float64(n%10) / 10 }
		})
		for minute := 0; minute < 300; minute++ {
			c := f.get(t)
			if left := c.Expires.Sub(f.clock.Now()); left <= 15*time.Minute {
				t.Fatalf("minute %d: served credentials with %s left", minute, left)
			}
			f.settle(t)
			f.clock.Advance(time.Minute)
		}
		if n := f.sts.Calls(); n < 300/40 || n > 300/35+1 {
			t.Errorf("STS calls = %d over 5 h, want one per 35-40 min", n)
		}
	})
}

func TestShortLifetimeNeverServesNearExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 6)
		w := creds.WindowFor(6 * time.Second)
		for step := 0; step < 200; step++ {
			c := f.get(t)
			if left := c.Expires.Sub(f.clock.Now()); left <= w.Floor {
				t.Fatalf("step %d: served credentials with %s left (floor %s)", step, left, w.Floor)
			}
			f.settle(t)
			f.clock.Advance(100 * time.Millisecond)
		}
		// 20 s of 6 s credentials refreshed at ~3.9 s of age: about 5 calls.
		if n := f.sts.Calls(); n < 4 || n > 7 {
			t.Errorf("STS calls = %d, want 4-7", n)
		}
	})
}

// Inside the refresh window, deferred mode waits briefly for the refresh so
// the request leaves with fresh credentials; with a slow STS it gives up
// after StaleWait and serves the still-valid ones. Eager mode never waits.
func TestRefreshWindow(t *testing.T) {
	cases := []struct {
		name       string
		background bool
		slowSTS    bool
		wantFresh  bool
		wantWaited int64
	}{
		{"deferred, STS prompt", false, false, true, 2},
		{"deferred, STS slow", false, true, false, 2},
		{"eager", true, false, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, 3600, func(o *creds.Options) {
					o.RefreshInBackground, o.StaleWait = tc.background, 50*time.Millisecond
				})
				first := f.get(t)
				f.clock.Advance(40*time.Minute + time.Second) // inside the 20 min window
				var release func()
				if tc.slowSTS || tc.background {
					release = f.sts.Hold()
				}
				got := f.get(t)
				if fresh := got.AccessKeyID != first.AccessKeyID; fresh != tc.wantFresh {
					t.Fatalf("fresh = %v, want %v", fresh, tc.wantFresh)
				}
				if tc.slowSTS {
					// The flight is now older than StaleWait: later requests
					// are served at once instead of waiting again.
					f.clock.Advance(time.Second)
					waited := f.keeper.Health().Waited
					if f.get(t).AccessKeyID != first.AccessKeyID || f.keeper.Health().Waited != waited {
						t.Fatal("a request waited again on a flight already known to be slow")
					}
				}
				if release != nil {
					release()
				}
				f.settle(t)
				eventually(t, "the new key is served", func() bool { return f.get(t).AccessKeyID != first.AccessKeyID })
				if h := f.keeper.Health(); h.Waited != tc.wantWaited || h.STSCalls != 2 {
					t.Errorf("health = %+v, want %d waited requests and 2 STS calls", h, tc.wantWaited)
				}
			})
		})
	}
}

func TestEagerTickRefreshesOnlyWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600, func(o *creds.Options) { o.RefreshInBackground = true })
		if err := f.keeper.Prefetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.keeper.Tick()
		f.clock.Advance(39 * time.Minute)
		f.keeper.Tick()
		synctest.Wait()
		if n := f.sts.Calls(); n != 1 {
			t.Fatalf("Tick before the window called STS: %d calls", n)
		}
		f.clock.Advance(2 * time.Minute)
		f.keeper.Tick()
		f.settle(t)
		eventually(t, "fresh", func() bool { return f.keeper.Health().State == creds.StateFresh })
		if h := f.keeper.Health(); h.Waited != 0 {
			t.Errorf("eager: %d requests waited", h.Waited)
		}
	})
}

func TestBackoffPreventsStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		f.sts.Fail(&ststest.Failure{Status: 503, Code: "ServiceUnavailable", Message: "down"})
		_, err := f.keeper.Credentials(context.Background())
		var ce *creds.Error
		if !errors.As(err, &ce) || !ce.Retryable || ce.Code != "ServiceUnavailable" {
			t.Fatalf("err = %v", err)
		}
		calls := f.sts.Calls() // the SDK's own 2 attempts
		var delays []time.Duration
		for i := range 4 {
			for range 50 { // a crowd during the backoff makes no STS call
				_, err = f.keeper.Credentials(context.Background())
				if !errors.As(err, &ce) || ce.RetryAfter <= 0 {
					t.Fatalf("round %d: want an immediate error with Retry-After, got %v", i, err)
				}
			}
			if f.sts.Calls() != calls {
				t.Fatalf("round %d: STS called during backoff", i)
			}
			delays = append(delays, ce.RetryAfter)
			f.clock.Advance(ce.RetryAfter)
			_, _ = f.keeper.Credentials(context.Background())
			calls = f.sts.Calls()
		}
		for i := 1; i < len(delays); i++ {
			if delays[i] < delays[i-1] {
				t.Errorf("backoff shrank: %v", delays)
			}
		}
		if delays[len(delays)-1] < 2*delays[0] {
			t.Errorf("backoff did not grow: %v", delays)
		}
		f.sts.Fail(nil)
		f.clock.Advance(time.Minute)
		if c := f.get(t); c.AccessKeyID == "" {
			t.Fatal("no recovery")
		}
	})
}

func TestStaleWhileValidThenNeverExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		first := f.get(t)
		f.sts.Fail(&ststest.Failure{Status: 500, Code: "InternalFailure", Message: "boom"})
		f.clock.Advance(45 * time.Minute)
		for range 3 {
			if c := f.get(t); c.AccessKeyID != first.AccessKeyID {
				t.Fatal("stale credentials not served")
			}
			f.settle(t)
			f.clock.Advance(2 * time.Minute)
		}
		eventually(t, "a warning about serving the still-valid credentials", func() bool { return strings.Contains(f.logs.String(), "serving the still-valid credentials") })
		f.clock.Set(first.Expires.Add(-creds.WindowFor(time.Hour).Floor)) // at the floor
		f.clock.Advance(time.Minute)                                      // past any backoff
		_, err := f.keeper.Credentials(context.Background())
		if err == nil {
			t.Fatal("served credentials at the floor")
		}
		if h := f.keeper.Health(); h.State != creds.StateFailing || h.LastErrorCode != "InternalFailure" {
			t.Errorf("health = %+v", h)
		}
	})
}

// A sandbox frozen across the expiry boundary must not serve the old
// credentials on thaw, even though no timer ran.
func TestFreezeAcrossExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		first := f.get(t)
		f.clock.Advance(2 * time.Hour)
		c := f.get(t)
		if c.AccessKeyID == first.AccessKeyID || !c.Expires.After(f.clock.Now().Add(55*time.Minute)) {
			t.Fatalf("after thaw served %+v", c)
		}
	})
}

func TestIrrecoverableErrors(t *testing.T) {
	cases := []struct {
		name, code, msg string
		chaining        bool
	}{
		{"access denied", "AccessDenied", "User is not authorized to perform: sts:AssumeRole", false},
		{"role chaining", "ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.", true},
		{"region disabled", "RegionDisabledException", "STS is not activated in this region", false},
		{"expired base", "ExpiredToken", "The security token included in the request is expired", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, 3600)
				f.sts.Fail(&ststest.Failure{Status: http.StatusBadRequest, Code: tc.code, Message: tc.msg})
				_, err := f.keeper.Credentials(context.Background())
				var ce *creds.Error
				if !errors.As(err, &ce) || ce.Retryable || ce.Code != tc.code || !strings.Contains(ce.Message, tc.msg) {
					t.Fatalf("err = %#v", err)
				}
				if f.sts.Calls() != 1 {
					t.Errorf("irrecoverable error retried: %d calls", f.sts.Calls())
				}
				// Only the role-chaining refusal carries the explanation of what to do.
				if hinted := strings.Contains(err.Error(), "CREDENTIAL_REFRESH_DURATION_SECONDS to 3600"); hinted != tc.chaining {
					t.Errorf("role-chaining hint present = %v, want %v: %v", hinted, tc.chaining, err)
				}
				// ExpiredToken is about the base credentials: the message says
				// whose they are and what to do.
				if hinted := strings.Contains(err.Error(), "an extension cannot renew them"); hinted != (tc.code == "ExpiredToken") {
					t.Errorf("base-credentials hint present = %v for %s: %v", hinted, tc.code, err)
				}
				// Irrecoverable errors back off the longest.
				if ce2 := asErr(f.keeper.Credentials(context.Background())); ce2 == nil || ce2.RetryAfter < 10*time.Second {
					t.Errorf("short backoff after an irrecoverable error: %+v", ce2)
				}
			})
		})
	}
}

func asErr(_ aws.Credentials, err error) *creds.Error {
	var ce *creds.Error
	errors.As(err, &ce)
	return ce
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		f := newSocketFixture(t, 3600)
		f.sts.Close()
		ce := asErr(f.keeper.Credentials(context.Background()))
		if ce == nil || ce.Code != "ConnectionError" || !ce.Retryable {
			t.Fatalf("err = %+v", ce)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, 3600, func(o *creds.Options) { o.RefreshTimeout = 50 * time.Millisecond })
			defer f.sts.Hold()()
			ce := asErr(f.keeper.Credentials(context.Background()))
			if ce == nil || ce.Code != "RequestTimeout" || !ce.Retryable {
				t.Fatalf("err = %+v", ce)
			}
		})
	})
}

func TestAllAssumeRoleFieldsSent(t *testing.T) {
	clock := ststest.NewClock(t0)
	fake := ststest.New(t, clock.Now)
	k := creds.NewKeeper(creds.AssumeRole(fake.Client(1), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::123456789012:role/target"), RoleSessionName: aws.String("sess"),
		DurationSeconds: aws.Int32(900), ExternalId: aws.String("ext"), Policy: aws.String(`{"Version":"2012-10-17"}`),
		PolicyArns:        []types.PolicyDescriptorType{{Arn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")}},
		Tags:              []types.Tag{{Key: aws.String("team"), Value: aws.String("blue")}},
		TransitiveTagKeys: []string{"team"}, SourceIdentity: aws.String("alice"),
		ProvidedContexts: []types.ProvidedContext{{ProviderArn: aws.String("arn:aws:iam::aws:contextProvider/IdentityCenter"),
			ContextAssertion: aws.String("assert")}},
	}), func(o *creds.Options) { o.Now = clock.Now })
	defer k.Close()
	if _, err := k.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	form := fake.Requests()[0]
	want := map[string]string{
		"RoleArn": "arn:aws:iam::123456789012:role/target", "RoleSessionName": "sess", "DurationSeconds": "900",
		"ExternalId": "ext", "Policy": `{"Version":"2012-10-17"}`, "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
		"Tags.member.1.Key": "team", "Tags.member.1.Value": "blue", "TransitiveTagKeys.member.1": "team",
		"SourceIdentity": "alice", "ProvidedContexts.member.1.ContextAssertion": "assert",
	}
	for k, v := range want {
		if form.Get(k) != v {
			t.Errorf("%s = %q, want %q (form %v)", k, form.Get(k), v, form)
		}
	}
}

// 1,000 concurrent callers against an empty cache make exactly one STS call.
func TestConcurrentCallersMakeOneSTSCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		release := f.sts.Hold()
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.keeper.Credentials(context.Background())
				errs <- err
			}()
		}
		eventually(t, "1,000 callers waiting", func() bool { return f.keeper.Health().Waited == 1000 })
		release()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := f.sts.Calls(); n != 1 {
			t.Fatalf("STS calls = %d, want exactly 1", n)
		}
	})
}

// While a slow refresh is in flight past the floor, no caller gets the old,
// nearly expired credentials.
func TestSlowSTSNeverYieldsExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		first := f.get(t)
		release := f.sts.Hold()
		f.clock.Set(first.Expires.Add(-time.Minute)) // below the floor
		var wg sync.WaitGroup
		results := make(chan aws.Credentials, 200)
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := f.keeper.Credentials(context.Background())
				if err == nil {
					results <- c
				}
			}()
		}
		synctest.Wait() // all 200 are waiting on the held flight
		release()
		wg.Wait()
		close(results)
		n := 0
		for c := range results {
			n++
			if c.AccessKeyID == first.AccessKeyID || c.Expires.Sub(f.clock.Now()) <= creds.WindowFor(time.Hour).Floor {
				t.Fatalf("served near-expiry credentials %s expiring %s", c.AccessKeyID, c.Expires)
			}
		}
		if n != 200 || f.sts.Calls() != 2 {
			t.Errorf("got %d results and %d STS calls", n, f.sts.Calls())
		}
	})
}

func TestLogsCarryNoSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600)
		f.get(t)
		f.sts.Fail(&ststest.Failure{Status: 503, Code: "ServiceUnavailable", Message: "down"})
		f.clock.Advance(50 * time.Minute)
		f.get(t)
		eventually(t, "a refresh-failed log", func() bool { return strings.Contains(f.logs.String(), "refresh failed") })
		logs := f.logs.String()
		for _, c := range f.sts.Issued() {
			if strings.Contains(logs, c.SecretAccessKey) || strings.Contains(logs, c.SessionToken) {
				t.Fatal("a secret reached the logs")
			}
		}
		if !strings.Contains(logs, "credentials refreshed") {
			t.Error("no refresh log")
		}
	})
}

func BenchmarkKeeperCredentials(b *testing.B) {
	clock := ststest.NewClock(time.Now())
	fake := ststest.New(b, clock.Now)
	k := creds.NewKeeper(creds.AssumeRole(fake.Client(1), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/t"),
		RoleSessionName: aws.String("b"), DurationSeconds: aws.Int32(3600)}))
	defer k.Close()
	if err := k.Prefetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Credentials(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Deferred mode waiting inside the window must not hand out credentials that
// reached the floor while it waited (here the clock jumps, as on a thaw).
func TestBriefWaitRechecksTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3600, func(o *creds.Options) { o.StaleWait = time.Second })
		first := f.get(t)
		floor := first.Expires.Add(-creds.WindowFor(time.Hour).Floor)
		f.clock.Set(floor.Add(-time.Second))
		release := f.sts.Hold()
		go func() {
			time.Sleep(20 * time.Millisecond)   // virtual: the request is in its brief wait
			f.clock.Advance(2 * time.Second)    // past the floor during the wait
			time.Sleep(1300 * time.Millisecond) // after the brief wait gave up
			release()
		}()
		got := f.get(t)
		if got.AccessKeyID == first.AccessKeyID {
			t.Fatalf("served credentials that reached the floor during the wait")
		}
	})
}

// A crowd arriving as a flight fails must not start a second flight: the
// backoff that failure set applies to them too.
func TestFailedFlightBackoffHoldsForLateJoiners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for round := range 50 {
			f := newFixture(t, 3600)
			f.sts.Fail(&ststest.Failure{Status: 503, Code: "ServiceUnavailable", Message: "down"})
			var wg sync.WaitGroup
			for range 1000 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = f.keeper.Credentials(context.Background())
				}()
			}
			wg.Wait()
			if n := f.sts.Calls(); n != 2 { // one flight: the SDK's 2 attempts
				t.Fatalf("round %d: %d STS requests, want the 2 of a single flight", round, n)
			}
		}
	})
}
