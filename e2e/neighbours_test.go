package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// neighbourValue is what the fake Parameters and Secrets extension serves:
// a stand-in secret that must never reach a log or a response.
const neighbourValue = "e2e-neighbour-parameter-value-not-for-logs"

// The layer with both extensions is built once, on first use.
var (
	neighbourLayerOnce sync.Once
	neighbourLayer     string
	neighbourLayerErr  error
)

// sharedNeighbourLayer builds the fake extension's own layer and merges it
// after ours, as Lambda extracts two layers into /opt.
func sharedNeighbourLayer(t *testing.T, s *harness.Stack) string {
	t.Helper()
	neighbourLayerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		own := filepath.Join(s.Dir, "layer-"+harness.NeighbourName)
		if neighbourLayerErr = harness.BuildNeighbourLayer(ctx, s.Tools.Root, own); neighbourLayerErr != nil {
			return
		}
		neighbourLayer = filepath.Join(s.Dir, "layer-with-"+harness.NeighbourName)
		neighbourLayerErr = harness.MergeLayers(neighbourLayer, s.LayerDir, own)
	})
	if neighbourLayerErr != nil {
		t.Fatalf("neighbour layer: %v", neighbourLayerErr)
	}
	return neighbourLayer
}

// TestNeighbours runs the extension next to another one (DESIGN.md §9): a
// fake AWS Parameters and Secrets extension (e2e/cmd/paramsext) in a second
// layer, which answers 200 only when X-Aws-Parameters-Secrets-Token equals
// AWS_SESSION_TOKEN in its own environment, i.e. Lambda's. The base
// credentials are the execution role's temporary credentials with a real
// session token, which moto checks on the extension's AssumeRole. Then:
//   - the Python and Node functions, behind the exec wrapper, call the
//     neighbour with $AWS_SESSION_TOKEN on a cold and a warm invoke and get
//     200: the wrapper left AWS_SESSION_TOKEN exactly as Lambda set it; the
//     Go function (no wrapper, no such call) checks that both extensions
//     coexist;
//   - negative controls from the test: no header, a wrong token and the
//     access key id get 401 (and the right token 200), so the 200 above
//     means the token matched; the neighbour's log agrees on every count;
//   - S3 was still written with the assumed role (checkSignedByAssumedRole),
//     whose AssumeRole was signed with the execution role's key;
//   - SHUTDOWN ends both extensions cleanly (checkShutdown, and the
//     neighbour logs "shutdown" then "stopped");
//   - no secret in any log: neither the issued ones (checkNoLeaks) nor the
//     execution role's secret or session token, nor the neighbour's value.
func TestNeighbours(t *testing.T) {
	s := sharedStack(t)
	role := sharedExecutionRole(t, s)
	layer := sharedNeighbourLayer(t, s)
	forEach(t, func(t *testing.T, r harness.Runtime, mode string) {
		ctx := context.Background()
		base, err := role.Credentials(ctx, time.Hour) // one session per environment, as in Lambda
		if err != nil {
			t.Fatal(err)
		}
		port, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		env := start(t, s, harness.Options{Runtime: r, Mode: mode, Lifetime: lifecycleLifetime, LayerDir: layer, Env: []string{
			"AWS_ACCESS_KEY_ID=" + base.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=" + base.SecretAccessKey,
			"AWS_SESSION_TOKEN=" + base.SessionToken,
			"CREDENTIAL_REFRESH_ROLE_ARN=" + role.ChainedRoleARN,
			harness.EnvNeighbourPort + "=" + strconv.Itoa(port),
			harness.EnvNeighbourValue + "=" + neighbourValue,
		}})
		url := harness.NeighbourURL(port)

		calls := 0
		for i := range 2 { // cold, then warm
			p := prefix(env, i)
			var u harness.Upload
			if r == harness.Go {
				u, err = env.Upload(ctx, p, 4)
			} else {
				var sc harness.SecretsCall
				u, sc, err = env.UploadCallingSecrets(ctx, p, 4, url)
				calls++
				if err == nil && (sc.Status != 200 || !sc.SessionTokenSet) {
					t.Errorf("invoke %d: the neighbour answered the function %d (AWS_SESSION_TOKEN set: %v); want 200 and set", i, sc.Status, sc.SessionTokenSet)
				}
				if strings.Contains(string(u.Body), neighbourValue) {
					t.Errorf("invoke %d: the function's response holds the neighbour's value", i)
				}
			}
			if err != nil {
				t.Fatalf("invoke %d: %v", i, err)
			}
			checkLanded(t, s, p, u, 4)
		}
		checkNeighbourControls(t, url, base.SessionToken, base.AccessKeyID)
		checkSignedByAssumedRole(t, env)
		for _, e := range env.Proxy.Events() {
			if e.Service == "sts" && e.Signer != base.AccessKeyID {
				t.Errorf("STS %s signed by %s; want the execution role's key %s", e.Kind, e.Signer, base.AccessKeyID)
			}
		}
		if n := env.Proxy.Count(harness.ExpiredToken, time.Time{}); n != 0 {
			t.Errorf("proxy answered %d ExpiredToken; want 0", n)
		}

		token := readToken(env)
		checkShutdown(t, env)
		if got := neighbourMessages(env); !slices.Contains(got, "registered") || !isSubsequence([]string{"shutdown", "stopped"}, got) {
			t.Errorf("neighbour log lacks \"registered\", \"shutdown\" then \"stopped\": %q", got)
		}
		checkNeighbourCounts(t, env, calls)
		checkNoLeaks(t, s, env, token)
		out := env.Output()
		for what, secret := range map[string]string{"execution secret key": base.SecretAccessKey, "execution session token": base.SessionToken, "neighbour's value": neighbourValue} {
			if strings.Contains(out, secret) {
				t.Errorf("logs contain the %s", what)
			}
		}
	})
}

// checkNeighbourControls calls the neighbour from the test: no header, a
// wrong token and the access key id must get 401, the session token 200.
func checkNeighbourControls(t *testing.T, url, sessionToken, keyID string) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct {
		what, token string
		want        int
	}{
		{"no header", "", 401},
		{"a wrong token", "not-" + sessionToken, 401},
		{"the access key id", keyID, 401},
		{"the session token", sessionToken, 200},
	} {
		if got, err := harness.CallNeighbour(ctx, url, c.token); err != nil || got != c.want {
			t.Errorf("neighbour with %s: HTTP %d, %v; want %d", c.what, got, err, c.want)
		}
	}
}

// checkNeighbourCounts checks the neighbour's own log: exactly the
// function's calls plus the test's one right token were served, and the
// test's three controls refused. Call it after RIE exited, when its output
// has been read to the end.
func checkNeighbourCounts(t *testing.T, env *harness.Environment, functionCalls int) {
	t.Helper()
	ok, refused := 0, 0
	for _, r := range env.NeighbourLogs() {
		if r.Msg() != "request" {
			continue
		}
		switch r.Fields["status"] {
		case 200.0:
			ok++
		case 401.0:
			refused++
		}
	}
	if ok != functionCalls+1 || refused != 3 {
		t.Errorf("neighbour logged %d served and %d refused requests; want %d and 3", ok, refused, functionCalls+1)
	}
}

func neighbourMessages(env *harness.Environment) []string {
	var out []string
	for _, r := range env.NeighbourLogs() {
		out = append(out, r.Msg())
	}
	return out
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
