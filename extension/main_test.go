package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi/extapitest"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestRunExitCodes(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cases := []struct {
		name     string
		env      map[string]string
		code     int
		report   string
		logsHave string
	}{
		{"bad config", map[string]string{"CREDENTIAL_REFRESH_ROLE_ARN": "arn:nope"}, 1, "Extension.ConfigInvalid", "CREDENTIAL_REFRESH_ROLE_ARN: "},
		{"good config", map[string]string{"CREDENTIAL_REFRESH_ROLE_ARN": "arn:aws:iam::123456789012:role/t"}, 0, "", "extension started"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := extapitest.New(t)
			env := map[string]string{"AWS_LAMBDA_RUNTIME_API": api.Addr(), "AWS_REGION": "us-east-1",
				"CREDENTIAL_REFRESH_PORT": freePort(t), "AWS_LAMBDA_LOG_FORMAT": "JSON",
				"CREDENTIAL_REFRESH_TOKEN_FILE": filepath.Join(t.TempDir(), "token")}
			for k, v := range tc.env {
				env[k] = v
			}
			var out bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(context.Background(), func(k string) string { return env[k] }, &out, "/opt/extensions/credential-refresh")
			}()
			if tc.code == 0 {
				deadline := time.Now().Add(5 * time.Second)
				for n, _ := api.NextCalls(); n == 0 && time.Now().Before(deadline); n, _ = api.NextCalls() {
					time.Sleep(5 * time.Millisecond)
				}
				if _, err := os.Stat(env["CREDENTIAL_REFRESH_TOKEN_FILE"]); err != nil {
					t.Errorf("token file: %v", err)
				}
				api.Shutdown(time.Now().Add(2 * time.Second))
			}
			select {
			case code := <-done:
				if code != tc.code {
					t.Errorf("exit code %d, want %d; logs:\n%s", code, tc.code, out.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return")
			}
			if name, _, _ := api.Registered(); name != "credential-refresh" {
				t.Errorf("registered as %q, want the executable's base name", name)
			}
			reps := api.Reports()
			if tc.report != "" && (len(reps) != 1 || reps[0].ErrorType != tc.report) {
				t.Errorf("reports %+v", reps)
			}
			if !strings.Contains(out.String(), tc.logsHave) || !strings.Contains(out.String(), `"message":`) {
				t.Errorf("logs lack %q or are not Lambda JSON:\n%s", tc.logsHave, out.String())
			}
		})
	}
}
