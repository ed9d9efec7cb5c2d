package agent_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// roleHealth reads the default role's entry of GET /v1/health.
func (h *harness) roleHealth(t *testing.T) map[string]any {
	t.Helper()
	_, body := h.get(t, "/v1/health")
	return body["roles"].(map[string]any)["default"].(map[string]any)
}

// TestManagedInstances: on Lambda Managed Instances the extension registers
// for SHUTDOWN alone (the API refuses INVOKE there), eager mode prefetches
// at init, and a wall-clock timer, not INVOKE events, refreshes the
// credentials once they enter the refresh window, with no request waiting.
// SHUTDOWN ends it inside the deadline.
func TestManagedInstances(t *testing.T) {
	for _, mode := range []config.Mode{config.ModeEager, config.ModeDeferred} {
		t.Run(string(mode), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, mode)
				h.cfg.InitializationType = config.InitManagedInstances
				h.api.AllowEvents("SHUTDOWN")
				h.start(t, nil, func(o *agent.Options) { o.TimerMaxSleep = 10 * time.Millisecond })
				h.waitNext(t, 1)
				if events, calls := h.api.Events(); strings.Join(events, ",") != "SHUTDOWN" || calls != 1 {
					t.Fatalf("registered for %v in %d calls; want SHUTDOWN in one", events, calls)
				}
				if mode == config.ModeDeferred {
					h.clock.Advance(2 * time.Hour)
					time.Sleep(50 * time.Millisecond) // virtual: five timer periods, if a timer ran
					synctest.Wait()
					if h.sts.Calls() != 0 {
						t.Fatal("deferred mode called STS before the first request")
					}
				} else {
					if h.sts.Calls() != 1 {
						t.Fatalf("STS calls after init = %d, want the prefetch", h.sts.Calls())
					}
					// Into the refresh window (40-45 min of age for 1 h): the
					// timer refreshes without a request or an INVOKE.
					h.clock.Advance(46 * time.Minute)
					time.Sleep(20 * time.Millisecond) // virtual: two timer periods
					synctest.Wait()
					if n, state := h.sts.Calls(), h.roleHealth(t)["state"]; n != 2 || state != "fresh" {
						t.Fatalf("after the refresh point: %d STS calls, state %v; want the timer's refresh", n, state)
					}
					if r := h.roleHealth(t); r["waited"].(float64) != 0 {
						t.Errorf("a request waited on STS: %v", r)
					}
				}
				start := time.Now()
				h.api.Shutdown(time.Now().Add(2 * time.Second))
				if err := h.wait(t); err != nil {
					t.Fatalf("Run: %v", err)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("shutdown took %s", took)
				}
				if len(h.api.Reports()) != 0 {
					t.Errorf("error reports: %+v", h.api.Reports())
				}
			})
		})
	}
}

// TestInvokeRefusedElsewhere: a platform that is not marked as Lambda
// Managed Instances but refuses INVOKE must not lose the function: the
// extension registers again for SHUTDOWN alone, says so, and (eager) keeps
// the credentials fresh on its timer.
func TestInvokeRefusedElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeEager)
		h.api.AllowEvents("SHUTDOWN")
		h.start(t, nil, func(o *agent.Options) { o.TimerMaxSleep = 10 * time.Millisecond })
		h.waitNext(t, 1)
		if events, calls := h.api.Events(); strings.Join(events, ",") != "SHUTDOWN" || calls != 2 {
			t.Fatalf("registered for %v in %d calls; want INVOKE refused, then SHUTDOWN", events, calls)
		}
		if !strings.Contains(h.logs.String(), "refused INVOKE events") {
			t.Error("no warning about the refused INVOKE registration")
		}
		if code, _ := h.get(t, "/v1/credentials"); code != 200 {
			t.Fatalf("GET /v1/credentials: %d", code)
		}
		h.clock.Advance(46 * time.Minute)
		time.Sleep(20 * time.Millisecond) // virtual: two timer periods
		synctest.Wait()
		if n := h.sts.Calls(); n != 2 {
			t.Fatalf("%d STS calls, want the timer's refresh", n)
		}
		h.api.Shutdown(time.Now().Add(2 * time.Second))
		if err := h.wait(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if len(h.api.Reports()) != 0 {
			t.Errorf("error reports: %+v", h.api.Reports())
		}
	})
}

// TestConfigErrorOnManagedInstances: the init error still reaches Lambda,
// through a registration the platform accepts (SHUTDOWN alone).
func TestConfigErrorOnManagedInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeEager)
		h.cfg.InitializationType = config.InitManagedInstances
		h.api.AllowEvents("SHUTDOWN")
		_, cfgErr := config.Load(func(k string) string {
			return map[string]string{config.EnvRoleArn: "not-an-arn", "AWS_REGION": "us-east-1"}[k]
		})
		h.start(t, cfgErr)
		if err := h.wait(t); err == nil {
			t.Fatal("Run succeeded with a bad config")
		}
		reps := h.api.Reports()
		if len(reps) != 1 || reps[0].ErrorType != agent.ErrConfigInvalid || !strings.Contains(reps[0].Message, config.EnvRoleArn) {
			t.Fatalf("reports %+v", reps)
		}
	})
}

// TestBaseCredentialsExpired: when the execution role's own credentials
// (what the extension signs AssumeRole with) have expired, as could happen
// in a long-lived environment, STS answers ExpiredToken. The 503, the log
// and /v1/health say whose credentials expired and what to do.
func TestBaseCredentialsExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		h.cfg.InitializationType = config.InitManagedInstances
		h.api.AllowEvents("SHUTDOWN")
		h.sts.Fail(&ststest.Failure{Status: 400, Code: "ExpiredToken", Message: "The security token included in the request is expired"})
		h.start(t, nil)
		h.waitNext(t, 1)
		code, body := h.get(t, "/v1/credentials")
		msg, _ := body["Message"].(string)
		if code != 503 || !strings.Contains(msg, "ExpiredToken") || !strings.Contains(msg, creds.BaseCredentialsExpiredHint) {
			t.Errorf("GET /v1/credentials: %d %v; want 503 naming ExpiredToken with the explanation", code, body)
		}
		r := h.roleHealth(t)
		if r["lastErrorCode"] != "ExpiredToken" || !strings.Contains(r["lastErrorMessage"].(string), "publish a new function version") {
			t.Errorf("health: %v", r)
		}
		if !strings.Contains(h.logs.String(), "an extension cannot renew them") {
			t.Error("the log does not explain the expired base credentials")
		}
	})
}
