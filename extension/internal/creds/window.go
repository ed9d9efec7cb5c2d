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
}

// WindowFor returns the window for credentials that live for lifetime.
func WindowFor(lifetime time.Duration) Window {
	return Window{
		Refresh:     min(20*time.Minute, lifetime*35/100),
		Jitter:      min(5*time.Minute, lifetime/10),
		Floor:       min(5*time.Minute, lifetime*15/100),
		BackoffBase: clamp(lifetime/60, 100*time.Millisecond, time.Second),
		BackoffMax:  clamp(lifetime/10, time.Second, 30*time.Second),
	}
}

// backoff is the delay before attempt n+1 after n consecutive failures,
// jittered into [d/2, d) with r in [0,1).
func (w Window) backoff(failures int, r float64) time.Duration {
	d := w.BackoffBase
	for i := 1; i < failures && d < w.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, w.BackoffMax)
	return d/2 + time.Duration(float64(d/2)*r)
}

func clamp(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }
