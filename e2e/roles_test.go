package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// The named-roles account (two roles, two buckets, an execution user that
// may assume both), provisioned once next to the stack's own.
var (
	rolesOnce    sync.Once
	rolesAccount *harness.RolesAccount
	rolesErr     error
)

var roleNames = []string{"audit", "reports"}

// rolesLifetime: short, so that the scenario spans several refreshes of
// both roles.
const rolesLifetime = 6 * time.Second

// rolesInvocation is a named-roles function's answer.
type rolesInvocation struct {
	Runtime      string              `json:"runtime"`
	Written      map[string]int      `json:"written"`
	Keys         map[string][]string `json:"keys"`
	AccessKeyIDs map[string]string   `json:"accessKeyIds"`
}

// TestNamedRoles runs a Python and a Node function that write, in every
// invoke, with two named roles to two buckets, each bucket writable by only
// one of the roles (ProvisionRoles checks that premise with moto's auth on).
// They use the in-layer helpers: credential_refresh.session(role) (Python)
// and fromCredentialRefresh({ role }) imported from the layer as an ES module
// (Node), with no install: /opt/python and /opt/nodejs/node_modules come
// from the layer, and the Node SDK from NODE_PATH, as the runtime's bundle
// does. Deferred mode runs without the exec wrapper (the helpers need
// none), eager mode with it.
//
// Over more than two lifetimes (invokes every ~0.35 s): every object lands
// in its bucket (listed as the admin); every S3 request went through the
// proxy with 200 and a key AssumeRole issued; the keys used on the two
// buckets are disjoint (each bucket accepts only its role's keys, so each
// key is its role's); both roles were refreshed (≥ 2 keys each) with 0
// ExpiredToken; the extension's /v1/health shows one STS call per refresh
// for each role, and in eager mode no request waited.
func TestNamedRoles(t *testing.T) {
	s := sharedStack(t)
	rolesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rolesAccount, rolesErr = s.Moto.ProvisionRoles(ctx, s.Account.Admin, "e2e-roles", roleNames...)
	})
	if rolesErr != nil {
		t.Fatalf("provision the named roles: %v", rolesErr)
	}
	acct := rolesAccount
	for _, r := range []harness.Runtime{harness.PythonRoles, harness.NodeRoles} {
		for _, mode := range harness.Modes {
			t.Run(string(r)+"/"+mode, func(t *testing.T) {
				t.Parallel()
				namedRoles(t, s, acct, r, mode)
			})
		}
	}
}

func namedRoles(t *testing.T, s *harness.Stack, acct *harness.RolesAccount, r harness.Runtime, mode string) {
	ctx := context.Background()
	env := []string{
		"CREDENTIAL_REFRESH_ROLE_ARN=", // no default role: named roles only
		"CREDENTIAL_REFRESH_ROLES=" + acct.RolesJSON(),
		"AWS_ACCESS_KEY_ID=" + acct.User.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + acct.User.SecretAccessKey,
		// What the Python and Node runtimes put on their paths; the example's
		// node_modules plays the SDK bundled in /var/runtime/node_modules.
		"PYTHONPATH=/opt/python",
		"NODE_PATH=/opt/nodejs/node_modules:" + filepath.Join(s.Tools.Root, "examples", "node", "node_modules"),
	}
	if mode == "deferred" {
		env = append(env, "AWS_LAMBDA_EXEC_WRAPPER=") // the helpers need no wrapper
	}
	e := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: rolesLifetime, Env: env})
	buckets := map[string]string{}
	for name, role := range acct.Roles {
		buckets[name] = role.Bucket
	}
	const count = 4
	var answers []rolesInvocation
	begin := time.Now()
	for i := 0; time.Since(begin) < 2*rolesLifetime+time.Second; i++ {
		p := prefix(e, i)
		payload, _ := json.Marshal(map[string]any{"buckets": buckets, "prefix": p, "count": count})
		inv, err := e.Invoke(ctx, payload)
		if err != nil {
			t.Fatal(err)
		}
		var a rolesInvocation
		if fe := inv.Error(); fe != nil {
			t.Fatalf("invoke %d: function error %s: %s", i, fe.ErrorType, fe.ErrorMessage)
		}
		if err := json.Unmarshal(inv.Body, &a); err != nil || a.Runtime != string(r) {
			t.Fatalf("invoke %d: unexpected answer (HTTP %d): %.500s", i, inv.Status, inv.Body)
		}
		if i < 2 || i%10 == 0 {
			for name, bucket := range buckets {
				got, err := s.Moto.KeysIn(ctx, s.Account.Admin, bucket, p)
				slices.Sort(got)
				want := slices.Sorted(slices.Values(a.Keys[name]))
				if err != nil || a.Written[name] != count || !slices.Equal(got, want) {
					t.Errorf("invoke %d, role %s: function wrote %d %v, bucket %s has %v (%v)", i, name, a.Written[name], want, bucket, got, err)
				}
			}
		}
		answers = append(answers, a)
		time.Sleep(300 * time.Millisecond)
	}

	// Which keys signed the S3 requests to each bucket.
	used := map[string]map[string]bool{}
	for name := range buckets {
		used[name] = map[string]bool{}
	}
	for _, ev := range e.Proxy.Events() {
		if ev.Service != "s3" {
			continue
		}
		if _, issued := e.Proxy.Expiration(ev.AccessKeyID); !issued || ev.Status != 200 {
			t.Errorf("S3 %s %s signed by %s got %s %d; want an assumed-role key and 200", ev.Method, ev.Path, ev.AccessKeyID, ev.Kind, ev.Status)
		}
		for name, bucket := range buckets {
			if strings.HasPrefix(ev.Path, "/"+bucket+"/") {
				used[name][ev.AccessKeyID] = true
			}
		}
	}
	for _, name := range roleNames {
		other := roleNames[(slices.Index(roleNames, name)+1)%len(roleNames)]
		for k := range used[name] {
			if used[other][k] {
				t.Errorf("key %s signed writes to both %s's and %s's buckets", k, name, other)
			}
		}
		if len(used[name]) < 2 {
			t.Errorf("role %s: %d keys used over %s with %v credentials; want a refresh (≥ 2)", name, len(used[name]), seconds(time.Since(begin)), rolesLifetime)
		}
		for i, a := range answers {
			if k := a.AccessKeyIDs[name]; !strings.HasPrefix(k, "ASIA") || used[other][k] {
				t.Errorf("invoke %d reported key %q for role %s", i, k, name)
			}
		}
	}
	t.Logf("%d invokes over %s: keys per role %s", len(answers), seconds(time.Since(begin)), keyCounts(used))
	if n := e.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
		t.Errorf("proxy answered %d ExpiredToken; want 0", n)
	}
	h, err := e.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, name := range roleNames {
		rh, ok := h.Roles[name]
		if !ok {
			t.Fatalf("health has no role %s: %+v", name, h)
		}
		calls += rh.STSCalls
		if rh.STSFailures != 0 || (mode == "eager" && rh.Waited != 0) {
			t.Errorf("role %s: health %+v; want no STS failure (and no request waiting, in eager mode)", name, rh)
		}
	}
	if n := e.Proxy.Count(harness.AssumeRole, time.Time{}); n != calls {
		t.Errorf("the extension reports %d STS calls, the proxy saw %d AssumeRole", calls, n)
	}
	token := readToken(e)
	checkShutdown(t, e)
	checkNoLeaks(t, s, e, token)
}

func keyCounts(used map[string]map[string]bool) string {
	var parts []string
	for _, name := range roleNames {
		parts = append(parts, fmt.Sprintf("%s %d", name, len(used[name])))
	}
	return strings.Join(parts, ", ")
}
