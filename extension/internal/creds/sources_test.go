package creds_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
)

// chain is a hub keeper (AssumeRole with the base credentials) and a spoke
// keeper whose AssumeRole is signed with the hub's credentials.
type chain struct {
	clock      *ststest.Clock
	sts        *ststest.Server
	hub, spoke *creds.Keeper
}

func newChain(t *testing.T, hubSeconds, spokeSeconds int32) *chain {
	c := &chain{clock: ststest.NewClock(t0)}
	c.sts = ststest.New(t, c.clock.Now)
	base := c.sts.Client(1)
	opts := func(name string) func(*creds.Options) {
		return func(o *creds.Options) { o.Name, o.Now, o.Rand = name, c.clock.Now, func() float64 { return 0 } }
	}
	c.hub = creds.NewKeeper(creds.AssumeRole(base, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/hub"),
		RoleSessionName: aws.String("hub"), DurationSeconds: aws.Int32(hubSeconds)}), opts("hub"))
	c.spoke = creds.NewKeeper(creds.AssumeRole(creds.ChainClient(base, c.hub), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::222222222222:role/spoke"), RoleSessionName: aws.String("spoke"),
		DurationSeconds: aws.Int32(spokeSeconds)}), opts("spoke"))
	t.Cleanup(c.hub.Close)
	t.Cleanup(c.spoke.Close)
	return c
}

// burst makes n concurrent spoke requests and returns the keys served.
func (c *chain) burst(t *testing.T, n int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	keys := map[string]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := c.spoke.Credentials(context.Background())
			if err != nil {
				t.Errorf("spoke: %v", err)
				return
			}
			mu.Lock()
			keys[got.AccessKeyID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return keys
}

// TestChainRefreshesHubFirstOneCallPerLink: 1,000 concurrent requests for a
// spoke with nothing cached make exactly two STS calls, the hub's (signed
// with the base key) then the spoke's (signed with the hub's key). Later,
// a spoke refresh with the hub still fresh calls STS once; once the hub is
// past its floor, a spoke refresh refreshes the hub first and signs with
// its new key.
func TestChainRefreshesHubFirstOneCallPerLink(t *testing.T) {
	c := newChain(t, 3600, 900)
	keys := c.burst(t, 1000)
	issued := c.sts.Issued()
	if len(issued) != 2 || len(keys) != 1 || keys[issued[1].AccessKeyID] != 1000 {
		t.Fatalf("issued %d sets, spoke served %v; want the hub's then the spoke's, the spoke's to all 1,000", len(issued), keys)
	}
	if s := c.sts.Signers(); len(s) != 2 || s[0] != "AKIABASE" || s[1] != issued[0].AccessKeyID {
		t.Fatalf("signers %v; want the base key, then the hub's %s", s, issued[0].AccessKeyID)
	}
	if f := c.sts.Requests(); f[0].Get("RoleArn") != "arn:aws:iam::111111111111:role/hub" || f[1].Get("RoleArn") != "arn:aws:iam::222222222222:role/spoke" {
		t.Fatalf("requests %v", f)
	}

	c.clock.Advance(16 * time.Minute) // the 15 min spoke is past its floor; the 1 h hub is fresh
	keys = c.burst(t, 1000)
	if n := c.sts.Calls(); n != 3 || len(keys) != 1 {
		t.Fatalf("%d STS calls after the spoke expired, served %v; want one more", n, keys)
	}
	if s := c.sts.Signers(); s[2] != issued[0].AccessKeyID {
		t.Fatalf("the spoke's second AssumeRole was signed with %s, want the hub's current key", s[2])
	}

	c.clock.Advance(40 * time.Minute) // now both are past their floors
	c.burst(t, 1000)
	issued, s := c.sts.Issued(), c.sts.Signers()
	if len(issued) != 5 || s[3] != "AKIABASE" || s[4] != issued[3].AccessKeyID {
		t.Fatalf("after the hub expired: signers %v; want the hub refreshed (base key) and the spoke signed with its new key %s", s, issued[3].AccessKeyID)
	}
	if h := c.hub.Health(); h.STSCalls != 2 || c.spoke.Health().STSCalls != 3 {
		t.Errorf("calls per link: hub %d, spoke %d; want 2 and 3", h.STSCalls, c.spoke.Health().STSCalls)
	}
}

// TestChainHubFailureReachesSpoke: a spoke whose hub cannot get credentials
// reports SourceRoleUnavailable naming the hub and the hub's error.
func TestChainHubFailureReachesSpoke(t *testing.T) {
	c := newChain(t, 3600, 900)
	c.sts.Fail(&ststest.Failure{Status: 403, Code: "AccessDenied", Message: "not authorized to perform sts:AssumeRole on hub"})
	_, err := c.spoke.Credentials(context.Background())
	var ce *creds.Error
	if !errors.As(err, &ce) || ce.Code != "SourceRoleUnavailable" || !strings.Contains(ce.Message, `"hub"`) ||
		!strings.Contains(ce.Message, "AccessDenied") || ce.Retryable {
		t.Fatalf("err = %#v", err)
	}
	if n := c.sts.Calls(); n != 1 {
		t.Errorf("%d STS calls; the spoke must not call STS without the hub's credentials", n)
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// processOutput is a credential_process answer that expires in d from now.
func processOutput(key string, now time.Time, d time.Duration) string {
	return fmt.Sprintf(`{"Version": 1, "AccessKeyId": %q, "SecretAccessKey": "proc-secret-%s", "SessionToken": "proc-token-%s", "Expiration": %q}`,
		key, key, key, now.Add(d).UTC().Format(time.RFC3339))
}

func TestCredentialProcess(t *testing.T) {
	t.Setenv("PARENT_ONLY_SECRET", "must-not-reach-the-child")
	now := time.Now()
	cases := []struct {
		name    string
		body    string
		timeout time.Duration
		code    string // "" for success
		notIn   string // must not appear in the error
		retry   bool
	}{
		{"ok", "printf '%s' '" + processOutput("ASIAPROC00000000001", now, time.Hour) + "'", 0, "", "", false},
		{"long-term keys", `echo '{"Version":1,"AccessKeyId":"AKIAPROC","SecretAccessKey":"s"}'`, 0, "", "", false},
		{"clean environment", `[ -z "$PARENT_ONLY_SECRET" ] && [ "$CREDENTIAL_REFRESH_ROLE_NAME" = broker ] && [ "$HOME" = /tmp ] && [ "$(pwd)" = / ] && ` +
			"printf '%s' '" + processOutput("ASIAPROC00000000002", now, time.Hour) + "'", 0, "", "", false},
		{"exit 3", `echo "vault: permission denied for token hvs.CAESIJ0123456789abcdefghij" >&2; exit 3`, 0, "CredentialProcessFailed", "hvs.CAESIJ0123456789abcdefghij", true},
		{"not JSON", `echo 'AccessKeyId=AKIASECRETISH SecretAccessKey=topsecret-value'`, 0, "CredentialProcessInvalidOutput", "topsecret-value", true},
		{"version 2", `echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"topsecret-value"}'`, 0, "CredentialProcessInvalidOutput", "topsecret-value", true},
		{"no secret", `echo '{"Version":1,"AccessKeyId":"A"}'`, 0, "CredentialProcessInvalidOutput", "", true},
		{"too much output", `head -c 70000 /dev/zero | tr '\0' 'x'`, 0, "CredentialProcessInvalidOutput", "xxxxxxxx", true},
		{"timeout", `sleep 5 & sleep 5`, 200 * time.Millisecond, "CredentialProcessTimeout", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := creds.CredentialProcess([]string{script(t, tc.body), "--role", "x"},
				append([]string{"PATH=/usr/bin:/bin", "HOME=/tmp"}, "CREDENTIAL_REFRESH_ROLE_NAME=broker"))
			if tc.timeout > 0 {
				src.Timeout = tc.timeout
			}
			start := time.Now()
			k := creds.NewKeeper(src, func(o *creds.Options) { o.Name = "broker" })
			defer k.Close()
			c, err := k.Credentials(context.Background())
			if tc.code == "" {
				if err != nil || !c.CanExpire || c.Expires.Before(time.Now().Add(50*time.Minute)) {
					t.Fatalf("got %+v, %v; want credentials valid for about an hour", c.AccessKeyID, err)
				}
				return
			}
			var ce *creds.Error
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Retryable != tc.retry {
				t.Fatalf("err = %v; want %s (retryable %v)", err, tc.code, tc.retry)
			}
			if tc.notIn != "" && strings.Contains(err.Error(), tc.notIn) {
				t.Errorf("the error repeats what the program printed: %v", err)
			}
			if tc.timeout > 0 && time.Since(start) > 3*time.Second {
				t.Errorf("the timed-out program was not killed: took %s", time.Since(start))
			}
			if !strings.Contains(err.Error(), "credential process") {
				t.Errorf("the error does not say where it came from: %v", err)
			}
		})
	}
	t.Run("not runnable", func(t *testing.T) {
		k := creds.NewKeeper(creds.CredentialProcess([]string{"/nonexistent/broker"}, nil))
		defer k.Close()
		_, err := k.Credentials(context.Background())
		var ce *creds.Error
		if !errors.As(err, &ce) || ce.Code != "CredentialProcessNotRunnable" || ce.Retryable {
			t.Fatalf("err = %v", err)
		}
	})
}

// switchable is a source whose every call can be made to fail; it counts
// calls. It wraps each kind of source, so that the keeper's behaviour can
// be checked to be the same whatever the source.
type switchable struct {
	creds.Source
	failing atomic.Bool
	calls   atomic.Int64
}

func (s *switchable) Retrieve(ctx context.Context) (aws.Credentials, error) {
	s.calls.Add(1)
	if s.failing.Load() {
		return aws.Credentials{}, &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	}
	return s.Source.Retrieve(ctx)
}

// TestSameBehaviourForEverySource runs one scenario against an AssumeRole
// source, a chain link and a credential process, all issuing 1 h
// credentials on a shared fake clock: first fetch, no call before the
// refresh point, a failed refresh that keeps serving the still-valid
// credentials with the same backoff, recovery; and the same STS call counts.
func TestSameBehaviourForEverySource(t *testing.T) {
	clock := ststest.NewClock(t0)
	fake := ststest.New(t, clock.Now)
	base := fake.Client(1)
	hub := creds.NewKeeper(creds.AssumeRole(base, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/hub"),
		RoleSessionName: aws.String("hub"), DurationSeconds: aws.Int32(3600)}), func(o *creds.Options) { o.Now = clock.Now })
	defer hub.Close()
	input := &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::222222222222:role/x"), RoleSessionName: aws.String("x"), DurationSeconds: aws.Int32(3600)}
	// The process reads the fake clock's time from a file the test writes.
	nowFile := filepath.Join(t.TempDir(), "now")
	proc := script(t, `now=$(cat `+nowFile+`); printf '{"Version":1,"AccessKeyId":"ASIAPROC","SecretAccessKey":"s","SessionToken":"t","Expiration":"%s"}' "$now"`)
	sources := map[string]creds.Source{
		"assume role":        creds.AssumeRole(base, input),
		"chain link":         creds.AssumeRole(creds.ChainClient(base, hub), input),
		"credential process": creds.CredentialProcess([]string{proc}, nil),
	}
	type outcome struct {
		calls          []int64
		servedOnFailed bool
		failures       int // consecutive, during the backoff
	}
	results := map[string]outcome{}
	for name, src := range sources {
		sw := &switchable{Source: src}
		k := creds.NewKeeper(sw, func(o *creds.Options) { o.Now, o.Rand = clock.Now, func() float64 { return 0 } })
		clock.Set(t0)
		write := func() { os.WriteFile(nowFile, []byte(clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)), 0o600) }
		write()
		var o outcome
		first, err := k.Credentials(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o.calls = append(o.calls, sw.calls.Load())
		clock.Advance(39 * time.Minute)
		k.Credentials(context.Background())
		o.calls = append(o.calls, sw.calls.Load())
		clock.Advance(2 * time.Minute) // inside the window (40 min with no jitter)
		sw.failing.Store(true)
		got, err := k.Credentials(context.Background())
		o.servedOnFailed = err == nil && got.AccessKeyID == first.AccessKeyID
		o.calls = append(o.calls, sw.calls.Load())
		if ce := asErr(k.Credentials(context.Background())); ce != nil {
			t.Fatalf("%s: a request in backoff with valid credentials failed: %v", name, ce)
		}
		o.calls = append(o.calls, sw.calls.Load()) // no new call during the backoff
		o.failures = k.Health().ConsecutiveFailures
		sw.failing.Store(false)
		clock.Advance(10 * time.Second) // past the backoff (Throttling: 4-8 s)
		write()
		k.Credentials(context.Background())
		o.calls = append(o.calls, sw.calls.Load())
		k.Close()
		results[name] = o
	}
	want := results["assume role"]
	for name, got := range results {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %+v; assume role: %+v", name, got, want)
		}
	}
	if fmt.Sprint(want.calls) != "[1 1 2 2 3]" || !want.servedOnFailed || want.failures != 1 {
		t.Errorf("calls %v, served the still-valid credentials on failure %v", want.calls, want.servedOnFailed)
	}
}

// TestChainFromCredentialProcess: a chain's source may be a credential
// process; the spoke's AssumeRole is then signed with the keys the program
// printed.
func TestChainFromCredentialProcess(t *testing.T) {
	clock := ststest.NewClock(time.Now())
	fake := ststest.New(t, clock.Now)
	proc := creds.NewKeeper(creds.CredentialProcess([]string{script(t, "printf '%s' '"+processOutput("ASIAFROMPROCESS00001", time.Now(), time.Hour)+"'")}, nil),
		func(o *creds.Options) { o.Name = "broker" })
	defer proc.Close()
	spoke := creds.NewKeeper(creds.AssumeRole(creds.ChainClient(fake.Client(1), proc), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::222222222222:role/spoke"), RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(3600)}),
		func(o *creds.Options) { o.Now = clock.Now })
	defer spoke.Close()
	if _, err := spoke.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := fake.Signers(); len(s) != 1 || s[0] != "ASIAFROMPROCESS00001" {
		t.Fatalf("the spoke's AssumeRole was signed with %v, want the process's key", s)
	}
}
