package creds

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// RateLimitError is Refresh's answer when the previous forced refresh of
// the role was less than ForceInterval ago.
type RateLimitError struct {
	Role       string
	Interval   time.Duration // ForceInterval
	RetryAfter time.Duration
}

// DefaultForceInterval is Options.ForceInterval's default.
const DefaultForceInterval = 10 * time.Second

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("role %q was refreshed on request less than its interval ago; retry in %s", e.Role, e.RetryAfter.Round(time.Second))
}

// Refresh replaces the credentials now, whether or not they are due: for
// use after IAM revoked the role's active sessions or its policy changed.
// A refresh already in flight is joined rather than doubled. Starting a
// new one is allowed once per ForceInterval (a *RateLimitError beyond
// that), and it ignores a backoff in force: the user says the cause is
// fixed. The answer is the new credentials.
func (k *Keeper) Refresh(ctx context.Context) (aws.Credentials, error) {
	k.activeOnce.Do(k.activate)
	now := k.opts.Now()
	f, err := k.startForced(now)
	if err != nil {
		return aws.Credentials{}, err
	}
	k.waited.Add(1)
	return k.outcome(ctx, f)
}

func (k *Keeper) startForced(now time.Time) (*flight, error) {
	k.mu.Lock()
	if k.flight == nil {
		if next := k.lastForced.Add(k.opts.ForceInterval); !k.lastForced.IsZero() && now.Before(next) {
			k.mu.Unlock()
			return nil, &RateLimitError{Role: k.opts.Name, Interval: k.opts.ForceInterval, RetryAfter: next.Sub(now)}
		}
		k.lastForced = now
	}
	k.mu.Unlock()
	f, err := k.start(now, true)
	if f == nil && err == nil {
		err = k.newError("RefreshNotStarted", "no refresh could be started", true, nil)
	}
	return f, err
}
