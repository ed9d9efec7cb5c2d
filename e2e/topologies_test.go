package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// topologyLifetime is the credentials' lifetime in scenarios 10 and 11.
const topologyLifetime = 6 * time.Second

var (
	chainOnce sync.Once
	chainErr  error
	chain     *harness.Chain
)

// sharedChain provisions the hub/spoke chain in the shared moto once.
func sharedChain(t *testing.T, s *harness.Stack) *harness.Chain {
	t.Helper()
	chainOnce.Do(func() {
		chain, chainErr = s.Moto.ProvisionChain(context.Background(), s.Account, "e2e-spoke-bucket")
	})
	if chainErr != nil {
		t.Fatalf("provision the chain: %v", chainErr)
	}
	return chain
}

// TestRoleChain is scenario 10: the cross-account pattern. The function
// uses the spoke (CREDENTIAL_REFRESH_CLIENT_ROLE=spoke), whose only trusted
// principal is the hub; the execution user may assume only the hub; only
// the spoke may write the bucket. Over > 3 lifetimes of warm invokes:
// objects land, 0 ExpiredToken, every hub AssumeRole is signed by the
// execution user's key and every spoke AssumeRole by a hub key, and
// GET /v1/identity/spoke names the spoke's assumed-role session.
func TestRoleChain(t *testing.T) {
	s := sharedStack(t)
	c := sharedChain(t, s)
	roles := `{"hub":{"RoleArn":"` + c.HubARN + `","RoleSessionName":"` + c.HubSession + `"},` +
		`"spoke":{"RoleArn":"` + c.SpokeARN + `","SourceRole":"hub"}}`
	for _, r := range []harness.Runtime{harness.Python, harness.Go} {
		for _, mode := range harness.Modes {
			t.Run(string(r)+"/"+mode, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				env := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: topologyLifetime, Env: []string{
					"CREDENTIAL_REFRESH_ROLE_ARN=", "CREDENTIAL_REFRESH_ROLES=" + roles, "CREDENTIAL_REFRESH_CLIENT_ROLE=spoke"}})
				begin := time.Now()
				n := 0
				for ; time.Since(begin) < 3*topologyLifetime+time.Second; n++ {
					p := prefix(env, n)
					_, err := env.UploadTo(ctx, c.SpokeBucket, p, 4)
					if err != nil {
						t.Fatalf("invoke %d: %v", n, err)
					}
					if n%10 == 0 {
						if keys, err := s.Moto.KeysIn(ctx, s.Account.Admin, c.SpokeBucket, p); err != nil || len(keys) != 4 {
							t.Errorf("invoke %d: %v %v; want 4 objects in the spoke's bucket", n, keys, err)
						}
					}
					time.Sleep(300 * time.Millisecond)
				}
				checkChainSigners(t, env, s.Account.User.AccessKeyID)
				body, status, err := env.Get(ctx, "/v1/identity/spoke")
				var id struct{ Account, Arn, UserId string }
				if err != nil || status != 200 || json.Unmarshal(body, &id) != nil ||
					!strings.HasPrefix(id.Arn, "arn:aws:sts::123456789012:assumed-role/e2e-spoke/") {
					t.Errorf("GET /v1/identity/spoke: %d %s %v; want the spoke's assumed-role ARN", status, body, err)
				}
				t.Logf("%d invokes over %s; identity of spoke: %s", n, seconds(time.Since(begin)), id.Arn)
				token := readToken(env)
				checkShutdown(t, env)
				checkNoLeaks(t, s, env, token)
			})
		}
	}
}

// checkChainSigners: 0 ExpiredToken; the hub's keys are signed by the user,
// the spoke's by a hub key; S3 saw only spoke keys.
func checkChainSigners(t *testing.T, env *harness.Environment, userKey string) {
	t.Helper()
	if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
		t.Errorf("proxy answered %d ExpiredToken; want 0", n)
	}
	hubKeys := map[string]bool{}
	var hub, spoke int
	for _, e := range env.Proxy.Events() {
		if e.Kind != harness.AssumeRole {
			continue
		}
		switch {
		case e.Signer == userKey:
			hub++
			hubKeys[e.AccessKeyID] = true
		case hubKeys[e.Signer]:
			spoke++
		default:
			t.Errorf("AssumeRole signed by %s: neither the user nor a hub key", e.Signer)
		}
	}
	for _, e := range env.Proxy.Events() {
		if e.Service == "s3" && (hubKeys[e.AccessKeyID] || e.AccessKeyID == userKey || e.Status != 200) {
			t.Errorf("S3 %s %s signed by %s got %d; want spoke keys only", e.Method, e.Path, e.AccessKeyID, e.Status)
		}
	}
	t.Logf("AssumeRole: %d hub (signed by the user), %d spoke (signed by a hub key)", hub, spoke)
	if hub < 2 || spoke < 3 {
		t.Errorf("hub %d, spoke %d AssumeRole calls; want refreshes of both over > 3 lifetimes", hub, spoke)
	}
}

var (
	stsProcessOnce sync.Once
	stsProcessBin  string
	stsProcessErr  error
)

// TestCredentialProcessRole is scenario 11: the function's role comes from
// a credential process, e2e/cmd/stsprocess, which itself assumes the
// target role in moto through the proxy with keys from a file (a vendor
// broker in another layer would do the same with its own secrets). The
// Python function uses it through the wrapper with no code: objects land
// over > 3 lifetimes, 0 ExpiredToken, and /v1/health names the source.
func TestCredentialProcessRole(t *testing.T) {
	s := sharedStack(t)
	stsProcessOnce.Do(func() {
		stsProcessBin = filepath.Join(filepath.Dir(s.LayerDir), "tools", "stsprocess")
		stsProcessErr = harness.BuildTool(context.Background(), s.Tools.Root, "./e2e/cmd/stsprocess", stsProcessBin)
	})
	if stsProcessErr != nil {
		t.Fatal(stsProcessErr)
	}
	for _, mode := range harness.Modes {
		t.Run("python/"+mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			keys := filepath.Join(t.TempDir(), "keys")
			if err := os.WriteFile(keys, []byte(s.Account.User.AccessKeyID+" "+s.Account.User.SecretAccessKey), 0o600); err != nil {
				t.Fatal(err)
			}
			argv, _ := json.Marshal([]string{stsProcessBin, "-endpoint", harness.ProxyURLPlaceholder, "-role-arn", s.Account.RoleARN,
				"-duration", topologyLifetime.String(), "-keys", keys})
			env := start(t, s, harness.Options{Runtime: harness.Python, Mode: mode, Lifetime: topologyLifetime, Env: []string{
				"CREDENTIAL_REFRESH_ROLE_ARN=", "CREDENTIAL_REFRESH_DURATION_SECONDS=",
				`CREDENTIAL_REFRESH_ASSUME_ROLE={"CredentialProcess":` + string(argv) + `}`}})
			begin := time.Now()
			var uploads []harness.Upload
			for n := 0; time.Since(begin) < 3*topologyLifetime+time.Second; n++ {
				u, err := env.Upload(ctx, prefix(env, n), 4)
				if err != nil {
					t.Fatalf("invoke %d: %v", n, err)
				}
				uploads = append(uploads, u)
				time.Sleep(300 * time.Millisecond)
			}
			checkRefreshBounds(t, env, uploads)
			checkSignedByAssumedRole(t, env)
			h, err := env.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if src := h.Roles["default"].Source; src != "credential process "+stsProcessBin {
				t.Errorf("health source %q", src)
			}
			t.Logf("%d invokes over %s, %d credential process runs", len(uploads), seconds(time.Since(begin)), h.Roles["default"].STSCalls)
			token := readToken(env)
			checkShutdown(t, env)
			checkNoLeaks(t, s, env, token)
		})
	}
}

// TestForcedRefreshAfterRevocation is scenario 12, the revoke-sessions
// runbook: IAM's "revoke active sessions" denies every session issued
// before now (moto does not enforce aws:TokenIssueTime, so the proxy plays
// that deny). The credentials the extension holds keep failing until they
// age out, unless forced: POST /v1/credentials/default/refresh answers the
// new expiry and key id (never the secret), a second POST at once gets 429
// with Retry-After, the next GET /v1/credentials serves the new key and S3
// accepts it. The function's own SDK may still hold the revoked key in its
// cache: botocore (Python) refetches on every call for credentials this
// short-lived, so its next invoke succeeds; Go's credrefresh and JS v3 keep
// theirs for part of the lifetime (the README's runbook says what to do).
func TestForcedRefreshAfterRevocation(t *testing.T) {
	s := sharedStack(t)
	for _, r := range harness.Runtimes {
		t.Run(string(r), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := start(t, s, harness.Options{Runtime: r, Mode: "deferred", Lifetime: time.Minute})
			u1, err := env.Upload(ctx, prefix(env, 0), 2)
			if err != nil {
				t.Fatal(err)
			}
			env.Proxy.RevokeSessions(time.Now())
			if _, err := env.Upload(ctx, prefix(env, 1), 2); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
				t.Fatalf("invoke after the revocation: %v; want AccessDenied", err)
			}
			body, status, _, err := env.Post(ctx, "/v1/credentials/default/refresh")
			var got struct{ Expiration, AccessKeyId string }
			if err != nil || status != 200 || json.Unmarshal(body, &got) != nil || got.AccessKeyId == u1.AccessKeyID ||
				!strings.HasSuffix(got.Expiration, "Z") {
				t.Fatalf("POST refresh: %d %s %v", status, body, err)
			}
			if ids := env.Proxy.LeakedIn(string(body)); len(ids) > 0 {
				t.Errorf("the refresh answer holds secrets of %v", ids)
			}
			_, status, retry, _ := env.Post(ctx, "/v1/credentials/default/refresh")
			if status != 429 || retry == "" {
				t.Errorf("second POST at once: %d, Retry-After %q; want 429 with Retry-After", status, retry)
			}
			body, _, err = env.Get(ctx, "/v1/credentials")
			var served struct{ AccessKeyId, SecretAccessKey, Token string }
			if err != nil || json.Unmarshal(body, &served) != nil || served.AccessKeyId != got.AccessKeyId {
				t.Fatalf("GET after the refresh: %v, key %s; want %s", err, served.AccessKeyId, got.AccessKeyId)
			}
			if err := env.PutObject(ctx, aws.Credentials{AccessKeyID: served.AccessKeyId, SecretAccessKey: served.SecretAccessKey,
				SessionToken: served.Token}, prefix(env, 2)+"direct"); err != nil {
				t.Fatalf("S3 with the refreshed key: %v", err)
			}
			if r == harness.Python {
				if u3, err := env.Upload(ctx, prefix(env, 3), 2); err != nil || u3.AccessKeyID != got.AccessKeyId {
					t.Fatalf("invoke after the forced refresh: %v with %s; want success with %s", err, u3.AccessKeyID, got.AccessKeyId)
				}
			}
			if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
				t.Errorf("%d ExpiredToken", n)
			}
			t.Logf("revoked %s; forced refresh to %s (expires %s) served next and accepted by S3", u1.AccessKeyID, got.AccessKeyId, got.Expiration)
		})
	}
}
