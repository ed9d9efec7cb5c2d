package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi"
)

// run registers, waits (eager) for the prefetch within a bound, then loops
// on /event/next until SHUTDOWN or ctx ends.
func (a *agent) run(ctx context.Context) error {
	reg, invokes, err := a.register(ctx)
	if err != nil {
		a.stop(context.Background(), time.Now().Add(time.Second))
		if ctx.Err() != nil {
			return nil // SIGTERM while registering
		}
		var se *extapi.StatusError
		if errors.As(err, &se) && se.Exit {
			a.o.Logger.Error("the Extensions API refused the registration; exiting as it asks", "status", se.Status)
		}
		return fmt.Errorf("register: %w", err)
	}
	a.o.Logger.Info("registered", "function", reg.FunctionName, "version", reg.FunctionVersion, "invokeEvents", invokes)
	a.awaitPrefetch(ctx)
	// Return what start-up used and no longer needs (the configuration's
	// parsing, the Extensions API client's first exchange) to the OS: the
	// heap of an extension that serves from cache may not reach the GC's
	// first 4 MB goal for a long time, and until a GC runs, that garbage
	// stays resident. One GC of a heap this small takes well under a
	// millisecond, off the path to /event/next. README, "Memory".
	go debug.FreeOSMemory()
	go a.o.Metrics.Run(a.metricsDone)
	if !invokes {
		a.startTimers()
	}
	for {
		ev, err := a.next(ctx)
		switch {
		case ctx.Err() != nil: // SIGTERM: Lambda gives external extensions ~2s
			a.stop(context.Background(), time.Now().Add(1500*time.Millisecond))
			return nil
		case err != nil:
			a.stop(context.Background(), time.Now().Add(time.Second))
			return a.exitError(err)
		case ev.EventType == extapi.Shutdown:
			a.o.Logger.Info("shutdown", "reason", ev.ShutdownReason)
			a.stop(context.Background(), ev.Deadline())
			return nil
		case ev.EventType == extapi.Invoke:
			// Both modes: refreshes after the first happen here, at each
			// keeper's jittered refresh point, not when an SDK's fixed
			// window makes a request arrive (a fleet started together would
			// refresh together). A deferred keeper nobody asked yet does
			// nothing. Never blocks: the invoke ends for billing only when
			// every extension is back in /event/next.
			for _, k := range a.keepers {
				k.Tick()
			}
		}
	}
}

// register subscribes to INVOKE and SHUTDOWN, or to SHUTDOWN alone on
// Lambda Managed Instances, which refuse INVOKE. If another execution model
// refuses INVOKE too (403 Extension.InvalidEventType), it registers again
// for SHUTDOWN alone rather than exit: an extension that exits during init
// fails the function's whole environment, and INVOKE is an event the
// extension can live without (eager mode then refreshes on a timer).
func (a *agent) register(ctx context.Context) (reg *extapi.Registration, invokes bool, err error) {
	if a.cfg.ManagedInstances() {
		reg, err = a.api.Register(ctx, a.o.Name, extapi.Shutdown)
		return reg, false, err
	}
	reg, err = a.api.Register(ctx, a.o.Name, extapi.Invoke, extapi.Shutdown)
	var se *extapi.StatusError
	if errors.As(err, &se) && se.ErrorType == extapi.ErrInvalidEventType {
		a.o.Logger.Warn("the Extensions API refused INVOKE events; registering for SHUTDOWN alone",
			"initializationType", a.cfg.InitializationType, "mode", a.cfg.Mode)
		reg, err = a.api.Register(ctx, a.o.Name, extapi.Shutdown)
		return reg, false, err
	}
	return reg, err == nil, err
}

// startTimers runs each keeper's wall-clock refresh until stop, where no
// INVOKE event drives refreshes: in eager mode from the start, in deferred
// mode from the first request for that role's credentials (no STS call
// before it).
func (a *agent) startTimers() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopTimers = cancel
	for _, k := range a.keepers {
		go func() {
			select {
			case <-k.Active():
				k.KeepFresh(ctx, a.o.TimerMaxSleep)
			case <-ctx.Done():
			}
		}()
	}
	a.o.Logger.Info("refreshing on a timer (no INVOKE events in this execution model)", "maxSleep", a.o.TimerMaxSleep.String(),
		"from", map[config.Mode]string{config.ModeEager: "start", config.ModeDeferred: "the first request"}[a.cfg.Mode])
}

// awaitPrefetch holds the first /event/next until the eager prefetch ends,
// or PrefetchWait passes: init then costs max(runtime init, STS).
func (a *agent) awaitPrefetch(ctx context.Context) {
	t := time.NewTimer(a.o.PrefetchWait)
	defer t.Stop()
	select {
	case <-a.ready:
	case <-t.C:
		a.o.Logger.Warn("eager prefetch still running; continuing init without it", "waited", a.o.PrefetchWait.String())
	case <-ctx.Done():
	}
}

// next waits for an event, or for the server to fail.
func (a *agent) next(ctx context.Context) (*extapi.Event, error) {
	type result struct {
		ev  *extapi.Event
		err error
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		ev, err := a.api.Next(nctx)
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		return r.ev, r.err
	case err := <-a.served:
		if err == nil {
			err = errors.New("credentials server stopped")
		}
		return nil, &serverError{err}
	}
}

type serverError struct{ err error }

func (e *serverError) Error() string { return e.err.Error() }
func (e *serverError) Unwrap() error { return e.err }

func (a *agent) exitError(err error) error {
	errType := "Extension.EventLoopFailed"
	var se *serverError
	if errors.As(err, &se) {
		errType = ErrServerFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rerr := a.api.ExitError(ctx, errType, err); rerr != nil {
		a.o.Logger.Error("could not report the exit error", "error", rerr.Error())
	}
	return fmt.Errorf("event loop: %w", err)
}

// stop aborts STS calls in flight, shuts the server down before deadline
// (minus the margin) and removes the token file.
func (a *agent) stop(ctx context.Context, deadline time.Time) {
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(-a.o.ShutdownMargin))
	defer cancel()
	// Abort STS calls first: a request waiting on one then gets its 503 at
	// once, and the server's shutdown need not wait for it.
	a.stopTimers()
	for _, k := range a.keepers {
		k.Close()
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		a.o.Logger.Warn("server shutdown cut short", "error", err.Error())
	}
	a.stopMetrics()
	if err := os.Remove(a.cfg.TokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.o.Logger.Warn("could not remove the token file", "error", err.Error())
	}
	a.o.Logger.Info("stopped", "took", time.Since(start).String(), "deadlineIn", time.Until(deadline).Round(time.Millisecond).String())
}
