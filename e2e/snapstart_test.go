package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// snapStartLifetime is the assumed role's lifetime: lifecycleLifetime,
// because the scenario reuses checkRefreshBounds, whose bounds assume it.
const snapStartLifetime = lifecycleLifetime

// snapStartBaseLifetime is the advertised lifetime of the execution keys
// the credential server hands out; it rotates them at half of it, so the
// extension's STS client sees several base keys per assumed-role lifetime.
const snapStartBaseLifetime = 6 * time.Second

// snapStartFloor is the extension's floor for a 6 s lifetime (15% left):
// what it serves must have more than this left.
const snapStartFloor = snapStartLifetime * 15 / 100

// The execution role is provisioned once per moto, on first use, for the
// SnapStart and neighbour scenarios (role names are fixed).
var (
	execRoleOnce sync.Once
	execRole     *harness.ExecutionRole
	execRoleErr  error
)

func sharedExecutionRole(t *testing.T, s *harness.Stack) *harness.ExecutionRole {
	t.Helper()
	execRoleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		execRole, execRoleErr = s.Moto.ProvisionExecutionRole(ctx, s.Account)
	})
	if execRoleErr != nil {
		t.Fatalf("provision the execution role: %v", execRoleErr)
	}
	return execRole
}

// TestSnapStart is SnapStart-style credential delivery (DESIGN.md §9). On
// SnapStart, Lambda gives the runtime and the extensions the execution
// role's credentials only through AWS_CONTAINER_CREDENTIALS_FULL_URI +
// AWS_CONTAINER_AUTHORIZATION_TOKEN. Here RIE's classic path runs with no
// keys in its environment (so the extension sees AWS_ACCESS_KEY_ID and
// friends present but empty) and with FULL_URI + token pointing at the
// harness's token-checking credential server, which serves the execution
// role's temporary keys and rotates them every 3 s (6 s advertised
// lifetime). The exec wrapper overrides FULL_URI + token for the runtime,
// so the function reads the extension while the extension reads the
// server. Then:
//   - warm invokes for more than 3 assumed-role lifetimes: objects land,
//     every S3 request is signed by an assumed key, 0 ExpiredToken, the
//     AssumeRole count within TestLifecycle's bounds;
//   - every STS request the extension sent was signed by an execution key
//     the server served (the SDK's default chain fell through the empty
//     variables to the container provider), before that key's advertised
//     expiry, and the server refused no request;
//   - a freeze past the expiry of both the assumed credentials and the
//     last execution key; after the thaw, before any INVOKE, a direct GET
//     of /v1/credentials (a function's after-restore hook) returns a new
//     key with more than the floor left, from an AssumeRole signed with an
//     execution key minted after the thaw; the next invoke succeeds;
//   - no served secret, session token or either auth token in any log.
func TestSnapStart(t *testing.T) {
	s := sharedStack(t)
	role := sharedExecutionRole(t, s)
	forEach(t, func(t *testing.T, r harness.Runtime, mode string) {
		ctx := context.Background()
		cs, err := harness.StartCredentialServer(role.Credentials, func(o *harness.CredentialServerOptions) {
			o.Lifetime = snapStartBaseLifetime
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cs.Close)
		env := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: snapStartLifetime, Env: []string{
			"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", // removed from RIE's environment
			"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + cs.URL,
			"AWS_CONTAINER_AUTHORIZATION_TOKEN=" + cs.Token,
			"CREDENTIAL_REFRESH_ROLE_ARN=" + role.ChainedRoleARN,
		}})

		uploads := warmInvokes(t, s, env, lifecycleLifetimes*snapStartLifetime+time.Second)
		checkRefreshBounds(t, env, uploads)
		checkSignedByAssumedRole(t, env)
		checkSignedByServedKeys(t, env, cs)
		checkSnapStartEnvironments(t, env, cs, r)
		last := uploads[len(uploads)-1]

		thawed := freezePastExpiry(t, env, cs)
		c, err := env.FetchCredentials(ctx)
		fetched := time.Now()
		if err != nil {
			t.Fatalf("after-restore GET before any INVOKE: %v", err)
		}
		checkFreshAfterRestore(t, env, cs, c, fetched, thawed)
		if c.AccessKeyID == last.AccessKeyID {
			t.Errorf("after the thaw the extension served %s, the key of the last invoke before the freeze", c.AccessKeyID)
		}

		p := prefix(env, len(uploads))
		u, err := env.Upload(ctx, p, 4)
		if err != nil {
			t.Fatalf("invoke after the restore: %v", err)
		}
		checkLanded(t, s, p, u, 4)
		if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
			t.Errorf("proxy answered %d ExpiredToken; want 0", n)
		}
		checkSignedByAssumedRole(t, env)
		checkSignedByServedKeys(t, env, cs)
		if n := cs.Rejected(); n != 0 {
			t.Errorf("the credential server refused %d requests for a bad token", n)
		}
		t.Logf("credential server served %d execution keys; %d AssumeRole in all", len(cs.Served()), env.Proxy.Count(harness.AssumeRole, time.Time{}))
		checkNoLeaks(t, s, env, readToken(env))
		if leaked := cs.LeakedIn(env.Output()); len(leaked) > 0 {
			t.Errorf("logs contain secrets of the credential server: %v", leaked)
		}
	})
}

// warmInvokes invokes every ~0.3 s for at least d, as TestLifecycle does,
// checking some of the prefixes as the admin.
func warmInvokes(t *testing.T, s *harness.Stack, env *harness.Environment, d time.Duration) []harness.Upload {
	t.Helper()
	ctx := context.Background()
	const count = 4
	var uploads []harness.Upload
	begin := time.Now()
	for i := 0; time.Since(begin) < d; i++ {
		p := prefix(env, i)
		u, err := env.Upload(ctx, p, count)
		if err != nil {
			t.Fatalf("invoke %d (%s after the cold start): %v", i, seconds(time.Since(begin)), err)
		}
		if i < 2 || i%5 == 0 {
			checkLanded(t, s, p, u, count)
		}
		uploads = append(uploads, u)
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("%d warm invokes over %s", len(uploads), seconds(time.Since(begin)))
	return uploads
}

// checkSnapStartEnvironments checks the premise in the processes' own
// environments: the extension has the key variables present but empty (as
// RIE's classic path sets them with no keys in its environment) and the
// credential server's FULL_URI and token; a wrapped runtime has the
// extension's endpoint and token instead, and no key variables.
func checkSnapStartEnvironments(t *testing.T, env *harness.Environment, cs *harness.CredentialServer, r harness.Runtime) {
	t.Helper()
	ext, err := harness.Environ(env.ExtensionPID(harness.ExtensionName))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if v, ok := ext[k]; !ok || v != "" {
			t.Errorf("extension's %s: present %v, empty %v; want present and empty", k, ok, v == "")
		}
	}
	if ext["AWS_CONTAINER_CREDENTIALS_FULL_URI"] != cs.URL || ext["AWS_CONTAINER_AUTHORIZATION_TOKEN"] != cs.Token {
		t.Errorf("extension's FULL_URI %q (or its token) is not the credential server's %q", ext["AWS_CONTAINER_CREDENTIALS_FULL_URI"], cs.URL)
	}
	if r == harness.Go {
		return // no wrapper: credrefresh ignores the inherited FULL_URI
	}
	var pid int
	for _, p := range env.Processes() {
		if strings.Contains(p.Cmdline, "awslambdaric") || strings.Contains(p.Cmdline, "runtime.mjs") {
			pid = p.PID
		}
	}
	rt, err := harness.Environ(pid)
	if err != nil {
		t.Fatalf("runtime process: %v", err)
	}
	want := "http://127.0.0.1:" + strconv.Itoa(env.Port) + "/v1/credentials"
	if rt["AWS_CONTAINER_CREDENTIALS_FULL_URI"] != want || rt["AWS_CONTAINER_AUTHORIZATION_TOKEN"] != readToken(env) {
		t.Errorf("runtime's FULL_URI %q (or its token) is not the extension's %q", rt["AWS_CONTAINER_CREDENTIALS_FULL_URI"], want)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := rt[k]; ok {
			t.Errorf("runtime's environment still has %s after the wrapper", k)
		}
	}
}

// checkSignedByServedKeys checks that every STS request at the proxy was
// signed by an execution key the credential server served, before the
// Expiration it advertised (the proxy only enforces the assumed keys').
func checkSignedByServedKeys(t *testing.T, env *harness.Environment, cs *harness.CredentialServer) {
	t.Helper()
	n, used := 0, map[string]bool{}
	for _, e := range env.Proxy.Events() {
		if e.Service != "sts" {
			continue
		}
		n++
		k, ok := cs.ServedKey(e.Signer)
		switch {
		case !ok:
			t.Errorf("STS %s at %s signed by %q, which the credential server never served", e.Kind, e.Time.Format(time.StampMilli), e.Signer)
		case !e.Time.Before(k.Expiration):
			t.Errorf("STS %s at %s signed by %s, which expired at %s", e.Kind, e.Time.Format(time.StampMilli), e.Signer, k.Expiration.Format(time.StampMilli))
		}
		used[e.Signer] = true
	}
	if n == 0 {
		t.Error("no STS request went through the proxy")
	}
	t.Logf("%d STS requests signed with %d distinct execution keys (of %d served)", n, len(used), len(cs.Served()))
}

// freezePastExpiry freezes the environment until both the latest assumed
// credentials and the latest execution key have expired (+0.5 s), then
// thaws it and returns the time of the thaw.
func freezePastExpiry(t *testing.T, env *harness.Environment, cs *harness.CredentialServer) time.Time {
	t.Helper()
	var until time.Time
	for _, e := range env.Proxy.Events() {
		if e.Kind == harness.AssumeRole && e.Expiration.After(until) {
			until = e.Expiration
		}
	}
	for _, k := range cs.Served() {
		if k.Expiration.After(until) {
			until = k.Expiration
		}
	}
	if err := env.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	time.Sleep(time.Until(until) + 500*time.Millisecond)
	if err := env.Thaw(); err != nil {
		t.Fatal(err)
	}
	t.Logf("frozen %s, past every expiry so far", seconds(time.Since(frozen)))
	return time.Now()
}

// checkFreshAfterRestore checks what the after-restore GET returned: a key
// AssumeRole issued after the thaw, signed with an execution key minted
// after the thaw (the one from before the freeze had expired), with more
// than the floor left.
func checkFreshAfterRestore(t *testing.T, env *harness.Environment, cs *harness.CredentialServer, c harness.ContainerCredentials, fetched, thawed time.Time) {
	t.Helper()
	exp, err := c.Expires()
	if err != nil {
		t.Fatalf("after-restore credentials: %v", err)
	}
	if left := exp.Sub(fetched); left <= snapStartFloor {
		t.Errorf("after-restore credentials %s have %v left; want more than the floor %v", c.AccessKeyID, left, snapStartFloor)
	}
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.SecretAccessKey == "" || c.Token == "" {
		t.Errorf("after-restore credentials %q incomplete (secret %v, token %v)", c.AccessKeyID, c.SecretAccessKey != "", c.Token != "")
	}
	for _, e := range env.Proxy.Events() {
		if e.Kind != harness.AssumeRole || e.AccessKeyID != c.AccessKeyID {
			continue
		}
		k, ok := cs.ServedKey(e.Signer)
		if e.Time.Before(thawed) || !ok || k.Minted.Before(thawed) {
			t.Errorf("after-restore key %s: issued %s (thaw %s), signed by %s minted %s; want both after the thaw",
				c.AccessKeyID, e.Time.Format(time.StampMilli), thawed.Format(time.StampMilli), e.Signer, k.Minted.Format(time.StampMilli))
		}
		t.Logf("after the thaw: %s with %s left, issued %s after the thaw", c.AccessKeyID, seconds(exp.Sub(fetched)), e.Time.Sub(thawed).Round(time.Millisecond))
		return
	}
	t.Errorf("after-restore key %s was not issued by an AssumeRole through the proxy", c.AccessKeyID)
}
