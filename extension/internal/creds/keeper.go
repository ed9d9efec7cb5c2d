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
	// RequestWait is the longest Credentials holds a caller that has
	// nothing servable while a refresh runs. Then the caller gets a
	// retryable *Error (RefreshInProgress, RetryAfter 1 s) and the refresh
	// goes on, for the client's retry. Default 800ms: under the shortest
	// client timeout (JS v3 gives up after 1 s, botocore after 2 s), so
	// the client gets an answer it can act on rather than a timeout.
	// Retrieve (a chain link's signer) waits for the refresh's end.
	RequestWait time.Duration
	// Observe, if set, is told of every call to the source once its
	// outcome is published (metrics). It runs on the refresh's goroutine
	// and must not block.
	Observe func(Attempt)
}

// Attempt is one call to the source, as Options.Observe sees it.
type Attempt struct {
	Role    string
	Started time.Time
	// Took is the source's latency (STS's, for AssumeRole).
	Took time.Duration
	// Err is nil on success.
	Err *Error
	// RequestID is STS's request id, on success or failure, when known.
	RequestID string
	// Lifetime is the new credentials' (success only).
	Lifetime time.Duration
	// LeftAtStart is what the credentials being replaced still had to
	// live when the refresh started; 0 for a first fetch.
	LeftAtStart time.Duration
	Forced      bool
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
	lastReqID  string // STS's request id of the last call, for /v1/health

	// active is closed at the first demand for credentials: a request,
	// Prefetch or Refresh. Before it Tick does nothing, so deferred mode
	// makes no STS call until a request asks.
	active     chan struct{}
	activeOnce sync.Once

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
	forced  bool
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
		StaleWait: 500 * time.Millisecond, ForceInterval: DefaultForceInterval, RequestWait: DefaultRequestWait}
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
	k := &Keeper{source: source, opts: o, active: make(chan struct{})}
	k.base, k.cancel = context.WithCancel(context.Background())
	return k
}

// DefaultRequestWait is Options.RequestWait's default.
const DefaultRequestWait = 800 * time.Millisecond

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
// Without servable credentials it waits for the refresh, at most
// RequestWait (then a RefreshInProgress *Error, and the refresh goes on);
// in backoff after a failure it answers at once with the last *Error.
func (k *Keeper) Credentials(ctx context.Context) (aws.Credentials, error) {
	return k.credentials(ctx, k.opts.RequestWait)
}

// credentials is Credentials with wait as the bound on a wait for a
// refresh when nothing is servable (0: none).
func (k *Keeper) credentials(ctx context.Context, wait time.Duration) (aws.Credentials, error) {
	k.activeOnce.Do(k.activate)
	now := k.opts.Now()
	e := k.cur.Load()
	switch {
	case e == nil || !now.Before(e.floorAt):
		return k.waitFor(ctx, now, wait)
	case now.Before(e.refreshAt):
	case k.opts.RefreshInBackground:
		_, _ = k.start(now, false)
	default:
		return k.refreshBriefly(ctx, e, now, wait)
	}
	k.served.Add(1)
	return e.creds, nil
}

func (k *Keeper) activate() { close(k.active) }

// Active is closed once anything asked for credentials: a request,
// Prefetch or Refresh. Deferred mode starts its refresh timer then.
func (k *Keeper) Active() <-chan struct{} { return k.active }

// refreshBriefly is deferred mode inside the refresh window: wait a little
// for the refresh, so the caller leaves with fresh credentials; if the
// source fails or is slow, serve e, unless the wait took it to the floor.
func (k *Keeper) refreshBriefly(ctx context.Context, e *entry, now time.Time, wait time.Duration) (aws.Credentials, error) {
	f, err := k.start(now, false)
	if err != nil || f == nil || now.Sub(f.started) >= k.opts.StaleWait {
		// In backoff, refreshed meanwhile, or a flight already known to be
		// slow: do not make every request in the window pay the wait.
		return k.serve(ctx, e, now, wait)
	}
	wctx, cancel := context.WithTimeout(ctx, min(k.opts.StaleWait, e.floorAt.Sub(now)))
	defer cancel()
	k.waited.Add(1)
	if c, err := k.outcome(wctx, f); err == nil {
		return c, nil
	}
	// The refresh's own failure is logged. Check the clock again: time
	// passed (or the sandbox froze) while we waited.
	return k.serve(ctx, e, k.opts.Now(), wait)
}

// serve hands out e if it is still above the floor, or the newest entry
// if one arrived, else waits for a refresh.
func (k *Keeper) serve(ctx context.Context, e *entry, now time.Time, wait time.Duration) (aws.Credentials, error) {
	if n := k.cur.Load(); n != nil && n != e && now.Before(n.floorAt) {
		e = n
	}
	if !now.Before(e.floorAt) {
		return k.waitFor(ctx, now, wait)
	}
	k.served.Add(1)
	return e.creds, nil
}

// waitFor is the path with nothing servable: join or start the refresh and
// wait for it, at most wait (if > 0); in backoff, the last error at once.
func (k *Keeper) waitFor(ctx context.Context, now time.Time, wait time.Duration) (aws.Credentials, error) {
	f, err := k.start(now, false)
	if err != nil {
		return aws.Credentials{}, err
	}
	if f == nil { // another caller's refresh just landed
		return k.credentials(ctx, wait)
	}
	k.waited.Add(1)
	if wait <= 0 {
		return k.outcome(ctx, f)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := k.outcome(wctx, f)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return aws.Credentials{}, k.inProgress(wait)
	}
	return c, err
}

// inProgress answers a caller that waited wait for a refresh still running.
func (k *Keeper) inProgress(wait time.Duration) *Error {
	e := k.newError(CodeRefreshInProgress, fmt.Sprintf("the source has not answered within %s; the refresh goes on: retry shortly", wait), true, nil)
	e.RetryAfter = time.Second
	return e
}

// CodeRefreshInProgress is the *Error code of a request answered before
// the refresh it waited for ended (Options.RequestWait).
const CodeRefreshInProgress = "RefreshInProgress"

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
	f := &flight{done: make(chan struct{}), started: now, forced: force}
	k.flight = f
	go k.run(f)
	return f, nil
}

// run makes one call to the source and publishes its outcome.
func (k *Keeper) run(f *flight) {
	ctx, cancel := context.WithTimeout(k.base, k.opts.RefreshTimeout)
	defer cancel()
	k.calls.Add(1)
	prev := k.cur.Load()
	began := time.Now() // latency is a duration: the monotonic clock, not Options.Now
	c, reqID, err := k.retrieve(ctx)
	took := time.Since(began)
	now := k.opts.Now()
	if err == nil {
		err = validCredentials(c, now)
	}
	var e *entry
	if err == nil {
		e = k.newEntry(c, now)
		k.logRefreshed(e, now.Sub(f.started), reqID)
	}
	k.mu.Lock()
	k.lastReqID = reqID
	if e != nil {
		k.cur.Store(e)
		// The last error stays for /v1/health; the count clears the backoff.
		k.fail.count, k.fail.nextAttempt, k.fail.lastRefresh = 0, time.Time{}, now
		f.entry = e
	} else {
		f.err = k.recordFailureLocked(err, now, reqID)
	}
	k.flight = nil
	k.mu.Unlock()
	if f.err != nil {
		k.logFailure(f.err, now)
	}
	k.observe(f, prev, now, took, reqID)
	close(f.done)
}

// retrieve calls the source, with STS's request id where the source has one.
func (k *Keeper) retrieve(ctx context.Context) (aws.Credentials, string, error) {
	if s, ok := k.source.(interface {
		retrieveWithID(context.Context) (aws.Credentials, string, error)
	}); ok {
		return s.retrieveWithID(ctx)
	}
	c, err := k.source.Retrieve(ctx)
	return c, requestIDOf(err), err
}

// observe tells Options.Observe about f's call to the source.
func (k *Keeper) observe(f *flight, prev *entry, now time.Time, took time.Duration, reqID string) {
	if k.opts.Observe == nil {
		return
	}
	a := Attempt{Role: k.opts.Name, Started: f.started, Took: took, Err: f.err, RequestID: reqID, Forced: f.forced}
	if prev != nil {
		a.LeftAtStart = max(0, prev.creds.Expires.Sub(f.started))
	}
	if f.entry != nil {
		a.Lifetime = f.entry.creds.Expires.Sub(now)
	}
	k.opts.Observe(a)
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

// Tick is the hook for every INVOKE event, in both modes: it starts a
// background refresh if one is due, and never blocks. Before anything asked
// for credentials it does nothing: deferred mode makes no STS call before
// the first request (eager mode's prefetch asks at start-up). The refresh
// point carries each credential set's jitter, so a fleet refreshes spread
// out, not when the SDKs' fixed windows make their requests arrive.
func (k *Keeper) Tick() {
	select {
	case <-k.active:
	default:
		return
	}
	now := k.opts.Now()
	if e := k.cur.Load(); e == nil || !now.Before(e.refreshAt) {
		_, _ = k.start(now, false)
	}
}

// InFlight returns the done channel of the refresh in flight (closed once
// its outcome is published), or nil if none runs.
func (k *Keeper) InFlight() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.flight == nil {
		return nil
	}
	return k.flight.done
}

// Prefetch fetches credentials now unless fresh ones are cached, waiting for
// the result. Eager mode calls it at start-up and on its timer.
func (k *Keeper) Prefetch(ctx context.Context) error {
	k.activeOnce.Do(k.activate)
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

// KeepFresh refreshes on the wall clock until ctx ends. Both modes use it
// where no INVOKE event comes to drive refreshes (Lambda Managed Instances,
// whose environments are never frozen): eager mode from the start,
// deferred mode once Active. It sleeps until the refresh point,
// which carries the entry's jitter, or until a backoff ends, then refreshes
// through the single flight and waits for the outcome. It never sleeps
// longer than maxSleep, so a jump of the wall clock (a freeze, a restore
// from a snapshot) is noticed; requests check the clock themselves anyway.
func (k *Keeper) KeepFresh(ctx context.Context, maxSleep time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(k.TimerStep(ctx, maxSleep))
	}
}

// TimerStep is one wake-up of KeepFresh: refresh (and wait for the outcome)
// if due, and return how long to sleep before the next wake-up. The fleet
// simulation calls it on its virtual clock.
func (k *Keeper) TimerStep(ctx context.Context, maxSleep time.Duration) time.Duration {
	const minSleep = 100 * time.Millisecond // no busy loop if a source hands out short-lived credentials
	if due := k.Due(); !due.After(k.opts.Now()) {
		_ = k.Prefetch(ctx) // a failure is logged and sets the backoff that Due reads
	}
	return min(max(k.Due().Sub(k.opts.Now()), minSleep), maxSleep)
}

// Due is when the next refresh should start: the refresh point of the
// current credentials (now if there are none, or none servable), pushed back
// to the end of a backoff in force. KeepFresh sleeps until it; the fleet
// simulation schedules its timer events by it.
func (k *Keeper) Due() time.Time {
	now := k.opts.Now()
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

func (k *Keeper) logRefreshed(e *entry, took time.Duration, reqID string) {
	k.opts.Logger.Info("credentials refreshed", "role", k.opts.Name, "source", k.source.Describe(),
		"accessKeyId", e.creds.AccessKeyID, "expiration", e.creds.Expires.UTC().Format(time.RFC3339),
		"refreshAt", e.refreshAt.UTC().Format(time.RFC3339Nano), "took", took.String(), "requestId", reqID)
}

// recordFailureLocked classifies err and sets the backoff. Still-valid
// credentials stay in place: the read path keeps serving them. The backoff
// never ends after the current credentials' floor: the retry comes no later
// than the moment they stop being servable.
func (k *Keeper) recordFailureLocked(err error, now time.Time, reqID string) *Error {
	k.failures.Add(1)
	e := k.classify(err)
	if e.RequestID == "" {
		e.RequestID = reqID
	}
	lifetime := k.opts.Lifetime
	cur := k.cur.Load()
	if cur != nil {
		lifetime = cur.creds.Expires.Sub(cur.issued)
	}
	k.fail.count++
	n := k.fail.count
	if !e.Retryable {
		n = 1 << 10 // irrecoverable: back off the most, do not hammer STS
	}
	k.fail.last = e
	k.fail.nextAttempt = now.Add(k.opts.Window(lifetime).Backoff(n, e.Throttled(), k.opts.Rand()))
	if cur != nil && now.Before(cur.floorAt) && k.fail.nextAttempt.After(cur.floorAt) {
		k.fail.nextAttempt = cur.floorAt
	}
	return e
}

func (k *Keeper) logFailure(e *Error, now time.Time) {
	attrs := []any{"role", k.opts.Name, "source", k.source.Describe(), "code", e.Code, "error", e.Message, "retryable", e.Retryable,
		"requestId", e.RequestID, "retryIn", k.Due().Sub(now).Round(time.Millisecond).String()}
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
