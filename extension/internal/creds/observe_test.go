package creds_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// TestObserveAndRequestIDs: Options.Observe hears of every STS call with
// its latency, outcome, STS request id, the new credentials' lifetime and
// what the replaced ones had left; the request id of a failure is in the
// error's text, the log line and Health, and of the last call in Health.
func TestObserveAndRequestIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []creds.Attempt
		f := newFixture(t, 3600, func(o *creds.Options) {
			o.Observe = func(a creds.Attempt) { mu.Lock(); seen = append(seen, a); mu.Unlock() }
		})
		f.sts.SetDelay(20 * time.Millisecond)
		f.get(t)
		f.clock.Advance(41 * time.Minute)
		f.get(t) // deferred: inside the window, waits for the refresh
		f.settle(t)
		f.sts.Fail(&ststest.Failure{Status: 400, Code: "Throttling", Message: "Rate exceeded"})
		f.clock.Advance(time.Hour)
		_, err := f.keeper.Credentials(context.Background())
		var ce *creds.Error
		if !errors.As(err, &ce) || ce.Code != "Throttling" || ce.RequestID != "err" || !strings.Contains(err.Error(), "STS request id err") {
			t.Fatalf("err = %v (%+v); want Throttling carrying STS's request id", err, ce)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 3 {
			t.Fatalf("%d attempts observed, want 3: %+v", len(seen), seen)
		}
		first, refresh, failed := seen[0], seen[1], seen[2]
		if first.Err != nil || first.RequestID != "req-1" || first.Lifetime != time.Hour || first.LeftAtStart != 0 || first.Role != "default" {
			t.Errorf("first fetch: %+v", first)
		}
		if refresh.Err != nil || refresh.RequestID != "req-2" || refresh.LeftAtStart != 19*time.Minute {
			t.Errorf("refresh: %+v; want req-2 with 19 min left of the old credentials", refresh)
		}
		if failed.Err == nil || failed.Err.Code != "Throttling" || failed.RequestID != "err" {
			t.Errorf("failure: %+v", failed)
		}
		for _, a := range seen {
			if a.Took < 0 || a.Started.IsZero() {
				t.Errorf("attempt without timing: %+v", a)
			}
		}
		if h := f.keeper.Health(); h.LastRequestID != "err" || h.LastErrorRequestID != "err" {
			t.Errorf("health request ids %q / %q", h.LastRequestID, h.LastErrorRequestID)
		}
		if logs := f.logs.String(); !strings.Contains(logs, `"requestId":"req-2"`) || !strings.Contains(logs, `"requestId":"err"`) {
			t.Errorf("logs lack the request ids: %s", logs)
		}
	})
}
