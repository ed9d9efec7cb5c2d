package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
)

// metricsLifetime: short credentials, so that the run holds refreshes, not
// only a first fetch.
const metricsLifetime = 6 * time.Second

// emfRecord is one line of RIE's output in the Embedded Metric Format.
type emfRecord struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
	root map[string]any
}

// emfRecords reads the EMF lines of out (those with an "_aws" member).
func emfRecords(t *testing.T, out string) []emfRecord {
	t.Helper()
	var recs []emfRecord
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"_aws"`) {
			continue
		}
		var r emfRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("an EMF line is not JSON: %q", line)
		}
		_ = json.Unmarshal([]byte(line), &r.root)
		recs = append(recs, r)
	}
	return recs
}

// TestMetrics is scenario 13, CloudWatch metrics in the Embedded Metric
// Format, read from RIE's output as Lambda would ship it to CloudWatch: a
// Go function invoked across more than two 6 s lifetimes, with a namespace
// and dimensions of its own (FunctionName, Role, Mode and a fixed
// Suite=e2e), then SHUTDOWN, in both modes. Every EMF line is valid (one
// directive in the namespace, its dimensions and metrics present, the
// units CloudWatch knows); nothing was written before SHUTDOWN (the run is
// shorter than the one-minute flush); there is one record per AssumeRole
// the proxy saw, each ok with STS's latency, its request id and the
// credentials' lifetime (5-6 s at arrival), and one per environment whose requests served and waited are
// /v1/health's; no secret or token is in the output. With
// CREDENTIAL_REFRESH_METRICS=false no EMF line appears.
func TestMetrics(t *testing.T) {
	s := sharedStack(t)
	for _, mode := range harness.Modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			env := start(t, s, harness.Options{Runtime: harness.Go, Mode: mode, Lifetime: metricsLifetime, Env: []string{
				"CREDENTIAL_REFRESH_METRICS_NAMESPACE=E2E/CredentialRefresh",
				"CREDENTIAL_REFRESH_METRICS_DIMENSIONS=FunctionName,Role,Mode,Suite=e2e"}})
			begin := time.Now()
			invokeFor(t, env, 2*metricsLifetime+2*time.Second)
			if recs := emfRecords(t, env.Output()); len(recs) != 0 {
				t.Errorf("%d EMF records before SHUTDOWN in a run shorter than a minute", len(recs))
			}
			health, err := env.Health(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			token := readToken(env)
			checkShutdown(t, env)
			recs := emfRecords(t, env.Output())
			checkEMF(t, env, recs, begin, mode)
			def := health.Roles["default"]
			var refreshes, served, waited int
			for _, r := range recs {
				if r.root["Refreshes"] != nil {
					refreshes++
					// The lifetime is what the credentials had left when they
					// arrived, their expiry cut to whole seconds.
					lifetime, _ := r.root["CredentialsLifetime"].(float64)
					id, _ := r.root["RequestId"].(string)
					if r.root["Outcome"] != "ok" || lifetime <= metricsLifetime.Seconds()-1.5 || lifetime > metricsLifetime.Seconds() ||
						r.root["STSLatency"].(float64) <= 0 || id == "" {
						t.Errorf("refresh record: %v", r.root)
					}
					continue
				}
				served += int(r.root["RequestsServed"].(float64))
				waited += int(r.root["RequestsWaited"].(float64))
			}
			n := env.Proxy.Count(harness.AssumeRole, time.Time{})
			t.Logf("%d EMF records: %d refreshes (proxy: %d AssumeRole), %d requests served, %d waited (health: %d, %d)",
				len(recs), refreshes, n, served, waited, def.Served, def.Waited)
			if refreshes != n || refreshes < 3 || served != def.Served || waited != def.Waited {
				t.Errorf("records disagree: %d refreshes for %d AssumeRole (want ≥ 3), served %d/%d, waited %d/%d",
					refreshes, n, served, def.Served, waited, def.Waited)
			}
			checkNoLeaks(t, s, env, token)
		})
	}
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		env := start(t, s, harness.Options{Runtime: harness.Go, Mode: "deferred", Lifetime: metricsLifetime,
			Env: []string{"CREDENTIAL_REFRESH_METRICS=false"}})
		invokeFor(t, env, time.Second)
		checkShutdown(t, env)
		if recs := emfRecords(t, env.Output()); len(recs) != 0 {
			t.Errorf("%d EMF records with CREDENTIAL_REFRESH_METRICS=false", len(recs))
		}
	})
}

// invokeFor invokes env's function for d, one invoke at a time.
func invokeFor(t *testing.T, env *harness.Environment, d time.Duration) {
	t.Helper()
	for i, begin := 0, time.Now(); time.Since(begin) < d; i++ {
		if _, err := env.Upload(context.Background(), prefix(env, i), 1); err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkEMF checks each record against the Embedded Metric Format and the
// configuration.
func checkEMF(t *testing.T, env *harness.Environment, recs []emfRecord, begin time.Time, mode string) {
	t.Helper()
	units := map[string]bool{"Milliseconds": true, "Seconds": true, "Count": true}
	for _, r := range recs {
		at := time.UnixMilli(r.AWS.Timestamp)
		if len(r.AWS.CloudWatchMetrics) != 1 || at.Before(begin.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("_aws %+v (timestamp %s)", r.AWS, at)
			continue
		}
		d := r.AWS.CloudWatchMetrics[0]
		wantDims := []string{"FunctionName", "Role", "Mode", "Suite"}
		if r.root["Refreshes"] == nil {
			wantDims = []string{"FunctionName", "Mode", "Suite"} // per environment: no Role
		}
		if d.Namespace != "E2E/CredentialRefresh" || len(d.Dimensions) != 1 || !slices.Equal(d.Dimensions[0], wantDims) {
			t.Errorf("directive %+v, want namespace E2E/CredentialRefresh and dimensions %v", d, wantDims)
		}
		want := map[string]string{"FunctionName": "e2e-" + env.Opts.Name, "Mode": mode, "Suite": "e2e"}
		if r.root["Refreshes"] != nil {
			want["Role"] = "default"
		}
		for k, v := range want {
			if r.root[k] != v {
				t.Errorf("dimension %s = %v, want %q", k, r.root[k], v)
			}
		}
		for _, m := range d.Metrics {
			if _, ok := r.root[m.Name].(float64); !ok || !units[m.Unit] {
				t.Errorf("metric %s (%s): %v", m.Name, m.Unit, r.root[m.Name])
			}
		}
	}
}
