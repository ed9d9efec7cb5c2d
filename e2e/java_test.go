package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// javaScenarios are the tests that also run the Java function (examples/java,
// the AWS SDK for Java v2's default chain through the exec wrapper, under the
// java21 stand-in runtime): scenarios 1, 2 and 5 (TestLifecycle), 4
// (TestSTSDown) and 6 (TestFreeze), in both modes.
var javaScenarios = []string{"TestLifecycle", "TestSTSDown", "TestFreeze"}

// scenarioRuntimes is what forEach runs t for: every runtime, and Java too
// where t is one of javaScenarios.
func scenarioRuntimes(t *testing.T) []harness.Runtime {
	if slices.Contains(javaScenarios, t.Name()) {
		return append(slices.Clone(harness.Runtimes), harness.Java)
	}
	return harness.Runtimes
}

func init() {
	// The Java SDK's ContainerCredentialsProvider, once it is the chain's
	// provider, reports a failed fetch without the endpoint's body, so the
	// 503's ServiceUnavailable is checked through /v1/health (as for Node).
	stsDownError[harness.Java] = []string{"SdkClientException", "Failed to load credentials from metadata service"}
}

// TestJavaStartup measures the Java function under RIE through the exec
// wrapper, in eager mode: the cold start (the first invoke: RIE starts the
// extension, then the JVM with the runtime interface client, the handler's
// class init builds the S3 client, and the invoke writes 8 objects) and
// warm invokes (8 objects each). The bounds are loose (a shared 2-core
// machine); the figures are logged for the README.
func TestJavaStartup(t *testing.T) {
	s := sharedStack(t)
	t.Parallel()
	ctx := context.Background()
	env := start(t, s, harness.Options{Runtime: harness.Java, Mode: "eager", Lifetime: time.Minute})
	cold, err := env.Upload(ctx, prefix(env, 0), 8)
	if err != nil {
		t.Fatalf("cold invoke: %v", err)
	}
	checkLanded(t, s, prefix(env, 0), cold, 8)
	var warm []time.Duration
	for i := 1; i <= 20; i++ {
		u, err := env.Upload(ctx, prefix(env, i), 8)
		if err != nil {
			t.Fatalf("warm invoke %d: %v", i, err)
		}
		warm = append(warm, u.End.Sub(u.Start))
	}
	slices.Sort(warm)
	coldTook := cold.End.Sub(cold.Start)
	t.Logf("Java cold start (first invoke, 8 objects): %v; warm invokes (8 objects): p50 %v, min %v, max %v over %d",
		coldTook.Round(time.Millisecond), warm[len(warm)/2].Round(time.Millisecond), warm[0].Round(time.Millisecond),
		warm[len(warm)-1].Round(time.Millisecond), len(warm))
	if coldTook > 20*time.Second || warm[len(warm)/2] > 2*time.Second {
		t.Errorf("cold %v, warm p50 %v: far beyond what this machine gives (seconds, and tens of milliseconds)", coldTook, warm[len(warm)/2])
	}
	checkSignedByAssumedRole(t, env)
}
