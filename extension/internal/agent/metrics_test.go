package agent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/metrics"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestMetricsAtShutdown: the agent hands every STS call and the request
// counters to the metrics, writes nothing per request, and flushes at
// SHUTDOWN: one record for the fetch and one for the environment with the
// requests served.
func TestMetricsAtShutdown(t *testing.T) {
	h := newHarness(t, config.ModeDeferred)
	out := &lockedBuffer{}
	mcfg, err := config.LoadMetrics(func(k string) string { return map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "f"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	h.start(t, nil, func(o *agent.Options) { o.Metrics = metrics.New(mcfg, "deferred", out, h.clock.Now) })
	h.waitNext(t, 1)
	for range 3 {
		if code, _ := h.get(t, "/v1/credentials"); code != 200 {
			t.Fatal(code)
		}
	}
	if out.String() != "" {
		t.Fatalf("metrics written before SHUTDOWN and before a minute passed: %s", out)
	}
	h.api.Shutdown(time.Now().Add(2 * time.Second))
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines at SHUTDOWN, want 2:\n%s", len(lines), out)
	}
	var fetch, env map[string]any
	if json.Unmarshal([]byte(lines[0]), &fetch) != nil || json.Unmarshal([]byte(lines[1]), &env) != nil {
		t.Fatalf("not JSON:\n%s", out)
	}
	if fetch["Outcome"] != "ok" || fetch["Role"] != "default" || fetch["FunctionName"] != "f" || fetch["_aws"] == nil ||
		env["RequestsServed"] != 3.0 || env["RequestsWaited"] != 1.0 {
		t.Errorf("records:\n%s", out)
	}
}
