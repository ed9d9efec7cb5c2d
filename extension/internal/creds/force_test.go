package creds_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// TestForcedRefresh: Refresh replaces credentials that are still fresh;
// concurrent calls share one flight; a second forced refresh within the
// interval gets a RateLimitError with the time left; one after it is
// allowed, and it ignores a backoff in force (the user says the cause is
// fixed).
func TestForcedRefresh(t *testing.T) {
	f := newFixture(t, 3600)
	first := f.get(t)
	var wg sync.WaitGroup
	keys := make([]string, 50)
	for i := range keys {
		wg.Go(func() {
			c, err := f.keeper.Refresh(context.Background())
			if err == nil {
				keys[i] = c.AccessKeyID
			}
		})
	}
	wg.Wait()
	if n := f.sts.Calls(); n != 2 {
		t.Fatalf("50 concurrent forced refreshes made %d STS calls, want 1 more", n-1)
	}
	// The first caller starts the flight; the others join it while it runs,
	// or are refused once it has ended (rate limit): nobody gets the old key.
	fresh := 0
	for _, k := range keys {
		if k == first.AccessKeyID {
			t.Fatal("a forced refresh answered with the old credentials")
		}
		if k != "" {
			fresh++
		}
	}
	if fresh == 0 || f.get(t).AccessKeyID == first.AccessKeyID {
		t.Fatalf("no forced refresh succeeded (%d), or the keeper still serves the old key", fresh)
	}
	f.clock.Advance(4 * time.Second)
	_, err := f.keeper.Refresh(context.Background())
	var rl *creds.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 6*time.Second || rl.Interval != 10*time.Second {
		t.Fatalf("second forced refresh 4 s later: %v; want a rate limit with 6 s left", err)
	}
	// A failure sets a backoff; a forced refresh 10 s later goes through it.
	f.sts.Fail(&ststest.Failure{Status: http.StatusForbidden, Code: "AccessDenied", Message: "revoked"})
	f.clock.Advance(6 * time.Second)
	if _, err := f.keeper.Refresh(context.Background()); err == nil {
		t.Fatal("a forced refresh succeeded against a failing STS")
	}
	f.sts.Fail(nil)
	f.clock.Advance(10 * time.Second)
	c, err := f.keeper.Refresh(context.Background())
	if err != nil || f.sts.Calls() != 4 {
		t.Fatalf("forced refresh during the backoff: %v after %d calls", err, f.sts.Calls())
	}
	if got := f.get(t); got.AccessKeyID != c.AccessKeyID {
		t.Errorf("served %s after the forced refresh returned %s", got.AccessKeyID, c.AccessKeyID)
	}
}

// TestIdentity: looked up once per credential set however many ask at once,
// again after a refresh, never cached when it fails.
func TestIdentity(t *testing.T) {
	var lookups atomic.Int64
	var failing atomic.Bool
	f := newFixture(t, 3600, func(o *creds.Options) {
		o.Identify = func(_ context.Context, c aws.Credentials) (creds.Identity, error) {
			lookups.Add(1)
			if failing.Load() {
				return creds.Identity{}, errors.New("connection refused")
			}
			return creds.Identity{Account: c.AccountID, Arn: "arn:aws:sts::123456789012:assumed-role/target/" + c.AccessKeyID, UserID: "AROA:" + c.AccessKeyID}, nil
		}
	})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if id, err := f.keeper.Identity(context.Background()); err != nil || !strings.HasSuffix(id.Arn, "ASIAFAKE000000000001") {
				t.Errorf("identity %+v, %v", id, err)
			}
		})
	}
	wg.Wait()
	if n := lookups.Load(); n != 1 {
		t.Fatalf("%d lookups for 100 concurrent requests, want 1", n)
	}
	f.clock.Advance(time.Hour) // expired: the next identity is of new credentials
	failing.Store(true)
	if _, err := f.keeper.Identity(context.Background()); err == nil {
		t.Fatal("a failed lookup was reported as success")
	}
	failing.Store(false)
	id, err := f.keeper.Identity(context.Background())
	if err != nil || !strings.HasSuffix(id.Arn, "ASIAFAKE000000000002") || lookups.Load() != 3 {
		t.Fatalf("after a refresh: %+v %v after %d lookups", id, err, lookups.Load())
	}
	if _, err := newFixture(t, 3600).keeper.Identity(context.Background()); !errors.Is(err, creds.ErrNoIdentity) {
		t.Errorf("without Identify: %v", err)
	}
}

// FuzzParseProcessOutput: the credential_process parser never panics, its
// successes are complete, and its errors never repeat the output (which may
// hold secrets) nor grow with it.
func FuzzParseProcessOutput(f *testing.F) {
	f.Add([]byte(`{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-11-25T10:00:00Z"}`))
	f.Add([]byte(`{"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"s"}`))
	f.Add([]byte(`{"Version":2}`))
	f.Add([]byte(`{"Version":"1","AccessKeyId":123}`))
	f.Add([]byte(`{"Version":1,"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"tomorrow"} trailing`))
	f.Add([]byte(`not json at all: secret-value-0123456789`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := creds.ParseProcessOutput(b)
		if err != nil {
			msg := err.Error()
			if len(msg) > 200 || (len(b) >= 8 && utf8.Valid(b) && strings.Contains(msg, string(b))) {
				t.Fatalf("error %q repeats or grows with the output", msg)
			}
			return
		}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || (c.CanExpire && c.Expires.IsZero()) {
			t.Fatalf("incomplete credentials from %q: %+v", b, c.AccessKeyID)
		}
	})
}
