package creds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/sync/singleflight"
)

// AssumeRoleAPIClient is the part of *sts.Client the keeper uses.
type AssumeRoleAPIClient interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Source is the aws.Credentials.Source of everything the keeper hands out.
const Source = "CredentialRefreshExtension"

// Options tune a Keeper. The zero value of each field means its default.
type Options struct {
	// Name is the role's name in the configuration, for logs and errors.
	// Default "default".
	Name string
	// Now is the clock. Default time.Now. Every decision reads it afresh,
	// because Lambda freezes the sandbox and timers do not run while frozen.
	Now func() time.Time
	// Rand returns a float in [0,1) for jitter. Default math/rand/v2.Float64.
	Rand func() float64
	// Logger. Default discards.
	Logger *slog.Logger
	// RefreshTimeout bounds one refresh, SDK retries included. Default 30s.
	RefreshTimeout time.Duration
	// Window overrides the lifetime-scaled window (tests). Default WindowFor.
	Window func(lifetime time.Duration) Window
	// RefreshInBackground (eager mode) makes a request inside the refresh
	// window never wait: it gets the cached credentials and the refresh runs
	// behind it. Otherwise (deferred mode) that request waits up to
	// StaleWait for the refresh, so it leaves with fresh credentials, and
	// falls back to the cached, still-valid ones if STS fails or is slow.
	RefreshInBackground bool
	// StaleWait bounds that wait. Default 500ms: a healthy STS answers well
	// within it, and SDK clients time out their own request after 1-2s.
	StaleWait time.Duration
}

// Keeper keeps one role's credentials fresh. It is safe for concurrent use;
// the read path is one atomic load and a clock read.
type Keeper struct {
	client AssumeRoleAPIClient
	input  sts.AssumeRoleInput
	opts   Options
	// configured is the lifetime asked of STS, used for the backoff scale
	// before the first credentials arrive.
	configured time.Duration

	cur    atomic.Pointer[entry]
	flight singleflight.Group
	base   context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // guards fail
	fail failure

	// refreshing is true from the moment a refresh is started until it ends,
	// so a burst of requests starts one flight and Health can report it.
	refreshing atomic.Bool
	// flightStart is when the refresh in flight called STS (Unix ns).
	flightStart atomic.Int64

	stsCalls, stsFailures, served, waited atomic.Int64
}

type entry struct {
	creds     aws.Credentials
	issued    time.Time
	refreshAt time.Time // start refreshing from here
	floorAt   time.Time // never serve from here on
}

type failure struct {
	count       int
	last        *Error
	nextAttempt time.Time
	lastRefresh time.Time
}

// NewKeeper returns a keeper that assumes the role described by input with
// client. Close it to abort in-flight STS calls.
func NewKeeper(client AssumeRoleAPIClient, input *sts.AssumeRoleInput, optFns ...func(*Options)) *Keeper {
	o := Options{Name: "default", Now: time.Now, Rand: rand.Float64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RefreshTimeout: 30 * time.Second, Window: WindowFor,
		StaleWait: 500 * time.Millisecond}
	for _, fn := range optFns {
		fn(&o)
	}
	// Decisions use the wall clock only: a monotonic reading (which may not
	// advance while Lambda freezes the sandbox) must not stretch a backoff.
	clock := o.Now
	o.Now = func() time.Time { return clock().Round(0) }
	k := &Keeper{client: client, input: *input, opts: o,
		configured: time.Duration(aws.ToInt32(input.DurationSeconds)) * time.Second}
	if k.configured <= 0 {
		k.configured = time.Hour
	}
	k.base, k.cancel = context.WithCancel(context.Background())
	return k
}

// Close aborts any STS call in flight. Credentials already fetched stay
// readable until they reach the floor.
func (k *Keeper) Close() { k.cancel() }

// Name is the role's configured name.
func (k *Keeper) Name() string { return k.opts.Name }

// Credentials returns credentials with more than the floor left. It serves
// from cache when it can. Inside the refresh window it starts the (single)
// refresh, and waits a little for it unless RefreshInBackground is set.
// Without servable credentials it waits for the refresh; in backoff after a
// failure it answers at once with the last *Error.
func (k *Keeper) Credentials(ctx context.Context) (aws.Credentials, error) {
	now := k.opts.Now()
	e := k.cur.Load()
	switch {
	case e == nil || !now.Before(e.floorAt):
		return k.wait(ctx, now)
	case now.Before(e.refreshAt):
	case k.opts.RefreshInBackground:
		k.refreshInBackground(now)
	case k.gate(now) != nil: // deferred, in backoff: serve the still-valid ones
	default:
		return k.refreshBriefly(ctx, e, now)
	}
	k.served.Add(1)
	return e.creds, nil
}

// refreshBriefly is deferred mode inside the refresh window: wait a little
// for the refresh, so the caller leaves with fresh credentials; if STS fails
// or is slow, serve e, unless the wait took it to the floor.
func (k *Keeper) refreshBriefly(ctx context.Context, e *entry, now time.Time) (aws.Credentials, error) {
	if k.refreshing.Load() && now.Sub(time.Unix(0, k.flightStart.Load())) >= k.opts.StaleWait {
		// STS is already slow for this flight: do not make every request in
		// the window pay the wait again.
		k.served.Add(1)
		return e.creds, nil
	}
	wctx, cancel := context.WithTimeout(ctx, min(k.opts.StaleWait, e.floorAt.Sub(now)))
	defer cancel()
	if c, err := k.wait(wctx, now); err == nil {
		return c, nil
	}
	// The refresh's own failure is logged. Check the clock again: time
	// passed (or the sandbox froze) while we waited.
	if now = k.opts.Now(); !now.Before(e.floorAt) {
		return k.wait(ctx, now)
	}
	k.served.Add(1)
	return e.creds, nil
}

// Tick is the eager mode's hook for every INVOKE event: it starts a
// background refresh if one is due, and never blocks.
func (k *Keeper) Tick() {
	now := k.opts.Now()
	if e := k.cur.Load(); e == nil || !now.Before(e.refreshAt) {
		k.refreshInBackground(now)
	}
}

// Prefetch fetches credentials now unless valid ones are cached, waiting for
// the result. Eager mode calls it at start-up.
func (k *Keeper) Prefetch(ctx context.Context) error {
	now := k.opts.Now()
	if e := k.cur.Load(); e != nil && now.Before(e.refreshAt) {
		return nil
	}
	select {
	case r := <-k.flight.DoChan("refresh", k.refresh):
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// KeepFresh refreshes on the wall clock until ctx ends. Eager mode uses it
// where no INVOKE event comes to drive refreshes (Lambda Managed Instances,
// whose environments are never frozen). It sleeps until the refresh point,
// which carries the entry's jitter, or until a backoff ends, then refreshes
// through the single flight and waits for the outcome. It never sleeps
// longer than maxSleep, so a jump of the wall clock (a freeze, a restore
// from a snapshot) is noticed; requests check the clock themselves anyway.
func (k *Keeper) KeepFresh(ctx context.Context, maxSleep time.Duration) {
	const minSleep = 100 * time.Millisecond // no busy loop if STS hands out short-lived credentials
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := k.opts.Now()
		if due := k.due(now); !due.After(now) {
			_ = k.Prefetch(ctx) // a failure is logged and sets the backoff that due reads
			now = k.opts.Now()
		}
		t.Reset(min(max(k.due(now).Sub(now), minSleep), maxSleep))
	}
}

// due is when the next refresh should start: the refresh point of the
// current credentials (now if there are none, or none servable), pushed back
// to the end of a backoff in force.
func (k *Keeper) due(now time.Time) time.Time {
	at := now
	if e := k.cur.Load(); e != nil && now.Before(e.refreshAt) {
		at = e.refreshAt
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail.count > 0 && k.fail.nextAttempt.After(at) {
		at = k.fail.nextAttempt
	}
	return at
}

func (k *Keeper) wait(ctx context.Context, now time.Time) (aws.Credentials, error) {
	if err := k.gate(now); err != nil {
		return aws.Credentials{}, err
	}
	k.waited.Add(1)
	select {
	case r := <-k.flight.DoChan("refresh", k.refresh):
		if r.Err != nil {
			return aws.Credentials{}, r.Err
		}
		e := r.Val.(*entry)
		// The flight may have started long before this caller arrived (or
		// the sandbox was frozen meanwhile): check against the clock again.
		if !k.opts.Now().Before(e.floorAt) {
			return aws.Credentials{}, &Error{Role: k.opts.Name, RoleArn: aws.ToString(k.input.RoleArn),
				Code: "CredentialsTooShortLived", Message: "STS returned credentials that expire too soon to serve", Retryable: true}
		}
		k.served.Add(1)
		return e.creds, nil
	case <-ctx.Done():
		return aws.Credentials{}, ctx.Err()
	}
}

// gate returns the last error, with its Retry-After, while in backoff.
func (k *Keeper) gate(now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail.count == 0 || !now.Before(k.fail.nextAttempt) {
		return nil
	}
	err := *k.fail.last
	err.RetryAfter = k.fail.nextAttempt.Sub(now)
	return &err
}

func (k *Keeper) refreshInBackground(now time.Time) {
	if k.gate(now) != nil || !k.refreshing.CompareAndSwap(false, true) {
		return // in backoff (the next request after it tries again), or already refreshing
	}
	// DoChan runs the refresh in its own goroutine, or joins a flight in
	// progress (one started by a waiting caller, or one just finishing, in
	// which case refresh never runs for us): either way the flag is cleared
	// when the result is in, so a later window is never skipped.
	ch := k.flight.DoChan("refresh", k.refresh)
	go func() {
		<-ch
		k.refreshing.Store(false)
	}()
}

// refresh makes one STS call. It runs inside the single flight.
func (k *Keeper) refresh() (any, error) {
	k.refreshing.Store(true)
	defer k.refreshing.Store(false)
	start := k.opts.Now()
	if e := k.cur.Load(); e != nil && start.Before(e.refreshAt) {
		return e, nil // a flight that just finished already did the work
	}
	if err := k.gate(start); err != nil {
		return nil, err // a flight that just finished failed: honour its backoff
	}
	ctx, cancel := context.WithTimeout(k.base, k.opts.RefreshTimeout)
	defer cancel()
	in := k.input // a copy: the SDK must not share our input across calls
	k.flightStart.Store(start.UnixNano())
	k.stsCalls.Add(1)
	out, err := k.client.AssumeRole(ctx, &in)
	now := k.opts.Now()
	if err == nil {
		err = validOutput(out, now)
	}
	if err != nil {
		return nil, k.recordFailure(err, now)
	}
	e := k.newEntry(out, now)
	k.cur.Store(e)
	k.recordSuccess(now)
	k.opts.Logger.Info("credentials refreshed", "role", k.opts.Name, "roleArn", aws.ToString(k.input.RoleArn),
		"accessKeyId", e.creds.AccessKeyID, "expiration", e.creds.Expires.UTC().Format(time.RFC3339),
		"refreshAt", e.refreshAt.UTC().Format(time.RFC3339Nano), "took", now.Sub(start).String())
	return e, nil
}

func validOutput(out *sts.AssumeRoleOutput, now time.Time) error {
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
		return fmt.Errorf("STS response lacks credentials")
	}
	if !c.Expiration.After(now) {
		return fmt.Errorf("STS returned credentials that expired at %s (is the clock right?)", c.Expiration.UTC().Format(time.RFC3339))
	}
	return nil
}

func (k *Keeper) newEntry(out *sts.AssumeRoleOutput, now time.Time) *entry {
	c := out.Credentials
	// Served as RFC 3339 in whole seconds: cut it here, so the windows (the
	// floor above all) apply to the expiry clients are told, not to a
	// fraction of a second later.
	expires := c.Expiration.UTC().Truncate(time.Second)
	w := k.opts.Window(expires.Sub(now))
	jitter := time.Duration(float64(w.Jitter) * k.opts.Rand())
	return &entry{
		creds: aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey,
			SessionToken: *c.SessionToken, CanExpire: true, Expires: expires, Source: Source,
			AccountID: accountOf(out)},
		issued:    now,
		refreshAt: expires.Add(-w.Refresh - jitter),
		floorAt:   expires.Add(-w.Floor),
	}
}

// accountOf reads the account from arn:aws:sts::123456789012:assumed-role/...
func accountOf(out *sts.AssumeRoleOutput) string {
	if out.AssumedRoleUser == nil {
		return ""
	}
	parts := strings.SplitN(aws.ToString(out.AssumedRoleUser.Arn), ":", 6)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

func (k *Keeper) recordSuccess(now time.Time) {
	k.mu.Lock()
	// The last error stays for /v1/health; the count clears the backoff.
	k.fail.count, k.fail.nextAttempt, k.fail.lastRefresh = 0, time.Time{}, now
	k.mu.Unlock()
}

// recordFailure classifies err, sets the backoff and logs. Still-valid
// credentials stay in place: the read path keeps serving them.
func (k *Keeper) recordFailure(err error, now time.Time) *Error {
	k.stsFailures.Add(1)
	e := classify(k.opts.Name, aws.ToString(k.input.RoleArn), err)
	lifetime := k.configured
	cur := k.cur.Load()
	if cur != nil {
		lifetime = cur.creds.Expires.Sub(cur.issued)
	}
	w := k.opts.Window(lifetime)
	k.mu.Lock()
	k.fail.count++
	n := k.fail.count
	if !e.Retryable {
		n = 1 << 10 // irrecoverable: back off the most, do not hammer STS
	}
	k.fail.last = e
	k.fail.nextAttempt = now.Add(w.backoff(n, k.opts.Rand()))
	k.mu.Unlock()
	attrs := []any{"role", k.opts.Name, "code", e.Code, "error", e.Message, "retryable", e.Retryable}
	if cur != nil && now.Before(cur.floorAt) {
		k.opts.Logger.Warn("refresh failed; serving the still-valid credentials", append(attrs,
			"expiresIn", cur.creds.Expires.Sub(now).Round(time.Millisecond).String())...)
	} else {
		k.opts.Logger.Error("refresh failed; no valid credentials to serve", attrs...)
	}
	return e
}
