package creds

import "time"

// Window says, for credentials of a given lifetime, when to refresh them and
// when they become too close to expiry to serve.
//
// The SDKs refetch from us when *their* copy nears expiry (botocore 15/10 min,
// JS v3 and Go v2 5 min, Java v2 5–60 min), so with the default 1 h lifetime
// we refresh with 20–25 minutes left (35–40 minutes of age): what we hand out
// then always has more than botocore's 15 min advisory window left and clients
// do not come back early. Short lifetimes scale the same shape down.
type Window struct {
	// Refresh starts a refresh once at most this much lifetime is left
	// (before jitter).
	Refresh time.Duration
	// Jitter is the most that is added to Refresh, spread uniformly, so that a
	// fleet of environments does not refresh in step.
	Jitter time.Duration
	// Floor: credentials with this little lifetime left (or less) are never
	// served; a caller waits for fresh ones instead.
	Floor time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential backoff
	// between failed STS calls.
	BackoffBase, BackoffMax time.Duration
	// ThrottleBase is the backoff after STS answers Throttling: the
	// account's request quota is spent, by the whole fleet, and a retry
	// within the same seconds only takes the place of another
	// environment's request. See Backoff.
	ThrottleBase time.Duration
}

// ThrottleFlat is how many consecutive Throttling answers keep the backoff
// at ThrottleBase before it starts doubling.
const ThrottleFlat = 2

// WindowFor returns the window for credentials that live for lifetime.
func WindowFor(lifetime time.Duration) Window {
	base := clamp(lifetime/60, 100*time.Millisecond, time.Second)
	return Window{
		Refresh:      min(20*time.Minute, lifetime*35/100),
		Jitter:       min(5*time.Minute, lifetime/10),
		Floor:        min(5*time.Minute, lifetime*15/100),
		BackoffBase:  base,
		BackoffMax:   clamp(lifetime/10, time.Second, 30*time.Second),
		ThrottleBase: 8 * base,
	}
}

// Backoff is the delay before attempt n+1 after n consecutive failures,
// with r in [0,1) (uniform) as its jitter. The keeper calls it; so does the
// fleet simulation (extension/cmd/fleetsim), so docs/fleet.md measures
// this very code.
//
// Other failures: d = BackoffBase doubled per failure up to BackoffMax.
// Throttling: d = ThrottleBase for the first ThrottleFlat answers, then
// doubled per answer up to max(BackoffMax, ThrottleBase). Either way the
// delay is spread over [d/2, d) ("equal jitter"). Full jitter, [0, d),
// sends a share of the retries back at once, into the very burst that was
// throttled, where each displaces a first attempt of another environment:
// docs/fleet.md has the measurements.
func (w Window) Backoff(failures int, throttled bool, r float64) time.Duration {
	d, top, doublings := w.BackoffBase, w.BackoffMax, failures-1
	if throttled {
		d, top, doublings = w.ThrottleBase, max(w.BackoffMax, w.ThrottleBase), failures-ThrottleFlat
	}
	for i := 0; i < doublings && d < top; i++ {
		d *= 2
	}
	d = min(d, top)
	return d/2 + time.Duration(float64(d/2)*r)
}

func clamp(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }
