package creds_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// memSTS is an in-process AssumeRole for tests in virtual time
// (testing/synctest cannot advance its clock while a goroutine waits on a
// real socket). Call n issues key ASIAMEM<n>, valid for lifetime from the
// bubble's clock; while failures > 0 a call fails with Throttling instead.
type memSTS struct {
	lifetime time.Duration
	sub      time.Duration // subtracted from the expiry's whole seconds (sub-second expiries)

	mu       sync.Mutex
	calls    []time.Time
	failures int
}

func (s *memSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.calls = append(s.calls, now)
	if s.failures > 0 {
		s.failures--
		return nil, &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	}
	n := len(s.calls)
	return &sts.AssumeRoleOutput{
		Credentials: &ststypes.Credentials{
			AccessKeyId: aws.String(fmt.Sprintf("ASIAMEM%013d", n)), SecretAccessKey: aws.String("secret"),
			SessionToken: aws.String("token"), Expiration: aws.Time(now.Add(s.lifetime).Add(-s.sub)),
		},
		AssumedRoleUser: &ststypes.AssumedRoleUser{Arn: aws.String("arn:aws:sts::123456789012:assumed-role/target/" + aws.ToString(in.RoleSessionName))},
	}, nil
}

func (s *memSTS) Calls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

func (s *memSTS) Fail(n int) {
	s.mu.Lock()
	s.failures = n
	s.mu.Unlock()
}

func newMemKeeper(s *memSTS, optFns ...func(*creds.Options)) *creds.Keeper {
	return creds.NewKeeper(creds.AssumeRole(s, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/target"),
		RoleSessionName: aws.String("test"), DurationSeconds: aws.Int32(int32(s.lifetime / time.Second))}),
		append([]func(*creds.Options){func(o *creds.Options) { o.RefreshInBackground = true }}, optFns...)...)
}

// TestKeepFreshRefreshesOnTheTimer is eager mode where no INVOKE event comes
// (Lambda Managed Instances): with nobody asking for credentials for five
// hours, the timer alone refreshes 1 h credentials once per refresh point
// (40 min of age with no jitter), each before the refresh window's end, and
// a request at any moment finds credentials with more than botocore's
// 15 minutes left without waiting on STS.
func TestKeepFreshRefreshesOnTheTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSTS{lifetime: time.Hour}
		k := newMemKeeper(s, func(o *creds.Options) { o.Rand = func() float64 { return 0 } })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { k.KeepFresh(ctx, time.Minute); close(done) }()
		start := time.Now()
		for range 5 * 60 {
			synctest.Wait()
			c, err := k.Credentials(ctx)
			if err != nil || time.Until(c.Expires) <= 15*time.Minute {
				t.Fatalf("at %s: %v, %s left", time.Since(start), err, time.Until(c.Expires))
			}
			time.Sleep(time.Minute)
		}
		calls := s.Calls()
		for i, at := range calls {
			if want := start.Add(time.Duration(i) * 40 * time.Minute); !at.Equal(want) {
				t.Errorf("STS call %d at %s, want %s", i+1, at.Sub(start), want.Sub(start))
			}
		}
		if len(calls) != 8 { // 0, 40, ..., 280 min
			t.Errorf("%d STS calls in 5 h, want 8", len(calls))
		}
		if h := k.Health(); h.Waited != 0 {
			t.Errorf("%d requests waited on STS; want 0", h.Waited)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("KeepFresh did not return when its context ended")
		}
	})
}

// TestKeepFreshJitter: the refresh point carries each credential set's
// jitter, so environments started together drift apart; the timer follows
// it to the nanosecond.
func TestKeepFreshJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.99} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &memSTS{lifetime: time.Hour}
				k := newMemKeeper(s, func(o *creds.Options) { o.Rand = func() float64 { return r } })
				go k.KeepFresh(t.Context(), time.Minute)
				start := time.Now()
				time.Sleep(45 * time.Minute)
				calls := s.Calls()
				w := creds.WindowFor(time.Hour)
				want := time.Hour - w.Refresh - time.Duration(float64(w.Jitter)*r)
				if len(calls) != 2 || calls[1].Sub(start) != want {
					t.Fatalf("calls at %v; want the second at %s", calls, want)
				}
			})
		})
	}
}

// TestKeepFreshBacksOffOnFailure: a throttled STS is retried on the
// backoff's schedule, not in a loop, while the still-valid credentials are
// served; the first success ends the backoff.
func TestKeepFreshBacksOffOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSTS{lifetime: time.Hour}
		k := newMemKeeper(s, func(o *creds.Options) { o.Rand = func() float64 { return 0 } })
		go k.KeepFresh(t.Context(), time.Minute)
		synctest.Wait()
		first, _ := k.Credentials(t.Context())
		s.Fail(5)
		time.Sleep(40*time.Minute + time.Minute)
		calls := s.Calls()
		// Throttling: 8 s for the first two answers, then doubling to the
		// 30 s cap, jittered into [d/2, d) with r = 0: 4, 4, 8, 15, 15 s
		// between the five failures, then success.
		if len(calls) != 7 {
			t.Fatalf("%d STS calls, want 1 + 5 failed + 1", len(calls))
		}
		var gaps []time.Duration
		for i := 2; i < len(calls); i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		want := []time.Duration{4 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
		if fmt.Sprint(gaps) != fmt.Sprint(want) {
			t.Errorf("gaps between attempts %v, want %v", gaps, want)
		}
		c, err := k.Credentials(t.Context())
		if err != nil || c.AccessKeyID == first.AccessKeyID {
			t.Errorf("after the backoff: %v %v", c.AccessKeyID, err)
		}
		if h := k.Health(); h.ConsecutiveFailures != 0 || h.STSFailures != 5 {
			t.Errorf("health %+v", h)
		}
	})
}

// TestServedExpiryIsWholeSeconds: STS may return an expiry with a fraction
// of a second; the container format carries whole seconds, so the keeper
// cuts it before deriving the windows. With 6 s credentials (floor 0.9 s),
// what is served never has its served Expiration at or before the floor.
func TestServedExpiryIsWholeSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSTS{lifetime: 6 * time.Second, sub: 300 * time.Millisecond}
		k := newMemKeeper(s, func(o *creds.Options) { o.RefreshInBackground = false })
		w := creds.WindowFor(6 * time.Second)
		for range 300 {
			c, err := k.Credentials(t.Context())
			var ce *creds.Error
			if errors.As(err, &ce) {
				t.Fatal(err)
			}
			if c.Expires.Nanosecond() != 0 {
				t.Fatalf("served expiry %s has a fraction of a second", c.Expires)
			}
			if left := time.Until(c.Expires); left <= w.Floor {
				t.Fatalf("served credentials whose Expiration is %s away (floor %s)", left, w.Floor)
			}
			time.Sleep(50 * time.Millisecond)
			synctest.Wait()
		}
	})
}
