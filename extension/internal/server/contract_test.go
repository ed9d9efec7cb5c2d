package server_test

// Contract tests: the SDKs' own container-credentials providers read our
// endpoint exactly as a function would, with no custom code on their side.
//
//   - aws-sdk-go-v2 credentials/endpointcreds, directly and through credrefresh
//   - botocore's ContainerProvider (test/contract/python, project .venv)
//   - JS v3 @aws-sdk/credential-provider-http fromHttp (test/contract/node)
//
// The Python and Node readers need scripts/setup.sh. Without them the test
// skips, or fails when CI or CREDENTIAL_REFRESH_CONTRACT=1 is set.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

const (
	contractEnv       = "CREDENTIAL_REFRESH_CONTRACT"
	contractAccountID = "123456789012"
	// The SDKs come back to us when their copy has less than this left
	// (botocore's advisory window is the widest): what we serve must exceed it.
	widestClientWindow = 15 * time.Minute
)

// contractRole is a server.Role with fixed credentials or a fixed error. It is
// never mutated after construction, so subtests can share it.
type contractRole struct {
	creds aws.Credentials
	err   error
}

func (r contractRole) Credentials(context.Context) (aws.Credentials, error) { return r.creds, r.err }
func (r contractRole) Health() creds.Health                                 { return creds.Health{State: creds.StateFresh} }
func (r contractRole) Refresh(ctx context.Context) (aws.Credentials, error) {
	return r.Credentials(ctx)
}
func (r contractRole) Identity(context.Context) (creds.Identity, error) {
	return creds.Identity{}, creds.ErrNoIdentity
}

// contractSecret is unguessable, so finding it in any output means a leak.
func contractSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func contractCreds(t *testing.T, key string, expires time.Time) aws.Credentials {
	return aws.Credentials{
		AccessKeyID: key, SecretAccessKey: contractSecret(t, "secret-"), SessionToken: contractSecret(t, "session-"),
		CanExpire: true, Expires: expires.UTC().Truncate(time.Second), AccountID: contractAccountID, Source: creds.CredentialsSource,
	}
}

// contractEndpoint is a running server as a function sees it.
type contractEndpoint struct {
	port      int
	token     string
	tokenFile string // holds token, written as the extension writes it: no newline
	secrets   []string
}

// startContractServer starts server.New on 127.0.0.1:0 and stops it when the test ends.
func startContractServer(t *testing.T, roles map[string]server.Role) contractEndpoint {
	t.Helper()
	ep := contractEndpoint{token: contractSecret(t, "")}
	ep.tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(ep.tokenFile, []byte(ep.token), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep.port = l.Addr().(*net.TCPAddr).Port
	srv := server.New(ep.token, roles)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	ep.secrets = []string{ep.token}
	for _, r := range roles {
		if c, err := r.Credentials(context.Background()); err == nil {
			ep.secrets = append(ep.secrets, c.SecretAccessKey, c.SessionToken)
		}
	}
	return ep
}

func (ep contractEndpoint) url(role string) string {
	u := fmt.Sprintf("http://127.0.0.1:%d/v1/credentials", ep.port)
	if role != "" {
		u += "/" + role
	}
	return u
}

// readRequest is one read by one SDK.
type readRequest struct {
	contractEndpoint
	role       string
	token      string // sent in place of the real token when not empty
	wantSecret string // compared by hash inside the scripts
	wantToken  string
}

func (r readRequest) authToken() string {
	if r.token != "" {
		return r.token
	}
	return r.contractEndpoint.token
}

// authTokenFile holds authToken(), without a trailing newline.
func (r readRequest) authTokenFile(t *testing.T) string {
	if r.token == "" {
		return r.tokenFile
	}
	p := filepath.Join(t.TempDir(), "wrong-token")
	if err := os.WriteFile(p, []byte(r.token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sdkResult is what a reader saw, in the scripts' JSON shape. No secrets:
// the secret key and session token are only compared.
type sdkResult struct {
	OK            bool    `json:"ok"`
	AccessKey     string  `json:"access_key"`
	ExpiryTime    string  `json:"expiry_time"`
	AccountID     *string `json:"account_id"`
	HasSecret     bool    `json:"has_secret"`
	HasToken      bool    `json:"has_token"`
	SecretMatches bool    `json:"secret_matches"`
	TokenMatches  bool    `json:"token_matches"`
	ErrorType     string  `json:"error_type"`
	Error         string  `json:"error"`
	Code          *string `json:"code"`

	status int    // HTTP status of a failure, where the SDK exposes it
	output string // everything the reader printed, for the leak check
}

type sdkReader struct {
	name string
	// accountID: the SDK passes AccountId on (JS v3 fromHttp drops it).
	accountID bool
	// expiryEarly: how much earlier than served the SDK may report Expires
	// (credrefresh's cache subtracts its window).
	expiryEarly time.Duration
	read        func(t *testing.T, r readRequest) sdkResult
}

func sdkReaders() []sdkReader {
	return []sdkReader{
		{name: "go-endpointcreds/token", accountID: true, read: goEndpointcreds(false)},
		{name: "go-endpointcreds/token-file", accountID: true, read: goEndpointcreds(true)},
		{name: "go-credrefresh", accountID: true, expiryEarly: 5 * time.Minute, read: goCredrefresh},
		{name: "python-botocore/token", accountID: true, read: scriptReader(pythonCommand, false)},
		{name: "python-botocore/token-file", accountID: true, read: scriptReader(pythonCommand, true)},
		{name: "node-fromHttp/token", read: scriptReader(nodeCommand, false)},
		{name: "node-fromHttp/token-file", read: scriptReader(nodeCommand, true)},
	}
}

// goEndpointcreds reads as config.LoadDefaultConfig's container provider
// does, including its raw (untrimmed) read of the token file.
func goEndpointcreds(useFile bool) func(*testing.T, readRequest) sdkResult {
	return func(t *testing.T, r readRequest) sdkResult {
		p := endpointcreds.New(r.url(r.role), func(o *endpointcreds.Options) {
			if !useFile {
				o.AuthorizationToken = r.authToken()
				return
			}
			path := r.authTokenFile(t)
			o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
				b, err := os.ReadFile(path)
				return string(b), err
			})
		})
		c, err := p.Retrieve(context.Background())
		return goResult(c, err, r)
	}
}

func goCredrefresh(t *testing.T, r readRequest) sdkResult {
	p, err := credrefresh.New(func(o *credrefresh.Options) {
		o.Port, o.Role, o.TokenFile = r.port, r.role, r.authTokenFile(t)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Behind the cache credrefresh.LoadDefaultConfig puts it in.
	c, err := aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = credrefresh.DefaultExpiryWindow
	}).Retrieve(context.Background())
	return goResult(c, err, r)
}

func goResult(c aws.Credentials, err error, r readRequest) sdkResult {
	if err != nil {
		res := sdkResult{ErrorType: fmt.Sprintf("%T", err), Error: err.Error(), output: err.Error()}
		var api smithy.APIError
		if errors.As(err, &api) {
			code := api.ErrorCode()
			res.Code = &code
		}
		var st interface{ HTTPStatusCode() int }
		if errors.As(err, &st) {
			res.status = st.HTTPStatusCode()
		}
		return res
	}
	return sdkResult{
		OK: true, AccessKey: c.AccessKeyID, ExpiryTime: c.Expires.UTC().Format(time.RFC3339), AccountID: &c.AccountID,
		HasSecret: c.SecretAccessKey != "", HasToken: c.SessionToken != "",
		SecretMatches: c.SecretAccessKey == r.wantSecret, TokenMatches: c.SessionToken == r.wantToken,
	}
}

// scriptCommand returns the argv that runs one reader script, or skips or
// fails the test when the tool is not installed.
type scriptCommand func(t *testing.T) []string

func pythonCommand(t *testing.T) []string { return pythonScript(t, "read_container_creds.py") }

// pythonScript is the argv that runs test/contract/python/<script> with the project venv.
func pythonScript(t *testing.T, script string) []string {
	root := contractRepoRoot(t)
	py := filepath.Join(root, ".venv", "bin", "python")
	requireFile(t, "the project venv's python (boto3)", py)
	return []string{py, filepath.Join(root, "test", "contract", "python", script)}
}

func nodeCommand(t *testing.T) []string {
	return nodeScript(t, "credential-provider-http", "read_container_creds.mjs")
}

// nodeScript is the argv that runs test/contract/node/<script>, which
// imports @aws-sdk/<pkg> from node_modules.
func nodeScript(t *testing.T, pkg, script string) []string {
	root := contractRepoRoot(t)
	dir := filepath.Join(root, "test", "contract", "node")
	requireFile(t, "@aws-sdk/"+pkg+" in node_modules",
		filepath.Join(dir, "node_modules", "@aws-sdk", pkg, "package.json"))
	node, err := exec.LookPath("node")
	if err != nil {
		missingTool(t, "node is not on PATH")
	}
	return []string{node, filepath.Join(dir, script)}
}

func requireFile(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missingTool(t, fmt.Sprintf("%s not found at %s", what, path))
	}
}

func missingTool(t *testing.T, msg string) {
	t.Helper()
	msg += ": run scripts/setup.sh first"
	if os.Getenv("CI") != "" || os.Getenv(contractEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set " + contractEnv + "=1 to make this a failure)")
}

func contractRepoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// statusInMessage finds the HTTP status in botocore's and fromHttp's errors
// ("Received non 200 response 401", "Server responded with status: 401").
var statusInMessage = regexp.MustCompile(`(?:response|status:) (\d{3})\b`)

// script runs a reader script with a clean environment: only what the exec
// wrapper would export, so no AWS_* of this machine leaks in.
func scriptReader(cmd scriptCommand, useFile bool) func(*testing.T, readRequest) sdkResult {
	return func(t *testing.T, r readRequest) sdkResult {
		argv := cmd(t)
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"PYTHONDONTWRITEBYTECODE=1",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + r.url(r.role),
			"CONTRACT_EXPECT_SECRET_SHA256=" + sha256hex(r.wantSecret),
			"CONTRACT_EXPECT_TOKEN_SHA256=" + sha256hex(r.wantToken),
		}
		if useFile {
			env = append(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+r.authTokenFile(t))
		} else {
			env = append(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN="+r.authToken())
		}
		var res sdkResult
		res.output = runScript(t, argv, env, &res)
		if m := statusInMessage.FindStringSubmatch(res.Error); m != nil {
			res.status, _ = strconv.Atoi(m[1])
		}
		return res
	}
}

// runScript runs argv with exactly env and decodes the one JSON line it
// prints into res. It returns everything printed, for the leak check.
func runScript(t *testing.T, argv, env []string, res any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s crashed (%v); a clean SDK failure exits 0.\nstdout:\n%s\nstderr:\n%s", filepath.Base(argv[len(argv)-1]), err, stdout.String(), stderr.String())
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), res); err != nil {
		t.Fatalf("%s printed no result JSON (%v):\n%s\nstderr:\n%s", filepath.Base(argv[len(argv)-1]), err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

func TestContractSDKsReadEndpoint(t *testing.T) {
	expires := time.Now().Add(time.Hour)
	defaultRole := contractRole{creds: contractCreds(t, "ASIADEFAULTROLE", expires)}
	namedRole := contractRole{creds: contractCreds(t, "ASIANAMEDROLE", expires)}
	failing := contractRole{err: &creds.Error{Role: "broken", RoleArn: "arn:aws:iam::123456789012:role/broken",
		Code: "Throttling", Message: "Rate exceeded", Retryable: true}}
	ep := startContractServer(t, map[string]server.Role{server.DefaultRole: defaultRole, "reports": namedRole, "broken": failing})

	scenarios := []struct {
		name       string
		role       string
		badToken   bool
		want       aws.Credentials // AccessKeyID empty: a failure is expected
		wantStatus []int
	}{
		{name: "default role", want: defaultRole.creds},
		{name: "named role", role: "reports", want: namedRole.creds},
		{name: "wrong token", badToken: true, wantStatus: []int{401, 403}},
		{name: "unknown role", role: "nope", wantStatus: []int{404}},
		{name: "STS failing", role: "broken", wantStatus: []int{503}},
	}
	for _, rd := range sdkReaders() {
		for _, sc := range scenarios {
			t.Run(rd.name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				req := readRequest{contractEndpoint: ep, role: sc.role, wantSecret: sc.want.SecretAccessKey, wantToken: sc.want.SessionToken}
				if sc.badToken {
					req.token = contractSecret(t, "wrong-")
				}
				res := rd.read(t, req)
				checkSDKNoLeak(t, res.output, ep.secrets)
				if sc.want.AccessKeyID == "" {
					checkSDKFailure(t, res, sc.wantStatus)
					return
				}
				checkSDKCredentials(t, rd, res, sc.want)
			})
		}
	}
}

func checkSDKCredentials(t *testing.T, rd sdkReader, res sdkResult, want aws.Credentials) {
	t.Helper()
	if !res.OK {
		t.Fatalf("read failed: %s: %s", res.ErrorType, res.Error)
	}
	if res.AccessKey != want.AccessKeyID || !res.HasSecret || !res.HasToken || !res.SecretMatches || !res.TokenMatches {
		t.Errorf("got key %q (secret present %v, matches %v; token present %v, matches %v), want key %q with matching secret and token",
			res.AccessKey, res.HasSecret, res.SecretMatches, res.HasToken, res.TokenMatches, want.AccessKeyID)
	}
	exp, err := time.Parse(time.RFC3339, res.ExpiryTime)
	if err != nil {
		t.Fatalf("expiry %q: %v", res.ExpiryTime, err)
	}
	if exp.After(want.Expires) || exp.Before(want.Expires.Add(-rd.expiryEarly)) {
		t.Errorf("expiry = %s, want %s (at most %v earlier)", exp, want.Expires.Format(time.RFC3339), rd.expiryEarly)
	}
	if left := time.Until(exp) + rd.expiryEarly; left <= widestClientWindow {
		t.Errorf("the SDK got credentials with only %v left, want more than %v", left, widestClientWindow)
	}
	if rd.accountID && (res.AccountID == nil || *res.AccountID != want.AccountID) {
		t.Errorf("account id = %v, want %s", res.AccountID, want.AccountID)
	}
}

func checkSDKFailure(t *testing.T, res sdkResult, statuses []int) {
	t.Helper()
	if res.OK {
		t.Fatalf("read succeeded with key %s, want a failure with status %v", res.AccessKey, statuses)
	}
	for _, s := range statuses {
		if res.status == s {
			return
		}
	}
	t.Errorf("failure %s: %q: status %d, want one of %v", res.ErrorType, res.Error, res.status, statuses)
}

func checkSDKNoLeak(t *testing.T, output string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(output, s) {
			t.Errorf("reader output contains a secret (%d chars) it must not show", len(s))
		}
	}
}

// shiftedClock is the keeper's clock: real time plus an offset the test moves
// forward, so that credentials age without the test waiting.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// countingSTS issues credential set n (1, 2, ...) on the n-th AssumeRole,
// valid for an hour of the keeper's clock.
type countingSTS struct {
	clock  *shiftedClock
	secret string // set n has secret secret-n and session token secret-n-token
	calls  atomic.Int64
}

func (s *countingSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	n := s.calls.Add(1)
	return &sts.AssumeRoleOutput{
		Credentials: &ststypes.Credentials{
			AccessKeyId:     aws.String(keeperKey(n)),
			SecretAccessKey: aws.String(s.setSecret(n)),
			SessionToken:    aws.String(s.setToken(n)),
			Expiration:      aws.Time(s.clock.Now().Add(time.Hour).Truncate(time.Second)),
		},
		AssumedRoleUser: &ststypes.AssumedRoleUser{
			Arn:           aws.String("arn:aws:sts::" + contractAccountID + ":assumed-role/contract/" + aws.ToString(in.RoleSessionName)),
			AssumedRoleId: aws.String("AROACONTRACT:" + aws.ToString(in.RoleSessionName)),
		},
	}, nil
}

func keeperKey(n int64) string                  { return fmt.Sprintf("ASIAKEEPER%06d", n) }
func (s *countingSTS) setSecret(n int64) string { return fmt.Sprintf("%s-%d", s.secret, n) }
func (s *countingSTS) setToken(n int64) string  { return fmt.Sprintf("%s-%d-token", s.secret, n) }

// With the real keeper behind the server, no SDK is ever handed credentials
// near their expiry: once the served set is inside the keeper's floor, the
// next read by each SDK gets the new set, with the full lifetime left.
func TestContractSDKsNeverGetNearExpiryCredentials(t *testing.T) {
	for _, rd := range sdkReaders() {
		t.Run(rd.name, func(t *testing.T) {
			t.Parallel()
			clock := &shiftedClock{}
			fake := &countingSTS{clock: clock, secret: contractSecret(t, "")}
			keeper := creds.NewKeeper(creds.AssumeRole(fake, &sts.AssumeRoleInput{
				RoleArn: aws.String("arn:aws:iam::" + contractAccountID + ":role/contract"), RoleSessionName: aws.String("contract"),
				DurationSeconds: aws.Int32(3600),
			}), func(o *creds.Options) { o.Now = clock.Now })
			t.Cleanup(keeper.Close)
			ep := startContractServer(t, map[string]server.Role{server.DefaultRole: keeper})
			secrets := append(ep.secrets, fake.setSecret(1), fake.setToken(1), fake.setSecret(2), fake.setToken(2))

			// 1. A fresh set; 2. 56 minutes later it has 4 minutes left, below
			// every window, so the SDK must get set 2.
			for n, advance := range []time.Duration{0, 56 * time.Minute} {
				set := int64(n + 1)
				clock.Advance(advance)
				res := rd.read(t, readRequest{contractEndpoint: ep, wantSecret: fake.setSecret(set), wantToken: fake.setToken(set)})
				checkSDKNoLeak(t, res.output, secrets)
				if !res.OK {
					t.Fatalf("read %d failed: %s: %s", set, res.ErrorType, res.Error)
				}
				if res.AccessKey != keeperKey(set) || !res.SecretMatches || !res.TokenMatches {
					t.Fatalf("read %d got key %s (secret matches %v, token matches %v), want %s",
						set, res.AccessKey, res.SecretMatches, res.TokenMatches, keeperKey(set))
				}
				exp, err := time.Parse(time.RFC3339, res.ExpiryTime)
				if err != nil {
					t.Fatal(err)
				}
				if left := exp.Add(rd.expiryEarly).Sub(clock.Now()); left <= widestClientWindow {
					t.Errorf("read %d: the SDK got credentials with %v left on the keeper's clock, want more than %v", set, left, widestClientWindow)
				}
			}
			if got := fake.calls.Load(); got != 2 {
				t.Errorf("AssumeRole calls = %d, want 2", got)
			}
		})
	}
}

// The wire details the SDKs above depend on, checked directly so that a
// change shows which SDK rule it breaks.
func TestContractWireFormat(t *testing.T) {
	role := contractRole{creds: contractCreds(t, "ASIAWIRE", time.Now().Add(time.Hour))}
	ep := startContractServer(t, map[string]server.Role{server.DefaultRole: role})
	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantKeys   string
	}{
		{"credentials", ep.token, http.StatusOK, "AccessKeyId,AccountId,Expiration,SecretAccessKey,Token"},
		{"error", "wrong", http.StatusForbidden, "Code,Message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ep.url(""), nil)
			req.Header.Set("Authorization", tt.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// aws-sdk-go-v2 reads an error's Code only when the type is exactly this.
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != tt.wantStatus || ct != "application/json" {
				t.Errorf("status %d, Content-Type %q; want %d, application/json", resp.StatusCode, ct, tt.wantStatus)
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 0, len(body))
			for k := range body {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if got := strings.Join(keys, ","); got != tt.wantKeys {
				t.Errorf("body keys = %s, want %s", got, tt.wantKeys)
			}
			// JS v3 fromHttp accepts only a UTC "Z" timestamp, no offset.
			if exp, ok := body["Expiration"]; ok && !rfc3339UTC.MatchString(fmt.Sprint(exp)) {
				t.Errorf("Expiration %q is not RFC 3339 UTC with Z", exp)
			}
		})
	}
}

var rfc3339UTC = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)
