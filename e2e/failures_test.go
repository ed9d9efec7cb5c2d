package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// TestBadConfig is scenario 3: a malformed CREDENTIAL_REFRESH_ROLE_ARN and
// an unknown CREDENTIAL_REFRESH_MODE. The extension reports both at once
// through /extension/init/error (Extension.ConfigInvalid) with a message
// naming both variables, RIE records the failed init, and the invoke fails.
// No credentials are served:
// no STS call reaches the proxy, nothing listens on the credentials port,
// and no object lands.
func TestBadConfig(t *testing.T) {
	s := sharedStack(t)
	forEach(t, func(t *testing.T, r harness.Runtime, mode string) {
		ctx := context.Background()
		env := start(t, s, harness.Options{Runtime: r, Mode: "sometimes", Lifetime: time.Minute,
			Env: []string{"CREDENTIAL_REFRESH_ROLE_ARN=not-an-arn", "CREDENTIAL_REFRESH_DURATION_SECONDS=" + modeDuration(mode)}})
		p := prefix(env, 0)
		u, err := env.Upload(ctx, p, 2)
		if err == nil {
			t.Fatalf("invoke succeeded with a bad config: %s", u.Body)
		}
		t.Logf("invoke: HTTP %d %q: %v", u.Status, u.Body, err)
		// RIE records the extension's init error and fails the invoke, but
		// (unlike Lambda) answers it without the error body, so the error
		// is read from the extension's log line and RIE's.
		initErr := initError(env)
		if initErr == nil {
			t.Fatal("no \"init failed\" log line from the extension")
		}
		if got := initErr.Str("errorType"); got != "Extension.ConfigInvalid" {
			t.Errorf("errorType %q, want Extension.ConfigInvalid", got)
		}
		for _, v := range []string{"CREDENTIAL_REFRESH_ROLE_ARN", "CREDENTIAL_REFRESH_MODE"} {
			if !strings.Contains(initErr.Str("error"), v) {
				t.Errorf("the init error does not name %s: %q", v, initErr.Str("error"))
			}
		}
		if len(env.Lines("INIT RTDONE(status: error)")) == 0 || len(env.Lines("Extension.InitError")) == 0 {
			t.Error("RIE did not record a failed init (Extension.InitError)")
		}
		if n := len(env.Proxy.Events()); n != 0 {
			t.Errorf("%d requests reached STS/S3; want none", n)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(env.Port), time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on the credentials port %d", env.Port)
		}
		if keys, err := s.Moto.Keys(ctx, s.Account, p); err != nil || len(keys) != 0 {
			t.Errorf("objects landed: %v %v", keys, err)
		}
	})
}

// initError returns the extension's "init failed" log record, or nil.
func initError(env *harness.Environment) *harness.LogRecord {
	for _, r := range env.JSONLogs() {
		if r.Str("extension") == harness.ExtensionName && r.Msg() == "init failed" {
			return &r
		}
	}
	return nil
}

// modeDuration varies a valid setting between the subtests so that the
// "mode" axis is not vacuous here: the bad mode is the same for both.
func modeDuration(mode string) string {
	if mode == "eager" {
		return "900"
	}
	return "3600"
}

// stsDownError is what the function's error must contain while STS is
// down. The Go and Python SDKs pass the extension's 503 body through
// (CredentialsUnavailable, with STS's own ServiceUnavailable in the message).
// The JS v3 default chain does not: it moves on to its next providers and
// reports only "Could not load credentials from any providers", so for Node
// the 503 is checked on the extension's side (GET /v1/health).
var stsDownError = map[harness.Runtime][]string{
	harness.Go:     {"CredentialsUnavailable", "ServiceUnavailable"},
	harness.Python: {"503", "CredentialsUnavailable", "ServiceUnavailable"},
	harness.Node:   {"Could not load credentials from any providers"},
}

// stsDownLifetime: the credentials must expire while STS is down, so short.
const stsDownLifetime = 5 * time.Second

// TestSTSDown is scenario 4, for a warm environment:
//  1. an invoke fetches credentials (key K1) while STS is up;
//  2. STS goes down (the proxy answers 503 ServiceUnavailable);
//  3. once K1 has expired, an invoke fails with the extension's 503
//     (CredentialsUnavailable, naming STS's ServiceUnavailable) as the
//     function's error (see stsDownError for Node), /v1/health names
//     ServiceUnavailable, and K1 is never used after its expiry (0
//     ExpiredToken);
//  4. while STS is down the extension backs off: at most
//     MAX_ATTEMPTS × (4 + D/0.5 s) STS requests in D seconds of downtime
//     (backoff starts at 100 ms and doubles to ≥ 1 s, jittered to [d/2, d));
//  5. STS comes back: within 10 s an invoke succeeds with a new key, from
//     the same extension process (it recovered by itself).
func TestSTSDown(t *testing.T) {
	s := sharedStack(t)
	forEach(t, func(t *testing.T, r harness.Runtime, mode string) {
		ctx := context.Background()
		env := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: stsDownLifetime})
		u1, err := env.Upload(ctx, prefix(env, 0), 2)
		if err != nil {
			t.Fatalf("invoke with STS up: %v", err)
		}
		pid := env.ExtensionPID(harness.ExtensionName)
		exp1, _ := env.Proxy.Expiration(u1.AccessKeyID)

		down := time.Now()
		env.Proxy.SetSTSDown(true)
		time.Sleep(time.Until(exp1) + 200*time.Millisecond)
		u2, err := env.Upload(ctx, prefix(env, 1), 2)
		if err == nil {
			t.Fatalf("invoke after K1 expired with STS down succeeded: %s", u2.Body)
		}
		msg := err.Error()
		t.Logf("function error while STS is down: %.600s", msg)
		for _, want := range stsDownError[r] {
			if !strings.Contains(msg, want) {
				t.Errorf("function error lacks %q: %s", want, msg)
			}
		}
		if h, err := env.Health(ctx); err != nil || h.Roles["default"].LastErrorCode != "ServiceUnavailable" {
			t.Errorf("health while STS is down: %+v, %v; want lastErrorCode ServiceUnavailable", h, err)
		}

		downFor := time.Since(down)
		env.Proxy.SetSTSDown(false)
		up := time.Now()
		calls := env.Proxy.Count(harness.STSDown, time.Time{})
		bound := 2 * (4 + int(downFor/(500*time.Millisecond)))
		t.Logf("STS down %s: %d STS requests (bound %d)", seconds(downFor), calls, bound)
		if calls == 0 || calls > bound {
			t.Errorf("STS requests while down = %d in %s; want 1..%d", calls, seconds(downFor), bound)
		}

		var u3 harness.Upload
		for i := 0; ; i++ {
			if u3, err = env.Upload(ctx, prefix(env, 2+i), 2); err == nil {
				break
			}
			if time.Since(up) > 10*time.Second {
				t.Fatalf("no recovery 10 s after STS came back: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("recovered %s after STS came back", seconds(time.Since(up)))
		if u3.AccessKeyID == u1.AccessKeyID {
			t.Errorf("recovered with the expired key %s", u1.AccessKeyID)
		}
		if now := env.ExtensionPID(harness.ExtensionName); now != pid {
			t.Errorf("extension PID %d → %d: it restarted instead of recovering", pid, now)
		}
		if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
			t.Errorf("proxy answered %d ExpiredToken; want 0", n)
		}
		checkSignedByAssumedRole(t, env)
		checkNoLeaks(t, s, env, readToken(env))
	})
}
