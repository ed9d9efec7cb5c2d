package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// freezeLifetime is the credentials' lifetime in scenario 6.
const freezeLifetime = 5 * time.Second

// TestFreeze is scenario 6. Lambda freezes an environment between
// invocations, so no timer runs; RIE does not, so the harness does it:
// SIGSTOP of RIE, the runtime and the extension across the expiry of the
// credentials in use (K1), then SIGCONT and an invoke. Wall-clock checks
// must then notice that K1 expired: the invoke succeeds with a new key, S3
// accepts it (0 ExpiredToken at the proxy), and the extension process is the
// same one.
func TestFreeze(t *testing.T) {
	s := sharedStack(t)
	forEach(t, func(t *testing.T, r harness.Runtime, mode string) {
		ctx := context.Background()
		env := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: freezeLifetime})
		p0 := prefix(env, 0)
		u1, err := env.Upload(ctx, p0, 4)
		if err != nil {
			t.Fatalf("invoke before the freeze: %v", err)
		}
		checkLanded(t, s, p0, u1, 4)
		pid := env.ExtensionPID(harness.ExtensionName)
		exp1, ok := env.Proxy.Expiration(u1.AccessKeyID)
		if !ok {
			t.Fatalf("key %s was not issued by AssumeRole", u1.AccessKeyID)
		}

		if err := env.Freeze(); err != nil {
			t.Fatal(err)
		}
		frozen := time.Now()
		time.Sleep(time.Until(exp1) + 500*time.Millisecond)
		if err := env.Thaw(); err != nil {
			t.Fatal(err)
		}
		t.Logf("frozen %s, across the expiry of %s", seconds(time.Since(frozen)), u1.AccessKeyID)
		thawed := time.Now()

		p1 := prefix(env, 1)
		u2, err := env.Upload(ctx, p1, 4)
		if err != nil {
			t.Fatalf("invoke after the thaw: %v", err)
		}
		checkLanded(t, s, p1, u2, 4)
		exp2, _ := env.Proxy.Expiration(u2.AccessKeyID)
		if u2.AccessKeyID == u1.AccessKeyID || !exp2.After(u2.End) {
			t.Errorf("after the thaw: key %s (expires %v), before: %s (expired %v)", u2.AccessKeyID, exp2, u1.AccessKeyID, exp1)
		}
		if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
			t.Errorf("proxy answered %d ExpiredToken; want 0", n)
		}
		if n := env.Proxy.Count(harness.AssumeRole, thawed); n < 1 {
			t.Errorf("no AssumeRole after the thaw")
		}
		if now := env.ExtensionPID(harness.ExtensionName); now != pid {
			t.Errorf("extension PID %d → %d across the freeze", pid, now)
		}
		checkSignedByAssumedRole(t, env)
	})
}
