package creds_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// baseEndpoint stands in for the credentials endpoint Lambda gives the
// runtime and extensions under SnapStart (AWS_CONTAINER_CREDENTIALS_FULL_URI
// + AWS_CONTAINER_AUTHORIZATION_TOKEN): it checks the token and hands out
// base key n on its n-th call, valid for lifetime.
type baseEndpoint struct {
	token    string
	lifetime time.Duration
	mu       sync.Mutex
	served   []string
}

func (b *baseEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != b.token {
		http.Error(w, `{"Code":"AccessDenied","Message":"bad token"}`, http.StatusForbidden)
		return
	}
	b.mu.Lock()
	key := "ASIABASE" + string(rune('A'+len(b.served))) + "00000000000"
	b.served = append(b.served, key)
	b.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]string{"AccessKeyId": key, "SecretAccessKey": "base-secret", "Token": "base-token",
		"Expiration": time.Now().Add(b.lifetime).UTC().Format(time.RFC3339)})
}

func (b *baseEndpoint) Served() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.served)
}

// TestSTSClientBaseCredentials: the extension's own STS client takes the
// execution role's credentials from the SDK's default chain: the key
// variables where Lambda sets them (on demand, provisioned, Managed
// Instances), and the credentials endpoint where they are absent or empty
// (SnapStart; RIE leaves AWS_ACCESS_KEY_ID empty without keys). From the
// endpoint it refetches once they expire, as after a restore.
func TestSTSClientBaseCredentials(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string // first signer
	}{
		{"key variables", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAEXECUTION0000000", "AWS_SECRET_ACCESS_KEY": "s",
			"AWS_SESSION_TOKEN": "tok"}, "AKIAEXECUTION0000000"},
		{"empty key variables and an endpoint", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
			"AWS_SESSION_TOKEN": ""}, "ASIABASEA00000000000"},
		{"an endpoint alone", nil, "ASIABASEA00000000000"}, // the key variables unset
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := ststest.New(t, time.Now)
			base := &baseEndpoint{token: "container-token", lifetime: 1500 * time.Millisecond}
			srv := httptest.NewServer(base)
			defer srv.Close()
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
				"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
				t.Setenv(k, "")
			}
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/2021-04-23/credentials")
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", base.token)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.env == nil {
				for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
					os.Unsetenv(k) // t.Setenv above restores it after the test
				}
			}
			client, err := creds.NewSTSClient(context.Background(), creds.STSOptions{Region: "us-east-1", Endpoint: fake.URL,
				MaxAttempts: 1, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			assume := func() {
				t.Helper()
				if _, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{
					RoleArn: aws.String("arn:aws:iam::123456789012:role/t"), RoleSessionName: aws.String("s")}); err != nil {
					t.Fatal(err)
				}
			}
			assume()
			if got := fake.Signers(); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("AssumeRole signed with %v, want %s", got, tc.want)
			}
			if tc.want != "ASIABASEA00000000000" {
				return
			}
			// The base credentials expire (a restore hours later): the
			// next AssumeRole fetches new ones from the endpoint first.
			time.Sleep(base.lifetime + 100*time.Millisecond)
			assume()
			if got := fake.Signers(); len(got) != 2 || got[1] != "ASIABASEB00000000000" || len(base.Served()) != 2 {
				t.Fatalf("after the base credentials expired: signers %v, endpoint served %v", got, base.Served())
			}
		})
	}
}
