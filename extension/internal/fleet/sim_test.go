package fleet_test

import (
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/fleet"
)

// TestRun runs the fleet (10,000 environments within 10 s, 1 h
// credentials, 600/s) for 80 min: in both modes the cold start stays within
// 1.5 requests per environment and 20 s, and the first refresh wave within
// 10% of the quota; before issue 10, deferred mode's wave (at botocore's
// 45 min) went over the quota. (Scaled down, the per-second peaks would be
// ruled by small-number noise.)
func TestRun(t *testing.T) {
	base := fleet.Defaults
	base.Duration = 80 * time.Minute
	for _, tc := range []struct {
		name string
		fn   func(*fleet.Config)
		ok   bool
	}{
		{"deferred", func(c *fleet.Config) { c.Mode = "deferred" }, true},
		{"eager", func(c *fleet.Config) { c.Mode = "eager" }, true},
		{"deferred on managed instances", func(c *fleet.Config) { c.Mode, c.Platform = "deferred", "lmi" }, true},
		{"deferred before", func(c *fleet.Config) { c.Mode, c.LegacyDeferred, c.LegacyBackoff = "deferred", true, true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base
			tc.fn(&c)
			r, err := fleet.Run(c)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.2f requests per environment, all served after %s, later peak %d/s (%.1f%%) at %s",
				r.RequestsPerEnv(), r.AllServed, r.LaterPeak, 100*r.PeakShare(), r.LaterPeakAt)
			good := r.RequestsPerEnv() <= 1.5 && r.Unserved == 0 && r.AllServed <= 20*time.Second && r.PeakShare() < 0.10
			if good != tc.ok {
				t.Errorf("targets met: %v, want %v", good, tc.ok)
			}
			if !tc.ok && r.LaterPeakAt < 45*time.Minute {
				t.Errorf("the old deferred mode's wave at %s, want botocore's 45 min", r.LaterPeakAt)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []fleet.Config{{Mode: "lazy"}, {Platform: "snap"}, {N: -1}} {
		if _, err := fleet.Run(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
