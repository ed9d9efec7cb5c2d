package credrefresh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
)

// seen is what the fake extension recorded about one request.
type seen struct {
	Path, Auth, Host string
}

// fakeExtension serves the container-credentials format. respond decides
// the answer to the n-th request (0-based).
type fakeExtension struct {
	port    int // of its httptest server, if it has one
	mu      sync.Mutex
	seen    []seen
	respond func(n int) (status int, body any)
}

// newFakeExtension serves on 127.0.0.1 until the test ends.
func newFakeExtension(t *testing.T, respond func(n int) (int, any)) *fakeExtension {
	t.Helper()
	f := &fakeExtension{respond: respond}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	f.port, _ = strconv.Atoi(port)
	return f
}

func (f *fakeExtension) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.seen)
	f.seen = append(f.seen, seen{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Host: r.Host})
	f.mu.Unlock()
	status, body := f.respond(n)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Do answers in memory, without a socket: inside a synctest bubble a
// goroutine waiting on the network would stop the fake clock.
func (f *fakeExtension) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (f *fakeExtension) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.seen...)
}

type credsBody struct {
	AccessKeyId, SecretAccessKey, Token, Expiration, AccountId string
}

type errorBody struct {
	Code, Message string
}

func validCreds(key string, expires time.Time) credsBody {
	return credsBody{
		AccessKeyId:     key,
		SecretAccessKey: "secret-" + key,
		Token:           "token-" + key,
		Expiration:      expires.UTC().Format(time.RFC3339),
		AccountId:       "123456789012",
	}
}

// always answers every request with the same body.
func always(status int, body any) func(int) (int, any) {
	return func(int) (int, any) { return status, body }
}

// tokenFile writes token to a new file and returns its path.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, token)
	return path
}

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// at points a provider at the fake extension's port and a token file.
func at(port int, tokenFile string) func(*credrefresh.Options) {
	return func(o *credrefresh.Options) { o.Port, o.TokenFile = port, tokenFile }
}

func TestProviderRetrieve(t *testing.T) {
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name     string
		role     string
		wantPath string
	}{
		{"default role", "", "/v1/credentials"},
		{"named role", "reports_eu-1.v2", "/v1/credentials/reports_eu-1.v2"},
		{"64-character role", strings.Repeat("r", 64), "/v1/credentials/" + strings.Repeat("r", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAFIRST", expires)))
			p, err := credrefresh.New(at(ext.port, tokenFile(t, "tok-1")), func(o *credrefresh.Options) { o.Role = tt.role })
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// No cache: Expires is exactly what the extension served.
			want := aws.Credentials{
				AccessKeyID: "ASIAFIRST", SecretAccessKey: "secret-ASIAFIRST", SessionToken: "token-ASIAFIRST",
				Source: credrefresh.ProviderName, CanExpire: true, Expires: expires, AccountID: "123456789012",
			}
			if got != want {
				t.Errorf("credentials = key %q source %q account %q canExpire %v expires %v, want %q %q %q true %v (secret/token match: %v/%v)",
					got.AccessKeyID, got.Source, got.AccountID, got.CanExpire, got.Expires,
					want.AccessKeyID, want.Source, want.AccountID, want.Expires,
					got.SecretAccessKey == want.SecretAccessKey, got.SessionToken == want.SessionToken)
			}
			reqs := ext.requests()
			wantReq := seen{Path: tt.wantPath, Auth: "tok-1", Host: fmt.Sprintf("127.0.0.1:%d", ext.port)}
			if len(reqs) != 1 || reqs[0] != wantReq {
				t.Errorf("requests = %+v, want [%+v]", reqs, wantReq)
			}
		})
	}
}

// The provider does not cache; behind the cache LoadDefaultConfig gives it,
// the window is DefaultExpiryWindow capped at half the lifetime. Virtual
// time: the waits cost nothing.
func TestProviderBehindCache(t *testing.T) {
	tests := []struct {
		name      string
		first     time.Duration // lifetime of the first answer
		pause     time.Duration // before the second and the third Retrieve
		wantCalls int           // after three Retrieves
		wantKey   string        // of the last Retrieve
	}{
		{"fresh credentials are served from the cache", time.Hour, 0, 1, "ASIA0"},
		{"before the 5-minute window they are served from the cache", 12 * time.Minute, 3*time.Minute + 29*time.Second, 1, "ASIA0"},
		{"inside the 5-minute window they are fetched again", 12 * time.Minute, 3*time.Minute + 31*time.Second, 2, "ASIA1"},
		{"expired credentials are fetched again", -time.Minute, 0, 2, "ASIA1"},
		{"the window ends at half a short lifetime", 2 * time.Second, 450 * time.Millisecond, 1, "ASIA0"},
		{"short-lived credentials are fetched again after half their life", 2 * time.Second, 1100 * time.Millisecond, 2, "ASIA1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				now := time.Now()
				ext := &fakeExtension{respond: func(n int) (int, any) {
					if n == 0 {
						return http.StatusOK, validCreds("ASIA0", now.Add(tt.first))
					}
					return http.StatusOK, validCreds(fmt.Sprintf("ASIA%d", n), now.Add(time.Hour))
				}}
				p, err := credrefresh.New(at(credrefresh.DefaultPort, tokenFile(t, "tok")),
					func(o *credrefresh.Options) { o.HTTPClient = ext })
				if err != nil {
					t.Fatal(err)
				}
				cache := aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
					o.ExpiryWindow = credrefresh.DefaultExpiryWindow
				})
				var last aws.Credentials
				for i := range 3 {
					if i > 0 {
						time.Sleep(tt.pause)
					}
					if last, err = cache.Retrieve(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				if got := len(ext.requests()); got != tt.wantCalls {
					t.Errorf("extension saw %d requests, want %d", got, tt.wantCalls)
				}
				if last.AccessKeyID != tt.wantKey {
					t.Errorf("last key = %s, want %s", last.AccessKeyID, tt.wantKey)
				}
			})
		})
	}
}

func TestProviderRereadsTokenFile(t *testing.T) {
	ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAOLD", time.Now().Add(time.Hour))))
	path := tokenFile(t, "unused")
	p, err := credrefresh.New(at(ext.port, path))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tok-before", "tok-after-restart"} {
		writeToken(t, path, tok)
		if _, err := p.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range ext.requests() {
		got = append(got, r.Auth)
	}
	if want := "tok-before tok-after-restart"; strings.Join(got, " ") != want {
		t.Errorf("Authorization headers = %q, want %q", got, want)
	}
}

func TestProviderErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       any
		tokenFile  func(dir string) string
		wantCode   string
		wantStatus int
		wantText   string
	}{
		{
			name: "401 is surfaced with its code", status: http.StatusUnauthorized,
			body:     errorBody{"Unauthorized", "missing or wrong token"},
			wantCode: "Unauthorized", wantStatus: http.StatusUnauthorized, wantText: "missing or wrong token",
		},
		{
			name: "404 unknown role", status: http.StatusNotFound,
			body:     errorBody{"RoleNotFound", `no role "nope"`},
			wantCode: "RoleNotFound", wantStatus: http.StatusNotFound,
		},
		{
			name: "missing token file", status: http.StatusOK, body: validCreds("ASIA", time.Now().Add(time.Hour)),
			tokenFile: func(dir string) string { return filepath.Join(dir, "absent") },
			wantText:  "extension is probably not running",
		},
		{
			name: "empty token file", status: http.StatusOK, body: validCreds("ASIA", time.Now().Add(time.Hour)),
			tokenFile: func(dir string) string {
				p := filepath.Join(dir, "empty")
				_ = os.WriteFile(p, nil, 0o600)
				return p
			},
			wantText: "is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ext := newFakeExtension(t, always(tt.status, tt.body))
			path := tokenFile(t, "tok")
			if tt.tokenFile != nil {
				path = tt.tokenFile(t.TempDir())
			}
			p, err := credrefresh.New(at(ext.port, path))
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Retrieve(context.Background())
			if err == nil {
				t.Fatal("Retrieve succeeded, want an error")
			}
			checkError(t, err, tt.wantCode, tt.wantStatus, tt.wantText)
		})
	}
}

func checkError(t *testing.T, err error, code string, status int, text string) {
	t.Helper()
	if code != "" {
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
			t.Errorf("error %v: want API error code %s", err, code)
		}
	}
	if status != 0 {
		var withStatus interface{ HTTPStatusCode() int }
		if !errors.As(err, &withStatus) || withStatus.HTTPStatusCode() != status {
			t.Errorf("error %v: want HTTP status %d", err, status)
		}
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("error %q: want it to contain %q", err, text)
	}
	if strings.Contains(err.Error(), "tok") && !strings.Contains(err.Error(), "token") {
		t.Errorf("error %q leaks the auth token", err)
	}
}

func TestProviderExtensionNotListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p, err := credrefresh.New(at(port, tokenFile(t, "tok")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "extension is probably not running") {
		t.Errorf("error = %v, want one saying the extension is probably not running", err)
	}
}

// New applies the extension's rules (extension/internal/config) to a role
// name and a port.
func TestNewInvalid(t *testing.T) {
	role := func(name string) func(*credrefresh.Options) {
		return func(o *credrefresh.Options) { o.Role = name }
	}
	port := func(p int) func(*credrefresh.Options) {
		return func(o *credrefresh.Options) { o.Port = p }
	}
	tests := []struct {
		name     string
		opt      func(*credrefresh.Options)
		wantText string
	}{
		{"role with a slash", role("a/b"), `role name "a/b"`},
		{"role with a space", role("a b"), `role name "a b"`},
		{"dot role", role("."), `role name "."`},
		{"dot-dot role", role(".."), `role name ".."`},
		{"65-character role", role(strings.Repeat("r", 65)), "must be 1-64 characters"},
		{"negative port", port(-1), `"-1" must be a whole number from 1024 to 65535`},
		{"privileged port", port(1023), `"1023" must be a whole number from 1024 to 65535`},
		{"port too large", port(65536), `"65536" must be a whole number from 1024 to 65535`},
		{"AppConfig's port", port(2772), "AppConfig"},
		{"Parameters and Secrets' port", port(2773), "Parameters and Secrets"},
		{"the Runtime API's port", port(9001), "Runtime API"},
		{"endpoint without scheme", func(o *credrefresh.Options) { o.Endpoint = "127.0.0.1:2775/v1/credentials" }, "endpoint"},
		{"endpoint with another scheme", func(o *credrefresh.Options) { o.Endpoint = "file:///etc/passwd" }, "want an absolute http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := credrefresh.New(tt.opt)
			if err == nil || !strings.HasPrefix(err.Error(), "credrefresh: ") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("New = %v, %v; want an error containing %q", p, err, tt.wantText)
			}
		})
	}
}

func TestNewValidEdges(t *testing.T) {
	for _, port := range []int{0, 1024, 65535} {
		if _, err := credrefresh.New(func(o *credrefresh.Options) { o.Port, o.Role = port, "a" }); err != nil {
			t.Errorf("port %d: %v", port, err)
		}
	}
}

func TestEndpointOverride(t *testing.T) {
	ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAOVERRIDE", time.Now().Add(time.Hour))))
	p, err := credrefresh.New(func(o *credrefresh.Options) {
		o.Role, o.Port = "ignored/even/if/invalid", 1
		o.Endpoint = fmt.Sprintf("http://localhost:%d/custom/path", ext.port)
		o.TokenFile = tokenFile(t, "tok")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reqs := ext.requests(); len(reqs) != 1 || reqs[0].Path != "/custom/path" {
		t.Errorf("requests = %+v, want one to /custom/path", reqs)
	}
}

// setLambdaEnv sets what Lambda gives a provided.al2023 function, with the
// execution role's reserved credentials, which must lose to the extension.
func setLambdaEnv(t *testing.T, port int, tokenFile, role string) {
	t.Setenv(credrefresh.EnvPort, strconv.Itoa(port))
	t.Setenv(credrefresh.EnvTokenFile, tokenFile)
	t.Setenv(credrefresh.EnvRole, role)
	t.Setenv("AWS_ACCESS_KEY_ID", "ASIAEXECUTIONROLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "execution-secret")
	t.Setenv("AWS_SESSION_TOKEN", "execution-token")
	t.Setenv("AWS_REGION", "eu-west-1")
}

func TestLoadDefaultConfig(t *testing.T) {
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name       string
		role       string
		opts       []func(*config.LoadOptions) error
		wantPath   string
		wantWindow time.Duration // how much earlier than served the cache reports Expires
	}{
		{name: "defaults", wantPath: "/v1/credentials", wantWindow: credrefresh.DefaultExpiryWindow},
		{name: "role from the environment, spaces trimmed", role: " audit ", wantPath: "/v1/credentials/audit", wantWindow: credrefresh.DefaultExpiryWindow},
		{
			name: "the caller's cache options replace the window",
			opts: []func(*config.LoadOptions) error{config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
				o.ExpiryWindow = 10 * time.Minute
			})},
			wantPath: "/v1/credentials", wantWindow: 10 * time.Minute,
		},
		{
			name: "cache options that leave the window keep ours",
			opts: []func(*config.LoadOptions) error{config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
				o.ExpiryWindowJitterFrac = 0
			})},
			wantPath: "/v1/credentials", wantWindow: credrefresh.DefaultExpiryWindow,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAFROMEXT", expires)))
			setLambdaEnv(t, ext.port, tokenFile(t, "tok"), tt.role)
			cfg, err := credrefresh.LoadDefaultConfig(context.Background(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessKeyID != "ASIAFROMEXT" || got.Source != credrefresh.ProviderName {
				t.Errorf("AccessKeyID, Source = %s, %s; want ASIAFROMEXT, %s", got.AccessKeyID, got.Source, credrefresh.ProviderName)
			}
			if window := expires.Sub(got.Expires); window != tt.wantWindow {
				t.Errorf("Expires = %v: %v before the served expiry, want %v", got.Expires, window, tt.wantWindow)
			}
			if reqs := ext.requests(); len(reqs) != 1 || reqs[0].Path != tt.wantPath || reqs[0].Auth != "tok" {
				t.Errorf("requests = %+v, want one to %s with the token", reqs, tt.wantPath)
			}
			if cfg.Region != "eu-west-1" {
				t.Errorf("Region = %s, want eu-west-1", cfg.Region)
			}
		})
	}
}

// The caller's own provider wins over the extension's.
func TestLoadDefaultConfigCallerProvider(t *testing.T) {
	setLambdaEnv(t, credrefresh.DefaultPort, "/nonexistent", "")
	mine := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDMINE", SecretAccessKey: "s"}, nil
	})
	cfg, err := credrefresh.LoadDefaultConfig(context.Background(), config.WithCredentialsProvider(mine))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.Credentials.Retrieve(context.Background()); err != nil || got.AccessKeyID != "AKIDMINE" {
		t.Errorf("Retrieve = %s, %v; want AKIDMINE", got.AccessKeyID, err)
	}
}

// The variables follow the extension's rules, and the error names the
// variable.
func TestLoadDefaultConfigInvalidEnv(t *testing.T) {
	tests := []struct {
		name, envVar, value, wantText string
	}{
		{"port not a number", credrefresh.EnvPort, "http", `CREDENTIAL_REFRESH_PORT: "http" must be a whole number from 1024 to 65535`},
		{"port with a leading zero", credrefresh.EnvPort, "02775", `CREDENTIAL_REFRESH_PORT: "02775" must be written as a plain number`},
		{"port with a sign", credrefresh.EnvPort, "+2775", `CREDENTIAL_REFRESH_PORT: "+2775" must be written as a plain number`},
		{"port zero", credrefresh.EnvPort, "0", `CREDENTIAL_REFRESH_PORT: "0" must be a whole number from 1024 to 65535`},
		{"privileged port", credrefresh.EnvPort, "80", `CREDENTIAL_REFRESH_PORT: "80" must be a whole number`},
		{"port too large", credrefresh.EnvPort, "70000", `CREDENTIAL_REFRESH_PORT: "70000" must be a whole number`},
		{"reserved port", credrefresh.EnvPort, "2773", "Parameters and Secrets"},
		{"role with a question mark", credrefresh.EnvRole, "x?y", `CREDENTIAL_REFRESH_CLIENT_ROLE: role name "x?y"`},
		{"65-character role", credrefresh.EnvRole, strings.Repeat("r", 65), "CREDENTIAL_REFRESH_CLIENT_ROLE: role name"},
		{"dot-dot role", credrefresh.EnvRole, "..", `CREDENTIAL_REFRESH_CLIENT_ROLE: role name ".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(credrefresh.EnvPort, "")
			t.Setenv(credrefresh.EnvRole, "")
			t.Setenv(tt.envVar, tt.value)
			_, err := credrefresh.LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-1"))
			if err == nil || !strings.HasPrefix(err.Error(), "credrefresh: ") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("LoadDefaultConfig error = %v, want one containing %q", err, tt.wantText)
			}
		})
	}
}
