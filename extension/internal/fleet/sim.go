package fleet

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// Config is one simulated fleet. Zero fields take Defaults' values.
type Config struct {
	N           int           // execution environments
	Lifetime    time.Duration // DurationSeconds asked of STS
	StartSpread time.Duration // environments start uniformly spread over [0, StartSpread); 0: all at once
	Quota       float64       // the account's AssumeRole requests per second
	Burst       float64       // the bucket's size (default: Quota, one second's worth)
	Mode        string        // "deferred" or "eager"
	// Platform is "classic" (INVOKE events; frozen between invokes, so no
	// timers) or "lmi" (Lambda Managed Instances: no INVOKE event, never
	// frozen, so the keeper's timer).
	Platform string
	// InvokeEvery is the mean time between two invocations of one
	// environment (a Poisson process).
	InvokeEvery time.Duration
	// The function's SDK: it asks the endpoint when it holds no credentials
	// or its copy has SDKWindow or less left (botocore 15 min); on an error
	// it asks again after SDKRetryEvery, SDKAttempts times in all, and the
	// invocation fails after that (botocore: 3 attempts, 1 s apart).
	SDKWindow     time.Duration
	SDKAttempts   int
	SDKRetryEvery time.Duration
	TimerMaxSleep time.Duration // the agent's KeepFresh bound (1 min)
	Duration      time.Duration // simulated time
	Seed          uint64
	// LegacyDeferred is the agent before issue 10: deferred keepers got no
	// INVOKE tick and no timer, so only requests (at the SDKs' fixed
	// windows) triggered their refreshes.
	LegacyDeferred bool
	// LegacyBackoff is the keeper's backoff before issue 10, which treated
	// Throttling like any retryable failure (the bucket then answers with
	// ServiceUnavailable). The SDK retryer's own retries of Throttling, which
	// the old STS client also made, are not modelled (calls take no time).
	LegacyBackoff bool
}

// Defaults are the fleet: 10,000 environments started within 10 s,
// 1 h credentials, a 600/s account quota.
var Defaults = Config{N: 10000, Lifetime: time.Hour, StartSpread: 10 * time.Second, Quota: 600, Mode: "deferred",
	Platform: "classic", InvokeEvery: 100 * time.Millisecond, SDKWindow: 15 * time.Minute, SDKAttempts: 3, SDKRetryEvery: time.Second,
	TimerMaxSleep: time.Minute, Duration: 3 * time.Hour, Seed: 1}

func (c *Config) defaults() error {
	d := Defaults
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.N == 0 {
		c.N = d.N
	}
	setDur(&c.Lifetime, d.Lifetime)
	setDur(&c.InvokeEvery, d.InvokeEvery)
	setDur(&c.SDKWindow, d.SDKWindow)
	setDur(&c.SDKRetryEvery, d.SDKRetryEvery)
	setDur(&c.TimerMaxSleep, d.TimerMaxSleep)
	setDur(&c.Duration, d.Duration)
	if c.Quota == 0 {
		c.Quota = d.Quota
	}
	if c.Burst == 0 {
		c.Burst = c.Quota
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Platform == "" {
		c.Platform = d.Platform
	}
	if c.SDKAttempts == 0 {
		c.SDKAttempts = d.SDKAttempts
	}
	switch {
	case c.Mode != "deferred" && c.Mode != "eager":
		return fmt.Errorf("mode %q: want deferred or eager", c.Mode)
	case c.Platform != "classic" && c.Platform != "lmi":
		return fmt.Errorf("platform %q: want classic or lmi", c.Platform)
	case c.N < 1 || c.Quota <= 0 || c.Burst < 1:
		return errors.New("need N ≥ 1, Quota > 0 and Burst ≥ 1")
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Config Config
	// Per second of simulated time: AssumeRole requests sent, answered
	// with credentials, throttled.
	Sent, OK, Throttled []int
	// AllServed is when the last environment got its first credentials
	// (from the start of the burst); zero if some never did.
	AllServed time.Duration
	// Served[i] is when environment i got its first credentials, from its
	// own start.
	Served []time.Duration
	// ColdRequests[i] is how many requests environment i sent until then.
	ColdRequests []int
	// LaterPeak is the most requests sent in one second after AllServed
	// (the refresh waves), and when.
	LaterPeak   int
	LaterPeakAt time.Duration
	// FailedInvocations ran out of SDK attempts without credentials.
	FailedInvocations int
	Unserved          int // environments that never got credentials
}

// RequestsPerEnv is the mean number of requests an environment sent until
// it had credentials.
func (r *Result) RequestsPerEnv() float64 {
	n := 0
	for _, c := range r.ColdRequests {
		n += c
	}
	return float64(n) / float64(len(r.ColdRequests))
}

// PeakShare is LaterPeak as a share of the quota.
func (r *Result) PeakShare() float64 { return float64(r.LaterPeak) / r.Config.Quota }

// Served quantile q (0..1) of the time from an environment's start to its
// first credentials.
func (r *Result) ServedQuantile(q float64) time.Duration {
	s := slices.Clone(r.Served)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// env is one execution environment.
type env struct {
	keeper  *creds.Keeper
	rng     *rand.Rand
	start   time.Time
	sdkExp  time.Time // the expiry of the SDK's copy; zero: none yet
	served  time.Time // first credentials
	timerOn bool
}

type kind uint8

const (
	evStart kind = iota
	evInvoke
	evAsk
	evTimer
)

type event struct {
	at      int64 // ns from t0
	env     int32
	kind    kind
	attempt uint8
}

type queue []event

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// t0 is the simulation's epoch: any fixed instant does.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type sim struct {
	cfg   Config
	clock atomic.Int64 // ns from t0
	sts   *STS
	envs  []env
	q     queue
	res   Result
	ctx   context.Context
}

func (s *sim) now() time.Time { return t0.Add(time.Duration(s.clock.Load())) }

// Run simulates one fleet.
func Run(cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &sim{cfg: cfg, envs: make([]env, cfg.N), ctx: context.Background()}
	s.sts = &STS{Now: s.now, Rate: cfg.Quota, Burst: cfg.Burst, Lifetime: cfg.Lifetime}
	if cfg.LegacyBackoff {
		s.sts.ThrottleCode = "ServiceUnavailable"
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	for i := range s.envs {
		s.envs[i] = s.newEnv(i)
		at := int64(rng.Float64() * float64(cfg.StartSpread))
		s.push(event{at: at, env: int32(i), kind: evStart})
	}
	end := int64(cfg.Duration)
	for s.q.Len() > 0 {
		ev := heap.Pop(&s.q).(event)
		if ev.at >= end {
			break
		}
		s.clock.Store(ev.at)
		s.handle(ev)
	}
	for i := range s.envs {
		s.envs[i].keeper.Close()
	}
	s.collect()
	return &s.res, nil
}

func (s *sim) newEnv(i int) env {
	e := env{rng: rand.New(rand.NewPCG(s.cfg.Seed, uint64(i)+1))}
	src := creds.AssumeRole(s.sts, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/sim"),
		RoleSessionName: aws.String(fmt.Sprintf("env-%d", i)), DurationSeconds: aws.Int32(int32(s.cfg.Lifetime / time.Second))})
	e.keeper = creds.NewKeeper(src, func(o *creds.Options) {
		o.Name, o.Now, o.Rand = fmt.Sprintf("env-%d", i), s.now, e.rng.Float64
		o.RefreshInBackground = s.cfg.Mode == "eager"
		o.Observe = func(a creds.Attempt) {
			if a.Err == nil && s.envs[i].served.IsZero() {
				s.envs[i].served = a.Started
			}
		}
	})
	return e
}

func (s *sim) push(ev event) { heap.Push(&s.q, ev) }

func (s *sim) at(t time.Time) int64 { return int64(t.Sub(t0)) }

// settle waits for the refresh the last call started, if any: calls take no
// simulated time, so its outcome belongs to this instant.
func (s *sim) settle(e *env) {
	if ch := e.keeper.InFlight(); ch != nil {
		<-ch
	}
}

func (s *sim) handle(ev event) {
	e := &s.envs[ev.env]
	switch ev.kind {
	case evStart:
		e.start = s.now()
		if s.cfg.Mode == "eager" {
			_ = e.keeper.Prefetch(s.ctx)
			s.startTimer(ev.env, e)
		}
		s.invoke(ev.env, e)
	case evInvoke:
		s.invoke(ev.env, e)
	case evAsk:
		s.ask(ev.env, e, int(ev.attempt))
	case evTimer:
		d := e.keeper.TimerStep(s.ctx, s.cfg.TimerMaxSleep)
		s.settle(e)
		s.push(event{at: s.at(s.now().Add(d)), env: ev.env, kind: evTimer})
	}
}

// ticks reports whether INVOKE events reach the keeper (the agent calls Tick).
func (s *sim) ticks() bool {
	return s.cfg.Platform == "classic" && (s.cfg.Mode == "eager" || !s.cfg.LegacyDeferred)
}

// startTimer starts the keeper's KeepFresh loop where the agent does: on
// Lambda Managed Instances, eager from the start, deferred (since issue 10)
// from the first request.
func (s *sim) startTimer(i int32, e *env) {
	if s.cfg.Platform != "lmi" || e.timerOn || (s.cfg.Mode == "deferred" && s.cfg.LegacyDeferred) {
		return
	}
	e.timerOn = true
	s.push(event{at: s.at(s.now()), env: i, kind: evTimer})
}

// invoke is one invocation: INVOKE (Tick), then the function's SDK asks if
// its copy needs refreshing.
func (s *sim) invoke(i int32, e *env) {
	if s.ticks() {
		e.keeper.Tick()
		s.settle(e)
	}
	if e.sdkExp.IsZero() || e.sdkExp.Sub(s.now()) <= s.cfg.SDKWindow {
		s.ask(i, e, 1)
		return
	}
	s.nextInvoke(i, e)
}

func (s *sim) ask(i int32, e *env, attempt int) {
	c, err := e.keeper.Credentials(s.ctx)
	s.settle(e)
	if s.cfg.Mode == "deferred" {
		s.startTimer(i, e)
	}
	switch {
	case err == nil:
		e.sdkExp = c.Expires
	case attempt < s.cfg.SDKAttempts:
		s.push(event{at: s.at(s.now().Add(s.cfg.SDKRetryEvery)), env: i, kind: evAsk, attempt: uint8(attempt + 1)})
		return
	default:
		s.res.FailedInvocations++
	}
	s.nextInvoke(i, e)
}

// nextInvoke schedules the environment's next invocation that can matter.
// Invocations are a Poisson process, which has no memory: the first one
// after any instant T comes an exponential time after T. So the ones before
// T that would do nothing (the SDK's copy is fresh, no refresh is due) are
// skipped, and the next one is drawn after T.
func (s *sim) nextInvoke(i int32, e *env) {
	now := s.now()
	t := now
	if !e.sdkExp.IsZero() {
		t = e.sdkExp.Add(-s.cfg.SDKWindow)
		if s.ticks() {
			t = minTime(t, e.keeper.Due())
		}
	}
	t = maxTime(t, now)
	gap := time.Duration(e.rng.ExpFloat64() * float64(s.cfg.InvokeEvery))
	s.push(event{at: s.at(t.Add(gap)), env: i, kind: evInvoke})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// collect turns the fake's record into Result.
func (s *sim) collect() {
	r := &s.res
	r.Config = s.cfg
	secs := int(s.cfg.Duration / time.Second)
	r.Sent, r.OK, r.Throttled = make([]int, secs), make([]int, secs), make([]int, secs)
	r.Served, r.ColdRequests = make([]time.Duration, s.cfg.N), make([]int, s.cfg.N)
	for i, e := range s.envs {
		if e.served.IsZero() {
			r.Unserved++
			continue
		}
		r.Served[i] = e.served.Sub(e.start)
		r.AllServed = max(r.AllServed, e.served.Sub(t0))
	}
	if r.Unserved > 0 {
		r.AllServed = 0
	}
	for _, c := range s.sts.Calls() {
		sec := int(c.At.Sub(t0) / time.Second)
		if sec >= secs {
			continue
		}
		r.Sent[sec]++
		if c.OK {
			r.OK[sec]++
		} else {
			r.Throttled[sec]++
		}
		if e := s.envs[c.Env]; e.served.IsZero() || !c.At.After(e.served) {
			r.ColdRequests[c.Env]++
		}
	}
	if r.AllServed == 0 {
		return
	}
	for sec := int(r.AllServed/time.Second) + 1; sec < secs; sec++ {
		if r.Sent[sec] > r.LaterPeak {
			r.LaterPeak, r.LaterPeakAt = r.Sent[sec], time.Duration(sec)*time.Second
		}
	}
}
