package creds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// CredentialsSource is the aws.Credentials.Source of everything the keeper
// hands out.
const CredentialsSource = "CredentialRefreshExtension"

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
	// RefreshTimeout bounds one refresh, retries included. Default 30s.
	RefreshTimeout time.Duration
	// Lifetime is the lifetime asked of the source, which scales the backoff
	// before the first credentials arrive. Default: the AssumeRole input's
	// DurationSeconds, else 1 h.
	Lifetime time.Duration
	// Window overrides the lifetime-scaled window (tests). Default WindowFor.
	Window func(lifetime time.Duration) Window
	// RefreshInBackground (eager mode) makes a request inside the refresh
	// window never wait: it gets the cached credentials and the refresh runs
	// behind it. Otherwise (deferred mode) that request waits up to
	// StaleWait for the refresh, so it leaves with fresh credentials, and
	// falls back to the cached, still-valid ones if the source fails or is
	// slow.
	RefreshInBackground bool
	// StaleWait bounds that wait. Default 500ms: a healthy STS answers well
	// within it, and SDK clients time out their own request after 1-2s.
	StaleWait time.Duration
	// ForceInterval is the least time between two forced refreshes
	// (Refresh), so a retry loop cannot storm STS. Default 10s.
	ForceInterval time.Duration
	// Identify returns the identity of a credential set (STS
	// GetCallerIdentity with it). Nil: Identity reports ErrNoIdentity.
	Identify func(ctx context.Context, c aws.Credentials) (Identity, error)
}

// Keeper keeps one role's credentials fresh from a Source. It is safe for
// concurrent use.
//
// How it works, in three sentences. The credentials being served sit in an
// atomic pointer that the read path loads without a lock. At most one
// refresh is in flight: starting or joining it, and the backoff state,
// are guarded by mu, and the refresh runs in its own goroutine on the
// keeper's context, publishing its outcome (a new entry, or a failure that
// sets the backoff) before it closes its done channel. Callers that need
// the outcome wait on that channel or on their own context, whichever ends
// first.
type Keeper struct {
	source Source
	opts   Options
	base   context.Context
	cancel context.CancelFunc

	cur atomic.Pointer[entry]

	mu         sync.Mutex
	flight     *flight // the refresh in progress, or nil
	fail       failure
	lastForced time.Time

	calls, failures, served, waited atomic.Int64
}

// entry is one credential set and when to act on it.
type entry struct {
	creds     aws.Credentials
	issued    time.Time
	refreshAt time.Time // start refreshing from here
	floorAt   time.Time // never serve from here on
	identity  identityCache
}

// flight is one refresh. entry or err is set before done is closed.
type flight struct {
	done    chan struct{}
	started time.Time
	entry   *entry
	err     *Error
}

type failure struct {
	count       int
	last        *Error
	nextAttempt time.Time
	lastRefresh time.Time
}

// NewKeeper returns a keeper of the credentials source fetches. Close it to
// abort a refresh in flight.
func NewKeeper(source Source, optFns ...func(*Options)) *Keeper {
	o := Options{Name: "default", Now: time.Now, Rand: rand.Float64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RefreshTimeout: 30 * time.Second, Window: WindowFor,
		StaleWait: 500 * time.Millisecond, ForceInterval: DefaultForceInterval}
	if s, ok := source.(interface{ lifetime() time.Duration }); ok {
		o.Lifetime = s.lifetime()
	}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.Lifetime <= 0 {
		o.Lifetime = time.Hour
	}
	// Decisions use the wall clock only: a monotonic reading (which may not
	// advance while Lambda freezes the sandbox) must not stretch a backoff.
	clock := o.Now
	o.Now = func() time.Time { return clock().Round(0) }
	k := &Keeper{source: source, opts: o}
	k.base, k.cancel = context.WithCancel(context.Background())
	return k
}

// Close aborts any refresh in flight. Credentials already fetched stay
// readable until they reach the floor.
func (k *Keeper) Close() { k.cancel() }

// Name is the role's configured name.
func (k *Keeper) Name() string { return k.opts.Name }

// Describe says where the credentials come from.
func (k *Keeper) Describe() string { return k.source.Describe() }

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
		return k.waitFor(ctx, now)
	case now.Before(e.refreshAt):
	case k.opts.RefreshInBackground:
		_, _ = k.start(now, false)
	default:
		return k.refreshBriefly(ctx, e, now)
	}
	k.served.Add(1)
	return e.creds, nil
}

// refreshBriefly is deferred mode inside the refresh window: wait a little
// for the refresh, so the caller leaves with fresh credentials; if the
// source fails or is slow, serve e, unless the wait took it to the floor.
func (k *Keeper) refreshBriefly(ctx context.Context, e *entry, now time.Time) (aws.Credentials, error) {
	f, err := k.start(now, false)
	if err != nil || f == nil || now.Sub(f.started) >= k.opts.StaleWait {
		// In backoff, refreshed meanwhile, or a flight already known to be
		// slow: do not make every request in the window pay the wait.
		return k.serve(ctx, e, now)
	}
	wctx, cancel := context.WithTimeout(ctx, min(k.opts.StaleWait, e.floorAt.Sub(now)))
	defer cancel()
	k.waited.Add(1)
	if c, err := k.outcome(wctx, f); err == nil {
		return c, nil
	}
	// The refresh's own failure is logged. Check the clock again: time
	// passed (or the sandbox froze) while we waited.
	return k.serve(ctx, e, k.opts.Now())
}

// serve hands out e if it is still above the floor, or the newest entry
// if one arrived, else waits for a refresh.
func (k *Keeper) serve(ctx context.Context, e *entry, now time.Time) (aws.Credentials, error) {
	if n := k.cur.Load(); n != nil && n != e && now.Before(n.floorAt) {
		e = n
	}
	if !now.Before(e.floorAt) {
		return k.waitFor(ctx, now)
	}
	k.served.Add(1)
	return e.creds, nil
}

// waitFor is the path with nothing servable: join or start the refresh and
// wait for it; in backoff, the last error at once.
func (k *Keeper) waitFor(ctx context.Context, now time.Time) (aws.Credentials, error) {
	f, err := k.start(now, false)
	if err != nil {
		return aws.Credentials{}, err
	}
	if f == nil { // another caller's refresh just landed
		return k.Credentials(ctx)
	}
	k.waited.Add(1)
	return k.outcome(ctx, f)
}

// outcome waits for f and checks what it brought against the clock again:
// the flight may have started long before (or the sandbox froze).
func (k *Keeper) outcome(ctx context.Context, f *flight) (aws.Credentials, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return aws.Credentials{}, ctx.Err()
	}
	if f.err != nil {
		return aws.Credentials{}, f.err
	}
	if !k.opts.Now().Before(f.entry.floorAt) {
		return aws.Credentials{}, k.newError("CredentialsTooShortLived", "the source returned credentials that expire too soon to serve", true, nil)
	}
	k.served.Add(1)
	return f.entry.creds, nil
}

// start joins the refresh in flight or starts one. It returns a nil flight
// when none is needed (unless force: the current credentials are fresh),
// and the last error while a backoff is in force (unless force).
func (k *Keeper) start(now time.Time, force bool) (*flight, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.flight != nil {
		return k.flight, nil
	}
	if e := k.cur.Load(); !force && e != nil && now.Before(e.refreshAt) {
		return nil, nil
	}
	if err := k.gateLocked(now); err != nil && !force {
		return nil, err
	}
	f := &flight{done: make(chan struct{}), started: now}
	k.flight = f
	go k.run(f)
	return f, nil
}

// run makes one call to the source and publishes its outcome.
func (k *Keeper) run(f *flight) {
	ctx, cancel := context.WithTimeout(k.base, k.opts.RefreshTimeout)
	defer cancel()
	k.calls.Add(1)
	c, err := k.source.Retrieve(ctx)
	now := k.opts.Now()
	if err == nil {
		err = validCredentials(c, now)
	}
	var e *entry
	if err == nil {
		e = k.newEntry(c, now)
		k.logRefreshed(e, now.Sub(f.started))
	}
	k.mu.Lock()
	if e != nil {
		k.cur.Store(e)
		// The last error stays for /v1/health; the count clears the backoff.
		k.fail.count, k.fail.nextAttempt, k.fail.lastRefresh = 0, time.Time{}, now
		f.entry = e
	} else {
		f.err = k.recordFailureLocked(err, now)
	}
	k.flight = nil
	k.mu.Unlock()
	if f.err != nil {
		k.logFailure(f.err, now)
	}
	close(f.done)
}

func validCredentials(c aws.Credentials, now time.Time) error {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("the source returned no access key id or secret key")
	}
	if c.CanExpire && !c.Expires.After(now) {
		return fmt.Errorf("the source returned credentials that expired at %s (is the clock right?)", c.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// Tick is the eager mode's hook for every INVOKE event: it starts a
// background refresh if one is due, and never blocks.
func (k *Keeper) Tick() {
	now := k.opts.Now()
	if e := k.cur.Load(); e == nil || !now.Before(e.refreshAt) {
		_, _ = k.start(now, false)
	}
}

// Prefetch fetches credentials now unless fresh ones are cached, waiting for
// the result. Eager mode calls it at start-up and on its timer.
func (k *Keeper) Prefetch(ctx context.Context) error {
	f, err := k.start(k.opts.Now(), false)
	if err != nil || f == nil {
		return err
	}
	select {
	case <-f.done:
		if f.err != nil {
			return f.err
		}
		return nil
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
	const minSleep = 100 * time.Millisecond // no busy loop if a source hands out short-lived credentials
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

// gateLocked returns the last error, with its Retry-After, while in backoff.
func (k *Keeper) gateLocked(now time.Time) error {
	if k.fail.count == 0 || !now.Before(k.fail.nextAttempt) {
		return nil
	}
	err := *k.fail.last
	err.RetryAfter = k.fail.nextAttempt.Sub(now)
	return &err
}

func (k *Keeper) newEntry(c aws.Credentials, now time.Time) *entry {
	// Served as RFC 3339 in whole seconds: cut it here, so the windows (the
	// floor above all) apply to the expiry clients are told, not to a
	// fraction of a second later.
	expires := c.Expires.UTC().Truncate(time.Second)
	if !c.CanExpire {
		// Long-term keys (a credential process may return them): treated as
		// living ProcessDefaultLifetime, so they are fetched again then.
		expires = now.Add(ProcessDefaultLifetime).UTC().Truncate(time.Second)
	}
	w := k.opts.Window(expires.Sub(now))
	jitter := time.Duration(float64(w.Jitter) * k.opts.Rand())
	c.CanExpire, c.Expires, c.Source = true, expires, CredentialsSource
	return &entry{creds: c, issued: now, refreshAt: expires.Add(-w.Refresh - jitter), floorAt: expires.Add(-w.Floor)}
}

func (k *Keeper) logRefreshed(e *entry, took time.Duration) {
	k.opts.Logger.Info("credentials refreshed", "role", k.opts.Name, "source", k.source.Describe(),
		"accessKeyId", e.creds.AccessKeyID, "expiration", e.creds.Expires.UTC().Format(time.RFC3339),
		"refreshAt", e.refreshAt.UTC().Format(time.RFC3339Nano), "took", took.String())
}

// recordFailureLocked classifies err and sets the backoff. Still-valid
// credentials stay in place: the read path keeps serving them.
func (k *Keeper) recordFailureLocked(err error, now time.Time) *Error {
	k.failures.Add(1)
	e := k.classify(err)
	lifetime := k.opts.Lifetime
	if cur := k.cur.Load(); cur != nil {
		lifetime = cur.creds.Expires.Sub(cur.issued)
	}
	k.fail.count++
	n := k.fail.count
	if !e.Retryable {
		n = 1 << 10 // irrecoverable: back off the most, do not hammer STS
	}
	k.fail.last = e
	k.fail.nextAttempt = now.Add(k.opts.Window(lifetime).backoff(n, k.opts.Rand()))
	return e
}

func (k *Keeper) logFailure(e *Error, now time.Time) {
	attrs := []any{"role", k.opts.Name, "source", k.source.Describe(), "code", e.Code, "error", e.Message, "retryable", e.Retryable}
	if cur := k.cur.Load(); cur != nil && now.Before(cur.floorAt) {
		k.opts.Logger.Warn("refresh failed; serving the still-valid credentials", append(attrs,
			"expiresIn", cur.creds.Expires.Sub(now).Round(time.Millisecond).String())...)
	} else {
		k.opts.Logger.Error("refresh failed; no valid credentials to serve", attrs...)
	}
}

// classify turns a source's error into an *Error for this role.
func (k *Keeper) classify(err error) *Error {
	e := classify(k.opts.Name, err)
	e.Origin = k.source.Describe()
	if s, ok := k.source.(*AssumeRoleSource); ok {
		e.RoleArn = aws.ToString(s.Input.RoleArn)
	}
	return e
}

func (k *Keeper) newError(code, msg string, retryable bool, err error) *Error {
	e := &Error{Role: k.opts.Name, Origin: k.source.Describe(), Code: code, Message: msg, Retryable: retryable, Err: err}
	if s, ok := k.source.(*AssumeRoleSource); ok {
		e.RoleArn = aws.ToString(s.Input.RoleArn)
	}
	return e
}
