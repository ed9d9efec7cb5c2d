package agent_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
)

// TestDeferredRefreshesInTheBackground: deferred mode makes no STS call
// before the first request, INVOKE or not; after it, later refreshes start
// at INVOKE events once the refresh point is reached (as in eager mode),
// with no request waiting: not when an SDK's fixed window makes a request
// arrive. Where no INVOKE comes (Lambda Managed Instances), the timer does
// it, started by the first request.
func TestDeferredRefreshesInTheBackground(t *testing.T) {
	for _, lmi := range []bool{false, true} {
		t.Run(map[bool]string{false: "INVOKE", true: "timer"}[lmi], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, config.ModeDeferred)
				if lmi {
					h.cfg.InitializationType = config.InitManagedInstances
					h.api.AllowEvents("SHUTDOWN")
				}
				h.start(t, nil, func(o *agent.Options) { o.TimerMaxSleep = 10 * time.Millisecond })
				h.waitNext(t, 1)
				invoke := func(id string, n int) {
					if !lmi {
						h.api.Invoke(id, time.Now().Add(3*time.Second))
						h.waitNext(t, n)
					}
				}
				invoke("r0", 2)
				time.Sleep(50 * time.Millisecond) // virtual: five timer periods, if a timer ran
				synctest.Wait()
				if h.sts.Calls() != 0 {
					t.Fatal("deferred mode called STS before the first request")
				}
				if code, _ := h.get(t, "/v1/credentials"); code != 200 {
					t.Fatalf("GET: %d", code)
				}
				h.clock.Advance(41 * time.Minute) // past the refresh point (35-40 min of age)
				invoke("r1", 3)
				time.Sleep(20 * time.Millisecond) // virtual: two timer periods
				synctest.Wait()
				if n, state := h.sts.Calls(), h.roleHealth(t)["state"]; n != 2 || state != "fresh" {
					t.Fatalf("after the refresh point: %d STS calls, state %v; want the background refresh", n, state)
				}
				if r := h.roleHealth(t); r["waited"].(float64) != 1 || r["served"].(float64) != 1 {
					t.Errorf("health %v; want only the first request to have waited, and no request since", r)
				}
				h.api.Shutdown(time.Now().Add(2 * time.Second))
				if err := h.wait(t); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
