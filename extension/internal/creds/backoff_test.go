package creds_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// TestBackoffSchedule pins Window.Backoff for 1 h credentials: other
// failures double from 1 s to the 30 s cap; Throttling stays at 8 s for
// its first two answers, then doubles to the cap; both are spread over
// [d/2, d). Irrecoverable failures (the keeper passes n = 1024) wait the
// cap.
func TestBackoffSchedule(t *testing.T) {
	w := creds.WindowFor(time.Hour)
	cases := []struct {
		throttled bool
		want      []time.Duration // d for n = 1, 2, ...
	}{
		{false, []time.Duration{1, 2, 4, 8, 16, 30, 30}},
		{true, []time.Duration{8, 8, 16, 30, 30}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint("throttled=", tc.throttled), func(t *testing.T) {
			for i, d := range tc.want {
				d *= time.Second
				lo, hi := w.Backoff(i+1, tc.throttled, 0), w.Backoff(i+1, tc.throttled, 0.999999)
				if lo != d/2 || hi >= d || hi < d-time.Millisecond {
					t.Errorf("after %d failures: [%s, %s], want [%s, %s)", i+1, lo, hi, d/2, d)
				}
			}
			if got := w.Backoff(1<<10, tc.throttled, 0.5); got != 22500*time.Millisecond {
				t.Errorf("irrecoverable: %s, want 22.5 s", got)
			}
		})
	}
	// Short lifetimes scale it down: 6 s credentials, base 100 ms, cap 1 s.
	if w6 := creds.WindowFor(6 * time.Second); w6.ThrottleBase != 800*time.Millisecond || w6.Backoff(3, true, 0) != 500*time.Millisecond {
		t.Errorf("6 s credentials: %+v, third throttled backoff %s", w6, w6.Backoff(3, true, 0))
	}
}

// TestBackoffEndsByTheFloor: however long the backoff, the next attempt
// comes no later than the moment the credentials held stop being servable.
func TestBackoffEndsByTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSTS{lifetime: time.Hour}
		k := newMemKeeper(s, func(o *creds.Options) { o.Rand = func() float64 { return 0.99 } })
		first, err := k.Credentials(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		floor := first.Expires.Add(-creds.WindowFor(time.Hour).Floor)
		time.Sleep(time.Until(floor) - 3*time.Second) // 3 s above the floor; Throttling backs off 4-8 s
		s.Fail(1 << 20)
		k.Tick()
		synctest.Wait()
		if due := k.Due(); due.After(floor) {
			t.Errorf("next attempt %s after the floor; want by it", due.Sub(floor))
		}
		k.Close()
	})
}

// TestTickWaitsForTheFirstRequest: deferred mode makes no STS call before
// something asks, however many INVOKE ticks come; after the first request,
// ticks refresh at the refresh point.
func TestTickWaitsForTheFirstRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSTS{lifetime: time.Hour}
		k := newMemKeeper(s, func(o *creds.Options) { o.RefreshInBackground, o.Rand = false, func() float64 { return 0 } })
		defer k.Close()
		for range 5 {
			k.Tick()
			time.Sleep(time.Minute)
		}
		synctest.Wait()
		select {
		case <-k.Active():
			t.Fatal("active before any request")
		default:
		}
		if n := len(s.Calls()); n != 0 {
			t.Fatalf("%d STS calls before the first request", n)
		}
		if _, err := k.Credentials(t.Context()); err != nil {
			t.Fatal(err)
		}
		<-k.Active()
		time.Sleep(40 * time.Minute)
		k.Tick()
		synctest.Wait()
		if calls := s.Calls(); len(calls) != 2 || calls[1].Sub(calls[0]) != 40*time.Minute {
			t.Errorf("calls at %v; want the first request's and the tick's 40 min later", calls)
		}
		if h := k.Health(); h.Waited != 1 {
			t.Errorf("%d requests waited; want only the first", h.Waited)
		}
	})
}

// slowSource answers after delay (virtual time), counting calls.
type slowSource struct {
	delay time.Duration
	calls int
}

func (s *slowSource) Retrieve(ctx context.Context) (aws.Credentials, error) {
	s.calls++
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return aws.Credentials{}, ctx.Err()
	}
	return aws.Credentials{AccessKeyID: fmt.Sprintf("ASIASLOW%012d", s.calls), SecretAccessKey: "s", SessionToken: "t",
		CanExpire: true, Expires: time.Now().Add(time.Hour)}, nil
}

func (s *slowSource) Describe() string { return "slow test source" }

// TestRequestWaitAnswersBeforeClientTimeout: with nothing servable and STS
// slow (3 s), a request gets a retryable RefreshInProgress with a
// Retry-After after 800 ms, under JS v3's 1 s timeout, instead of being
// held to the end; the refresh goes on, and the retry a client makes
// later is served by that same single call. A chain link's signer
// (Retrieve) still waits for the end.
func TestRequestWaitAnswersBeforeClientTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &slowSource{delay: 3 * time.Second}
		k := creds.NewKeeper(src)
		defer k.Close()
		start := time.Now()
		_, err := k.Credentials(t.Context())
		var ce *creds.Error
		if !errors.As(err, &ce) || ce.Code != creds.CodeRefreshInProgress || !ce.Retryable || ce.RetryAfter != time.Second {
			t.Fatalf("err = %v; want a retryable RefreshInProgress with RetryAfter 1 s", err)
		}
		if took := time.Since(start); took != creds.DefaultRequestWait {
			t.Errorf("answered after %s, want %s", took, creds.DefaultRequestWait)
		}
		chained := make(chan error, 1)
		go func() { _, err := k.Retrieve(t.Context()); chained <- err }()
		time.Sleep(time.Second) // the client's retry, 1.8 s in: still running
		if _, err := k.Credentials(t.Context()); !errors.As(err, &ce) || ce.Code != creds.CodeRefreshInProgress {
			t.Fatalf("second try: %v", err)
		}
		time.Sleep(time.Second)
		c, err := k.Credentials(t.Context()) // 3.6 s in: the refresh has landed
		if err != nil || c.AccessKeyID != "ASIASLOW000000000001" || src.calls != 1 {
			t.Fatalf("after the refresh: %v %v, %d calls; want the one call's credentials", c.AccessKeyID, err, src.calls)
		}
		if err := <-chained; err != nil {
			t.Errorf("Retrieve (a chain link's signer): %v; want it to wait for the refresh", err)
		}
	})
}

// TestSTSClientLeavesThrottlingToTheKeeper: the extension's STS client does
// not retry Throttling (nor a 429) itself, so one refresh is one request
// when the account is over its quota; other retryable failures still get
// the configured attempts.
func TestSTSClientLeavesThrottlingToTheKeeper(t *testing.T) {
	cases := []struct {
		failure ststest.Failure
		want    int64
	}{
		{ststest.Failure{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"}, 1},
		{ststest.Failure{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException", Message: "slow down"}, 1},
		{ststest.Failure{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "down"}, 3},
		{ststest.Failure{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: "boom"}, 3},
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXECUTION0000000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_SESSION_TOKEN", "tok")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for _, tc := range cases {
		t.Run(tc.failure.Code, func(t *testing.T) {
			fake := ststest.New(t, time.Now)
			fake.Fail(&tc.failure)
			client, err := creds.NewSTSClient(context.Background(), creds.STSOptions{Region: "us-east-1", Endpoint: fake.URL,
				MaxAttempts: 3, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/t"),
				RoleSessionName: aws.String("s")})
			if err == nil || fake.Calls() != tc.want {
				t.Errorf("%s: %d requests (err %v), want %d", tc.failure.Code, fake.Calls(), err, tc.want)
			}
		})
	}
}
