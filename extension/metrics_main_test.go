package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi/extapitest"
)

// TestMetricsConfigErrorsJoinLoads: a bad metrics variable is reported in
// the same Extension.ConfigInvalid as the other variables' problems, each
// named; with a good configuration the metrics reach stdout at SHUTDOWN.
func TestMetricsConfigErrorsJoinLoads(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	for _, tc := range []struct {
		name string
		env  map[string]string
		code int
	}{
		{"bad", map[string]string{"CREDENTIAL_REFRESH_ROLE_ARN": "arn:nope", "CREDENTIAL_REFRESH_METRICS": "sometimes",
			"CREDENTIAL_REFRESH_METRICS_DIMENSIONS": "Region"}, 1},
		{"good", map[string]string{"CREDENTIAL_REFRESH_ROLE_ARN": "arn:aws:iam::123456789012:role/t",
			"CREDENTIAL_REFRESH_METRICS_NAMESPACE": "Team/Creds"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := extapitest.New(t)
			env := map[string]string{"AWS_LAMBDA_RUNTIME_API": api.Addr(), "AWS_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "f",
				"CREDENTIAL_REFRESH_PORT": freePort(t), "CREDENTIAL_REFRESH_TOKEN_FILE": filepath.Join(t.TempDir(), "token")}
			for k, v := range tc.env {
				env[k] = v
			}
			var out bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(context.Background(), func(k string) string { return env[k] }, &out, "credential-refresh")
			}()
			if tc.code == 0 {
				for n, _ := api.NextCalls(); n == 0; n, _ = api.NextCalls() {
					time.Sleep(5 * time.Millisecond)
				}
				api.Shutdown(time.Now().Add(2 * time.Second))
			}
			if code := <-done; code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			if tc.code == 1 {
				reps := api.Reports()
				if len(reps) != 1 || reps[0].ErrorType != "Extension.ConfigInvalid" {
					t.Fatalf("reports %+v", reps)
				}
				for _, v := range []string{"CREDENTIAL_REFRESH_ROLE_ARN", "CREDENTIAL_REFRESH_METRICS:", "CREDENTIAL_REFRESH_METRICS_DIMENSIONS"} {
					if !strings.Contains(reps[0].Message, v) {
						t.Errorf("the init error does not name %s: %s", v, reps[0].Message)
					}
				}
				return
			}
			if !strings.Contains(out.String(), `"Namespace":"Team/Creds"`) || !strings.Contains(out.String(), `"RequestsServed":0`) {
				t.Errorf("no EMF record at SHUTDOWN:\n%s", out.String())
			}
		})
	}
}
