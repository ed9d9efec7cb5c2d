package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// FlushEvery is the least time between two flushes, but for SHUTDOWN's.
const FlushEvery = time.Minute

// maxPending bounds the refresh records kept between flushes (a refresh
// every backoff of 4 s for a minute is 15 per role).
const maxPending = 512

// Counts reads one role's cumulative requests served and requests that
// waited on STS (creds.Health's Served and Waited).
type Counts func() (served, waited int64)

// Emitter collects the metrics and writes them as EMF lines. It is safe for
// concurrent use; a nil *Emitter does nothing.
type Emitter struct {
	cfg  config.Metrics
	mode string
	w    io.Writer
	now  func() time.Time

	mu                   sync.Mutex
	pending              []creds.Attempt
	dropped              int
	counts               []Counts
	lastServed, lastWait int64
	lastFlush            time.Time
}

// New returns an emitter writing to w (stdout in Lambda) for an extension
// in mode, or nil when cfg turns the metrics off.
func New(cfg config.Metrics, mode string, w io.Writer, now func() time.Time) *Emitter {
	if !cfg.Enabled {
		return nil
	}
	return &Emitter{cfg: cfg, mode: mode, w: w, now: now, lastFlush: now()}
}

// Observe records one call to a role's source (creds.Options.Observe).
func (e *Emitter) Observe(a creds.Attempt) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pending) == maxPending {
		e.pending, e.dropped = e.pending[1:], e.dropped+1
	}
	e.pending = append(e.pending, a)
}

// Count adds a role's request counters to the per-environment metrics.
func (e *Emitter) Count(c Counts) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.counts = append(e.counts, c)
	e.mu.Unlock()
}

// Tick flushes if FlushEvery has passed since the last flush and there is
// something to write.
func (e *Emitter) Tick() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.now().Sub(e.lastFlush) >= FlushEvery {
		e.flushLocked(false)
	}
}

// Flush writes everything now (SHUTDOWN), the environment's record even if
// nothing was served.
func (e *Emitter) Flush() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked(true)
}

// Run ticks every FlushEvery until done is closed. Where the environment is
// frozen between invocations the ticker fires after the thaw; nothing is
// lost, it is written later.
func (e *Emitter) Run(done <-chan struct{}) {
	if e == nil {
		return
	}
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			e.Tick()
		}
	}
}

func (e *Emitter) flushLocked(always bool) {
	var served, waited int64
	for _, c := range e.counts {
		s, w := c()
		served, waited = served+s, waited+w
	}
	ds, dw := served-e.lastServed, waited-e.lastWait
	if !always && len(e.pending) == 0 && ds == 0 && dw == 0 {
		return
	}
	now := e.now()
	for _, a := range e.pending {
		e.write(e.refreshRecord(a))
	}
	e.write(e.environmentRecord(now, ds, dw, e.dropped))
	e.pending, e.dropped = e.pending[:0], 0
	e.lastServed, e.lastWait, e.lastFlush = served, waited, now
}

// write puts one record on one line, in one Write, so that it does not
// interleave with the log lines on the same stdout.
func (e *Emitter) write(rec map[string]any) {
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	_, _ = e.w.Write(append(b, '\n'))
}
