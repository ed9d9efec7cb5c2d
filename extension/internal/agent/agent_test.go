package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/logcapture"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/memnet"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi/extapitest"
)

// harness runs the agent against in-process fakes of the Extensions API
// and STS, with the credentials listener in memory, so that the tests run
// in testing/synctest bubbles: every wait is in virtual time, and
// synctest.Wait says when the agent has nothing left to do.
type harness struct {
	api    *extapitest.API
	sts    *ststest.Server
	clock  *ststest.Clock
	net    *memnet.Network
	client *http.Client
	cfg    *config.Config
	logs   *logcapture.Buffer
	done   chan struct{} // closed when Run returns
	err    error
	stop   context.CancelFunc
}

func newHarness(t testing.TB, mode config.Mode) *harness {
	t.Helper()
	h := &harness{api: extapitest.NewInProcess(), clock: ststest.NewClock(time.Now().UTC().Truncate(time.Second)),
		net: memnet.New(), logs: &logcapture.Buffer{}}
	h.sts = ststest.NewInProcess(h.clock.Now)
	h.client = h.net.Client()
	t.Cleanup(h.client.CloseIdleConnections)
	h.cfg = &config.Config{
		Roles: map[string]*config.Role{config.DefaultRoleName: {AssumeRoleInput: &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/t"),
			RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(3600)}}},
		Mode: mode, Port: 2775, TokenFile: filepath.Join(t.TempDir(), "sub", "token"),
		STSMaxAttempts: 1, STSTimeout: time.Second, RuntimeAPI: h.api.Addr(),
	}
	return h
}

func (h *harness) options(fns ...func(*agent.Options)) agent.Options {
	o := agent.Options{
		Name:   "credential-refresh",
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    h.clock.Now,
		NewSTSClient: func(context.Context, *config.Config) (*sts.Client, error) {
			return h.sts.Client(1), nil
		},
		APIOptions: []func(*extapi.Options){func(o *extapi.Options) { o.HTTPClient = h.api.Client() }},
		Listen:     h.net.Listen,
	}
	for _, fn := range fns {
		fn(&o)
	}
	return o
}

func (h *harness) start(t *testing.T, cfgErr error, fns ...func(*agent.Options)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan struct{})
	go func() {
		h.err = agent.Run(ctx, h.cfg, cfgErr, h.options(fns...))
		close(h.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
		}
	})
}

func (h *harness) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-h.done:
		return h.err
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not return")
		return nil
	}
}

func (h *harness) waitNext(t *testing.T, n int) {
	t.Helper()
	// Virtual time: the agent may be waiting on a timer (the bounded
	// prefetch wait), which only moves when this goroutine sleeps too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		synctest.Wait()
		c, _ := h.api.NextCalls()
		if c >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/event/next called %d times, want %d", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) get(t testing.TB, path string) (int, map[string]any) {
	t.Helper()
	tok, err := os.ReadFile(h.cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", h.cfg.Port, path), nil)
	req.Header.Set("Authorization", string(tok))
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestDeferredLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		var tokenAtRegister []byte
		var listeningAtRegister bool
		h.api.OnRegister(func() {
			tokenAtRegister, _ = os.ReadFile(h.cfg.TokenFile)
			listeningAtRegister = h.net.Listening(h.cfg.Port)
		})
		h.start(t, nil)
		h.waitNext(t, 1)
		if name, feature, _ := h.api.Registered(); name != "credential-refresh" || feature != "accountId" {
			t.Errorf("registered as %q with %q", name, feature)
		}
		if len(tokenAtRegister) != 43 || bytes.ContainsAny(tokenAtRegister, "\n=+/") || !listeningAtRegister {
			t.Fatalf("at register: token %d bytes (want 43, base64url, no newline), listening %v", len(tokenAtRegister), listeningAtRegister)
		}
		st, _ := os.Stat(h.cfg.TokenFile)
		dst, _ := os.Stat(filepath.Dir(h.cfg.TokenFile))
		if st.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o700 {
			t.Errorf("token file mode %v, dir %v", st.Mode().Perm(), dst.Mode().Perm())
		}
		if h.sts.Calls() != 0 {
			t.Fatal("deferred mode called STS at init")
		}
		if code, body := h.get(t, "/v1/credentials"); code != 200 || !strings.HasPrefix(body["AccessKeyId"].(string), "ASIA") {
			t.Fatalf("GET: %d %v", code, body)
		}
		for i := range 3 {
			h.api.Invoke(fmt.Sprintf("r%d", i), time.Now().Add(3*time.Second))
			h.waitNext(t, i+2)
		}
		if h.sts.Calls() != 1 {
			t.Errorf("STS calls = %d, want 1", h.sts.Calls())
		}
		start := time.Now()
		h.api.Shutdown(time.Now().Add(2 * time.Second))
		if err := h.wait(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("shutdown took %s, past the deadline", took)
		}
		if _, err := os.Stat(h.cfg.TokenFile); !errors.Is(err, os.ErrNotExist) {
			t.Error("token file left behind")
		}
		if h.net.Listening(h.cfg.Port) {
			t.Error("still listening after shutdown")
		}
	})
}

// Eager: the prefetch starts before /register and overlaps it; the first
// /event/next waits for it; INVOKE in the refresh window refreshes in the
// background without holding /event/next.
func TestEagerPrefetchOverlapsRegisterAndInvokeRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeEager)
		release := h.sts.Hold()
		var stsCallsAtRegister int64
		h.api.OnRegister(func() {
			for h.sts.Calls() == 0 { // virtual time: the prefetch goroutine gets to run
				time.Sleep(time.Millisecond)
			}
			stsCallsAtRegister = h.sts.Calls()
		})
		h.start(t, nil)
		synctest.Wait() // registered; the prefetch is held in STS
		if _, _, at := h.api.Registered(); at.IsZero() {
			t.Fatal("not registered")
		}
		if n, _ := h.api.NextCalls(); n != 0 {
			t.Fatal("first /event/next made before the prefetch finished")
		}
		release()
		h.waitNext(t, 1)
		if stsCallsAtRegister != 1 {
			t.Errorf("STS calls at register = %d", stsCallsAtRegister)
		}
		_, body := h.get(t, "/v1/health")
		role := body["roles"].(map[string]any)["default"].(map[string]any)
		if role["state"] != "fresh" || role["waited"].(float64) != 0 {
			t.Fatalf("health after prefetch: %v", body)
		}
		// Into the refresh window, then INVOKE with STS slow: /event/next must
		// come back at once while the refresh runs.
		h.clock.Advance(41 * time.Minute)
		release = h.sts.Hold()
		h.api.Invoke("r1", time.Now().Add(3*time.Second))
		h.waitNext(t, 2)
		if n := h.sts.Calls(); n != 2 {
			t.Fatalf("STS calls after the INVOKE: %d, want the background refresh", n)
		}
		release()
		synctest.Wait()
		if _, b := h.get(t, "/v1/health"); b["roles"].(map[string]any)["default"].(map[string]any)["state"] != "fresh" {
			t.Fatalf("after the refresh: %v", b)
		}
		code, _ := h.get(t, "/v1/credentials")
		_, body = h.get(t, "/v1/health")
		role = body["roles"].(map[string]any)["default"].(map[string]any)
		if code != 200 || role["waited"].(float64) != 0 || role["stsCalls"].(float64) != 2 {
			t.Errorf("eager steady state: a request waited on STS: %v", role)
		}
		h.api.Shutdown(time.Now().Add(2 * time.Second))
		if err := h.wait(t); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEagerPrefetchWaitIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeEager)
		defer h.sts.Hold()()
		start := time.Now()
		h.start(t, nil, func(o *agent.Options) { o.PrefetchWait = 150 * time.Millisecond })
		h.waitNext(t, 1)
		if took := time.Since(start); took < 150*time.Millisecond || took > 3*time.Second {
			t.Errorf("first /event/next after %s, want ~150ms", took)
		}
		if !strings.Contains(h.logs.String(), "eager prefetch still running") {
			t.Error("no warning about the unfinished prefetch")
		}
	})
}

func TestConfigErrorReportsInitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		_, cfgErr := config.Load(func(k string) string {
			return map[string]string{config.EnvRoleArn: "not-an-arn", config.EnvMode: "bogus", "AWS_REGION": "us-east-1"}[k]
		})
		h.start(t, cfgErr)
		err := h.wait(t)
		if err == nil || !strings.Contains(err.Error(), config.EnvRoleArn) {
			t.Fatalf("Run = %v", err)
		}
		reps := h.api.Reports()
		if len(reps) != 1 || reps[0].Path != "init/error" || reps[0].ErrorType != "Extension.ConfigInvalid" ||
			!strings.Contains(reps[0].Message, config.EnvRoleArn+": ") || !strings.Contains(reps[0].Message, config.EnvMode) {
			t.Fatalf("reports %+v", reps)
		}
		if _, err := os.Stat(h.cfg.TokenFile); !errors.Is(err, os.ErrNotExist) {
			t.Error("token file written despite invalid config")
		}
		if h.net.Listening(h.cfg.Port) {
			t.Error("listening despite invalid config")
		}
	})
}

func TestPortInUseReportsInitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		ln, err := h.net.Listen(fmt.Sprintf("127.0.0.1:%d", h.cfg.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		h.start(t, nil)
		if err := h.wait(t); err == nil {
			t.Fatal("no error")
		}
		if reps := h.api.Reports(); len(reps) != 1 || reps[0].ErrorType != agent.ErrStartFailed || !strings.Contains(reps[0].Message, config.EnvPort) {
			t.Fatalf("reports %+v", reps)
		}
	})
}

func TestRegisterRefusedExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		h.api.FailRegister(http.StatusForbidden)
		h.start(t, nil)
		if err := h.wait(t); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestEventLoopFailureReportsExitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		h.api.FailNext(http.StatusInternalServerError)
		h.start(t, nil)
		if err := h.wait(t); err == nil {
			t.Fatal("no error")
		}
		if reps := h.api.Reports(); len(reps) != 1 || reps[0].Path != "exit/error" || reps[0].ErrorType != "Extension.EventLoopFailed" {
			t.Fatalf("reports %+v", reps)
		}
	})
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		h.start(t, nil)
		h.waitNext(t, 1)
		start := time.Now()
		h.stop()
		if err := h.wait(t); err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("Run = %v after %s", err, time.Since(start))
		}
	})
}

// A request stuck on a slow STS call must not hold the shutdown past the
// SHUTDOWN deadline.
func TestShutdownInsideDeadlineWithRequestInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeDeferred)
		h.cfg.STSTimeout = 10 * time.Second
		h.start(t, nil)
		h.waitNext(t, 1)
		defer h.sts.Hold()()
		go func() {
			tok, _ := os.ReadFile(h.cfg.TokenFile)
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/v1/credentials", h.cfg.Port), nil)
			req.Header.Set("Authorization", string(tok))
			if resp, err := h.client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		synctest.Wait()
		if n := h.sts.Calls(); n != 1 {
			t.Fatalf("STS calls %d, want the request's", n)
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		h.api.Shutdown(deadline)
		if err := h.wait(t); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Errorf("returned %s after the SHUTDOWN deadline", time.Since(deadline))
		}
	})
}

func TestLogsCarryNoSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config.ModeEager)
		h.start(t, nil)
		h.waitNext(t, 1)
		h.get(t, "/v1/credentials")
		tok, _ := os.ReadFile(h.cfg.TokenFile)
		h.api.Shutdown(time.Now().Add(2 * time.Second))
		_ = h.wait(t)
		logs := h.logs.String()
		if !strings.Contains(logs, "credentials refreshed") {
			t.Fatal("vacuous: no refresh logged")
		}
		secrets := []string{string(tok)}
		for _, c := range h.sts.Issued() {
			secrets = append(secrets, c.SecretAccessKey, c.SessionToken)
		}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Fatal("secret in logs")
			}
		}
	})
}

// BenchmarkFirstInvoke measures the time from the extension's start to the
// first credentials a function gets, with an STS that takes 60ms and a
// runtime whose own init takes 60ms. Deferred pays both in sequence; eager
// overlaps the STS call with the runtime's init (max instead of sum).
func BenchmarkFirstInvoke(b *testing.B) {
	const stsDelay, runtimeInit = 60 * time.Millisecond, 60 * time.Millisecond
	for _, mode := range []config.Mode{config.ModeDeferred, config.ModeEager} {
		b.Run(string(mode), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += firstInvoke(b, mode, stsDelay, runtimeInit)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-credentials")
		})
	}
}

func firstInvoke(b *testing.B, mode config.Mode, stsDelay, runtimeInit time.Duration) time.Duration {
	h := newHarness(b, mode)
	h.clock = ststest.NewClock(time.Now())
	h.sts.SetDelay(stsDelay)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = agent.Run(ctx, h.cfg, nil, h.options(func(o *agent.Options) { o.Now = time.Now }))
		close(done)
	}()
	// The runtime starts once the extension registered (Lambda's order),
	// spends runtimeInit in its own init, then the first invoke asks for
	// credentials.
	for _, _, at := h.api.Registered(); at.IsZero(); _, _, at = h.api.Registered() {
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(runtimeInit)
	for n, _ := h.api.NextCalls(); n == 0; n, _ = h.api.NextCalls() {
		time.Sleep(100 * time.Microsecond) // the invoke starts after init, i.e. after the extension's first /next
	}
	if code, _ := h.get(b, "/v1/credentials"); code != http.StatusOK {
		b.Fatalf("status %d", code)
	}
	took := time.Since(start)
	cancel()
	<-done
	return took
}
