package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// The stack (layer build, Go function build, moto) is shared by every test
// in the package and built on first use; each scenario has its own proxy,
// RIE, ports and token file, so scenarios can run in parallel.
var (
	stackOnce sync.Once
	stack     *harness.Stack
	stackErr  error
	stackDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stack != nil {
		stack.Close()
	}
	if stackDir != "" && code == 0 {
		os.RemoveAll(stackDir)
	} else if stackDir != "" {
		fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", stackDir)
	}
	os.Exit(code)
}

// sharedStack gates the test and returns the shared stack.
func sharedStack(t *testing.T) *harness.Stack {
	t.Helper()
	tools := harness.Gate(t)
	stackOnce.Do(func() {
		// Under /tmp: RIE's mount namespace only replaces /opt, so the
		// extension and the test see the same token files.
		stackDir, stackErr = os.MkdirTemp("", "credential-refresh-e2e-")
		if stackErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stack, stackErr = harness.NewStack(ctx, tools, stackDir, "e2e-bucket")
	})
	if stackErr != nil {
		t.Fatalf("e2e stack: %v", stackErr)
	}
	return stack
}

// start starts an execution environment for t and tears it down after t
// (dumping its output if t failed).
func start(t *testing.T, s *harness.Stack, o harness.Options) *harness.Environment {
	t.Helper()
	o.Name = strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	env, err := s.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Close()
		if t.Failed() {
			t.Logf("RIE output (also in %s):\n%s", env.LogPath, tail(env.Output(), 120))
		}
	})
	return env
}

// forEach runs fn for every runtime (scenarioRuntimes) in both modes, as
// parallel subtests.
func forEach(t *testing.T, fn func(t *testing.T, r harness.Runtime, mode string)) {
	for _, r := range scenarioRuntimes(t) {
		for _, mode := range harness.Modes {
			t.Run(string(r)+"/"+mode, func(t *testing.T) {
				t.Parallel()
				fn(t, r, mode)
			})
		}
	}
}

// prefix makes a flat, unique key prefix for one invocation (moto with auth
// rejects ListObjectsV2 prefixes containing '/').
func prefix(env *harness.Environment, n int) string {
	return fmt.Sprintf("%s-%04d-", env.Opts.Name, n)
}

// checkLanded checks, as the admin, that exactly the keys the function
// reported are in the bucket under the invocation's prefix.
func checkLanded(t *testing.T, s *harness.Stack, p string, u harness.Upload, count int) {
	t.Helper()
	got, err := s.Moto.Keys(context.Background(), s.Account, p)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(u.Keys)
	slices.Sort(got)
	slices.Sort(want)
	if u.Written != count || len(want) != count || !slices.Equal(got, want) {
		t.Errorf("prefix %s: function wrote %d %v, bucket has %v; want %d objects", p, u.Written, want, got, count)
	}
}

// checkSignedByAssumedRole checks that every S3 request through the proxy
// was signed with a key that AssumeRole issued (never the execution user's
// own key) and was accepted.
func checkSignedByAssumedRole(t *testing.T, env *harness.Environment) {
	t.Helper()
	n := 0
	for _, e := range env.Proxy.Events() {
		if e.Service != "s3" {
			continue
		}
		n++
		if _, issued := env.Proxy.Expiration(e.AccessKeyID); !issued || e.Status != 200 {
			t.Errorf("S3 %s %s signed by %s got %s %d; want an assumed-role key and 200", e.Method, e.Path, e.AccessKeyID, e.Kind, e.Status)
		}
	}
	if n == 0 {
		t.Error("no S3 request went through the proxy")
	}
}

// checkNoLeaks checks that no issued secret key or session token, no
// execution-user secret and no auth token appears in any log.
func checkNoLeaks(t *testing.T, s *harness.Stack, env *harness.Environment, token string) {
	t.Helper()
	out := env.Output()
	if ids := env.Proxy.LeakedIn(out); len(ids) > 0 {
		t.Errorf("logs contain the secret or session token of %v", ids)
	}
	if strings.Contains(out, s.Account.User.SecretAccessKey) {
		t.Error("logs contain the execution user's secret key")
	}
	if token != "" && strings.Contains(out, token) {
		t.Error("logs contain the extension's auth token")
	}
}

// readToken reads the extension's token file (empty if there is none).
func readToken(env *harness.Environment) string {
	b, _ := os.ReadFile(env.TokenPath())
	return strings.TrimSpace(string(b))
}

// seconds formats d for logs, e.g. "18.8s".
func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// firstAssumeRole is when the proxy saw the environment's first AssumeRole.
func firstAssumeRole(t *testing.T, env *harness.Environment) time.Time {
	t.Helper()
	for _, e := range env.Proxy.Events() {
		if e.Kind == harness.AssumeRole {
			return e.Time
		}
	}
	t.Fatal("no AssumeRole went through the proxy")
	return time.Time{}
}
