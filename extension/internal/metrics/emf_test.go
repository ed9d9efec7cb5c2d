package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/metrics"
)

// syncBuffer is stdout for the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// emf is one parsed EMF record.
type emf struct {
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

// parseEMF checks every line against the Embedded Metric Format
// specification: the _aws member with a millisecond Timestamp, one
// directive with a namespace, dimension sets naming string members of the
// root, metrics naming number members with a CloudWatch unit.
func parseEMF(t *testing.T, out string) []emf {
	t.Helper()
	units := map[string]bool{"Milliseconds": true, "Seconds": true, "Count": true}
	var recs []emf
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r emf
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if err := json.Unmarshal([]byte(line), &r.root); err != nil {
			t.Fatal(err)
		}
		if r.AWS.Timestamp < 1e12 || len(r.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("bad _aws: %s", line)
		}
		d := r.AWS.CloudWatchMetrics[0]
		if d.Namespace != "Team/Credentials" || len(d.Dimensions) != 1 || len(d.Metrics) == 0 {
			t.Fatalf("bad directive: %s", line)
		}
		for _, name := range d.Dimensions[0] {
			if v, ok := r.root[name].(string); !ok || v == "" {
				t.Errorf("dimension %s has no string value: %s", name, line)
			}
		}
		for _, m := range d.Metrics {
			if _, ok := r.root[m.Name].(float64); !ok || !units[m.Unit] {
				t.Errorf("metric %s (%s) has no number or a bad unit: %s", m.Name, m.Unit, line)
			}
		}
		recs = append(recs, r)
	}
	return recs
}

func (r emf) num(name string) float64 { v, _ := r.root[name].(float64); return v }
func (r emf) str(name string) string  { v, _ := r.root[name].(string); return v }
func (r emf) dims() []string          { return r.AWS.CloudWatchMetrics[0].Dimensions[0] }

// TestEMF: two roles against the fake STS (20 ms per call): a first fetch
// each, a refresh in the window, then a Throttling failure. Nothing is
// written per request nor before a minute has passed; each flush writes one
// record per STS call (its latency, outcome, request id, the lifetime, the
// life left) and one per environment (requests served and waited), whose
// values match the fake's calls and the keepers' counters; SHUTDOWN's flush
// writes even with nothing new; no secret is in any line.
func TestEMF(t *testing.T) {
	clock := ststest.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	fake := ststest.New(t, clock.Now)
	fake.SetDelay(20 * time.Millisecond)
	cfg, err := config.LoadMetrics(func(k string) string {
		return map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "orders", config.EnvMetricsNamespace: "Team/Credentials",
			config.EnvMetricsDimensions: "FunctionName,Role,Team=payments"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	em := metrics.New(cfg, "deferred", out, clock.Now)
	keepers := map[string]*creds.Keeper{}
	for _, name := range []string{"default", "reader"} {
		k := creds.NewKeeper(creds.AssumeRole(fake.Client(1), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/" + name),
			RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(3600)}), func(o *creds.Options) {
			o.Name, o.Now, o.Rand, o.Observe = name, clock.Now, func() float64 { return 0 }, em.Observe
		})
		t.Cleanup(k.Close)
		keepers[name] = k
		em.Count(func() (int64, int64) { h := k.Health(); return h.Served, h.Waited })
	}
	get := func(name string, n int) {
		for range n {
			if _, err := keepers[name].Credentials(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	get("default", 5)
	get("reader", 2)
	em.Tick()
	if out.String() != "" {
		t.Fatalf("written before a minute passed: %s", out)
	}
	clock.Advance(61 * time.Second)
	em.Tick()
	first := parseEMF(t, out.String())
	if len(first) != 3 {
		t.Fatalf("first flush: %d records, want 2 refreshes + 1 environment:\n%s", len(first), out)
	}
	clock.Advance(40 * time.Minute) // into default's refresh window (40 min of age with no jitter)
	get("default", 1)               // deferred: waits for the refresh
	fake.Fail(&ststest.Failure{Status: 400, Code: "Throttling", Message: "Rate exceeded"})
	clock.Advance(time.Hour)
	if _, err := keepers["reader"].Credentials(context.Background()); err == nil {
		t.Fatal("reader served with STS throttling and its credentials expired")
	}
	em.Tick() // more than a minute since the last flush
	em.Flush()
	recs := parseEMF(t, out.String())

	var refreshes, failures, envServed, envWaited, lifeLeft int
	for _, r := range recs {
		if !slices.Contains(r.dims(), "FunctionName") || r.str("FunctionName") != "orders" || r.str("Team") != "payments" {
			t.Errorf("dimensions: %v %v", r.dims(), r.root)
		}
		if r.root[config.MetricRefreshes] == nil { // environment record
			if slices.Contains(r.dims(), "Role") {
				t.Errorf("environment record with a Role: %v", r.root)
			}
			envServed += int(r.num(config.MetricRequestsServed))
			envWaited += int(r.num(config.MetricRequestsWaited))
			continue
		}
		refreshes++
		failures += int(r.num(config.MetricRefreshFailures))
		if r.num(config.MetricSTSLatency) < 20 {
			t.Errorf("STS latency %v ms, below the fake's 20 ms", r.num(config.MetricSTSLatency))
		}
		switch outcome := r.str(config.PropertyOutcome); outcome {
		case "ok":
			if r.num(config.MetricCredentialsLifetime) != 3600 || !strings.HasPrefix(r.str(config.PropertyRequestID), "req-") {
				t.Errorf("ok record: %v", r.root)
			}
		case "Throttling":
			if r.str("Role") != "reader" || r.str(config.PropertyRequestID) != "err" || r.root[config.MetricCredentialsLifetime] != nil {
				t.Errorf("failure record: %v", r.root)
			}
		default:
			t.Errorf("outcome %q", outcome)
		}
		// default's refresh came at 41 min 1 s of age: 18 min 59 s left.
		if left := r.num(config.MetricLifeLeftAtRefresh); left != 0 {
			lifeLeft++
			if r.str("Role") != "default" || left != 1139 {
				t.Errorf("life left at refresh %v s for %s, want 1139 for default", left, r.str("Role"))
			}
		}
	}
	var served, waited int64
	for _, k := range keepers {
		h := k.Health()
		served, waited = served+h.Served, waited+h.Waited
	}
	if refreshes != int(fake.Calls()) || failures != 1 || lifeLeft != 1 || envServed != int(served) || envWaited != int(waited) || envServed != 8 {
		t.Errorf("records: %d refreshes (%d failed), %d served, %d waited; fake STS %d calls, keepers %d served, %d waited",
			refreshes, failures, envServed, envWaited, fake.Calls(), served, waited)
	}
	before := len(recs)
	em.Flush() // SHUTDOWN with nothing new: the environment record alone
	if n := len(parseEMF(t, out.String())); n != before+1 {
		t.Errorf("a flush with nothing new wrote %d records, want 1", n-before)
	}
	for _, c := range fake.Issued() {
		if strings.Contains(out.String(), c.SecretAccessKey) || strings.Contains(out.String(), c.SessionToken) {
			t.Fatal("a secret is in the metrics")
		}
	}
	t.Logf("%d lines, e.g.\n%s", len(recs), strings.SplitN(out.String(), "\n", 2)[0])
}

func TestDisabled(t *testing.T) {
	em := metrics.New(config.Metrics{Enabled: false}, "eager", &syncBuffer{}, time.Now)
	if em != nil {
		t.Fatal("an emitter while disabled")
	}
	em.Observe(creds.Attempt{}) // nil-safe
	em.Count(func() (int64, int64) { return 0, 0 })
	em.Tick()
	em.Flush()
}
