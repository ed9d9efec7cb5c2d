package extapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi/extapitest"
)

func TestRegisterNextAndReports(t *testing.T) {
	api := extapitest.New(t)
	c := extapi.New(api.Addr())
	ctx := context.Background()
	reg, err := c.Register(ctx, "credential-refresh", extapi.Invoke, extapi.Shutdown)
	if err != nil {
		t.Fatal(err)
	}
	if events, _ := api.Events(); strings.Join(events, ",") != "INVOKE,SHUTDOWN" {
		t.Fatalf("registered for %v", events)
	}
	name, feature, _ := api.Registered()
	if name != "credential-refresh" || feature != "accountId" || reg.AccountID != "123456789012" || c.ID() == "" {
		t.Fatalf("registered %q %q %+v", name, feature, reg)
	}
	deadline := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	api.Invoke("req-1", deadline)
	ev, err := c.Next(ctx)
	if err != nil || ev.EventType != extapi.Invoke || ev.RequestID != "req-1" || !ev.Deadline().Equal(deadline) {
		t.Fatalf("next = %+v, %v", ev, err)
	}
	api.Shutdown(deadline)
	if ev, err = c.Next(ctx); err != nil || ev.EventType != extapi.Shutdown || ev.ShutdownReason != "spindown" {
		t.Fatalf("next = %+v, %v", ev, err)
	}
	if err := c.InitError(ctx, "Extension.ConfigInvalid", errors.New("CREDENTIAL_REFRESH_MODE: bad")); err != nil {
		t.Fatalf("InitError: %v", err)
	}
	if err := c.ExitError(ctx, "Extension.Crashed", errors.New("gone")); err != nil {
		t.Fatalf("ExitError: %v", err)
	}
	reps := api.Reports()
	if len(reps) != 2 || reps[0] != (extapitest.Report{Path: "init/error", ErrorType: "Extension.ConfigInvalid", Message: "CREDENTIAL_REFRESH_MODE: bad"}) ||
		reps[1].Path != "exit/error" {
		t.Fatalf("reports %+v", reps)
	}
}

func TestRegisterRefusedMeansExit(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusInternalServerError, http.StatusBadRequest} {
		api := extapitest.New(t)
		api.FailRegister(status)
		_, err := extapi.New(api.Addr()).Register(context.Background(), "credential-refresh", extapi.Invoke, extapi.Shutdown)
		var se *extapi.StatusError
		if !errors.As(err, &se) || se.Status != status || se.Exit != (status != http.StatusBadRequest) {
			t.Errorf("status %d: err = %#v", status, err)
		}
	}
}

// TestNextBlocksWithoutTimeoutUntilCanceled runs in virtual time against
// the in-process fake: Next outlives the call timeout by far, and ends
// when its context does.
func TestNextBlocksWithoutTimeoutUntilCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := extapitest.NewInProcess()
		c := extapi.New(api.Addr(), func(o *extapi.Options) { o.Timeout, o.HTTPClient = 10*time.Millisecond, api.Client() })
		if _, err := c.Register(context.Background(), "x", extapi.Shutdown); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.Next(ctx); done <- err }()
		select {
		case err := <-done:
			t.Fatalf("Next returned early (the call timeout must not apply): %v", err)
		case <-time.After(time.Hour):
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

// stalled is an Extensions API that never answers, until the request's
// context ends.
type stalled struct{}

func (stalled) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

func TestCallsTimeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := extapi.New("extensions.invalid:9001", func(o *extapi.Options) {
			o.Timeout, o.HTTPClient = 50*time.Millisecond, &http.Client{Transport: stalled{}}
		})
		start := time.Now()
		_, err := c.Register(context.Background(), "x", extapi.Shutdown)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("err = %v after %s; want the 50ms timeout", err, time.Since(start))
		}
	})
}

// TestRegisterInvalidEventType: Lambda Managed Instances refuse INVOKE with
// 403 Extension.InvalidEventType. The error says so in ErrorType, and a
// second registration for SHUTDOWN alone succeeds.
func TestRegisterInvalidEventType(t *testing.T) {
	api := extapitest.New(t)
	api.AllowEvents("SHUTDOWN")
	c := extapi.New(api.Addr())
	_, err := c.Register(context.Background(), "credential-refresh", extapi.Invoke, extapi.Shutdown)
	var se *extapi.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.ErrorType != extapi.ErrInvalidEventType {
		t.Fatalf("err = %#v; want a 403 StatusError with ErrorType %s", err, extapi.ErrInvalidEventType)
	}
	if _, err := c.Register(context.Background(), "credential-refresh", extapi.Shutdown); err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if events, calls := api.Events(); strings.Join(events, ",") != "SHUTDOWN" || calls != 2 || c.ID() == "" {
		t.Fatalf("registered for %v in %d calls", events, calls)
	}
}
