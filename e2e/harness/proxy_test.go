package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// fakeUpstream plays moto: AssumeRole returns key ASIAFAKE0000000000001
// expiring at exp; everything else is 200. It records whether a request
// carried "Expect" (it must not: the proxy handles 100-continue itself).
type fakeUpstream struct {
	exp        time.Time
	mu         sync.Mutex
	sawExpect  bool
	bodies     []string
	calledWith []string
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.sawExpect = u.sawExpect || r.Header.Get("Expect") != ""
	u.bodies = append(u.bodies, string(body))
	u.calledWith = append(u.calledWith, r.Method+" "+r.URL.Path)
	u.mu.Unlock()
	if strings.Contains(string(body), "Action=AssumeRole") {
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>`+
			`<AccessKeyId>ASIAFAKE0000000000001</AccessKeyId><SecretAccessKey>fakeSecretValue</SecretAccessKey><SessionToken>fakeSessionToken</SessionToken>`+
			`<Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>`+
			`<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`,
			u.exp.UTC().Format(time.RFC3339Nano))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func startFake(t *testing.T, exp time.Time) (*fakeUpstream, *Proxy) {
	t.Helper()
	up := &fakeUpstream{exp: exp}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := StartProxy(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return up, p
}

// testClock is a settable clock, safe to read from the proxy's goroutines.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func stsClient(p *Proxy, c aws.Credentials) *sts.Client {
	cfg := aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: c}}
	return sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(p.URL) })
}

func s3Client(p *Proxy, c aws.Credentials) *s3.Client {
	cfg := aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: c}, RetryMaxAttempts: 1}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(p.URL); o.UsePathStyle = true })
}

func TestProxyRecordsAssumeRoleAndRejectsExpiredKeys(t *testing.T) {
	ctx := context.Background()
	base := time.Now()
	up, p := startFake(t, base.Add(10*time.Second))
	clock := &testClock{t: base}
	p.now = clock.Now

	user := aws.Credentials{AccessKeyID: "AKIAUSER", SecretAccessKey: "x"}
	out, err := stsClient(p, user).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), RoleSessionName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Credentials.AccessKeyId)
	if exp, ok := p.Expiration(id); !ok || !exp.Equal(base.Add(10*time.Second)) {
		t.Fatalf("Expiration(%s) = %v, %v", id, exp, ok)
	}
	temp := aws.Credentials{AccessKeyID: id, SecretAccessKey: "fakeSecretValue", SessionToken: "fakeSessionToken"}
	if got := p.LeakedIn("log line with " + id + " only"); len(got) != 0 {
		t.Errorf("LeakedIn(key id only) = %v, want none", got)
	}
	if got := p.LeakedIn(`{"token":"fakeSessionToken"}`); len(got) != 1 || got[0] != id {
		t.Errorf("LeakedIn(session token) = %v, want [%s]", got, id)
	}

	tests := []struct {
		name     string
		now      time.Time
		wantCode string
	}{
		{"before expiry", base.Add(9 * time.Second), ""},
		{"after expiry", base.Add(11 * time.Second), "ExpiredToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock.Set(tc.now)
			// A body large enough for the SDK to matter; the SDK adds
			// Expect: 100-continue to large PutObjects.
			_, err := s3Client(p, temp).PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader(strings.Repeat("x", 3<<20)),
			})
			var apiErr smithy.APIError
			switch {
			case tc.wantCode == "" && err != nil:
				t.Fatalf("PutObject: %v", err)
			case tc.wantCode != "" && (!errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode):
				t.Fatalf("PutObject error = %v, want %s", err, tc.wantCode)
			}
		})
	}
	if n := p.Count(AssumeRole, time.Time{}); n != 1 {
		t.Errorf("AssumeRole count = %d, want 1", n)
	}
	if n := p.Count(ExpiredToken, time.Time{}); n != 1 {
		t.Errorf("ExpiredToken count = %d, want 1", n)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.sawExpect {
		t.Error("upstream saw an Expect header; the proxy must absorb 100-continue")
	}
	if len(up.calledWith) != 2 {
		t.Errorf("upstream calls = %v, want AssumeRole and one PutObject", up.calledWith)
	}
}

func TestProxySTSDown(t *testing.T) {
	ctx := context.Background()
	_, p := startFake(t, time.Now().Add(time.Hour))
	p.SetSTSDown(true)
	c := stsClient(p, aws.Credentials{AccessKeyID: "AKIAUSER", SecretAccessKey: "x"})
	in := &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), RoleSessionName: aws.String("s")}
	_, err := c.AssumeRole(ctx, in, func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("AssumeRole while down: %v, want HTTP 503", err)
	}
	p.SetSTSDown(false)
	if _, err := c.AssumeRole(ctx, in); err != nil {
		t.Fatalf("AssumeRole after recovery: %v", err)
	}
	if got := [2]int{p.Count(STSDown, time.Time{}), p.Count(AssumeRole, time.Time{})}; got != [2]int{1, 1} {
		t.Errorf("STSDown, AssumeRole counts = %v, want [1 1]", got)
	}
}

func TestSigner(t *testing.T) {
	tests := []struct {
		name, auth, query, id, service string
	}{
		{"header", "AWS4-HMAC-SHA256 Credential=ASIAXYZ/20261125/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc", "", "ASIAXYZ", "s3"},
		{"presigned", "", "X-Amz-Credential=AKIAQ%2F20261125%2Fus-east-1%2Fsts%2Faws4_request", "AKIAQ", "sts"},
		{"unsigned", "", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/?"+tc.query, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if id, svc := signer(r); id != tc.id || svc != tc.service {
				t.Errorf("signer = %q, %q; want %q, %q", id, svc, tc.id, tc.service)
			}
		})
	}
}
