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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
)

// seen is what the fake extension recorded about one request.
type seen struct {
	Path, Auth, Host string
}

// fakeExtension serves the container-credentials format on 127.0.0.1.
// respond decides the answer to the n-th request (0-based).
type fakeExtension struct {
	port    int
	mu      sync.Mutex
	seen    []seen
	respond func(n int) (status int, body any)
}

func newFakeExtension(t *testing.T, respond func(n int) (int, any)) *fakeExtension {
	t.Helper()
	f := &fakeExtension{respond: respond}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	f.port, _ = strconv.Atoi(port)
	return f
}

func (f *fakeExtension) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.seen)
	f.seen = append(f.seen, seen{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Host: r.Host})
	f.mu.Unlock()
	status, body := f.respond(n)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
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

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// env builds an Options.Getenv from a map.
func env(m map[string]string) func(*credrefresh.Options) {
	return func(o *credrefresh.Options) { o.Getenv = func(k string) string { return m[k] } }
}

func TestProviderRetrieve(t *testing.T) {
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name     string
		opts     func(port int, tokenFile string) []func(*credrefresh.Options)
		wantPath string
	}{
		{
			name: "default role from options",
			opts: func(port int, tokenFile string) []func(*credrefresh.Options) {
				return []func(*credrefresh.Options){env(nil), func(o *credrefresh.Options) {
					o.Port, o.TokenFile = port, tokenFile
				}}
			},
			wantPath: "/v1/credentials",
		},
		{
			name: "named role from WithRole",
			opts: func(port int, tokenFile string) []func(*credrefresh.Options) {
				return []func(*credrefresh.Options){env(nil), credrefresh.WithRole("reports_eu-1.v2"), func(o *credrefresh.Options) {
					o.Port, o.TokenFile = port, tokenFile
				}}
			},
			wantPath: "/v1/credentials/reports_eu-1.v2",
		},
		{
			name: "role, port and token file from the environment",
			opts: func(port int, tokenFile string) []func(*credrefresh.Options) {
				return []func(*credrefresh.Options){env(map[string]string{
					credrefresh.EnvRole:      "audit",
					credrefresh.EnvPort:      strconv.Itoa(port),
					credrefresh.EnvTokenFile: tokenFile,
				})}
			},
			wantPath: "/v1/credentials/audit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAFIRST", expires)))
			tokenFile := filepath.Join(t.TempDir(), "token")
			writeToken(t, tokenFile, "tok-1")
			p, err := credrefresh.NewProvider(tt.opts(ext.port, tokenFile)...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := aws.Credentials{
				AccessKeyID: "ASIAFIRST", SecretAccessKey: "secret-ASIAFIRST", SessionToken: "token-ASIAFIRST",
				CanExpire: true, AccountID: "123456789012",
			}
			if got.AccessKeyID != want.AccessKeyID || got.SecretAccessKey != want.SecretAccessKey ||
				got.SessionToken != want.SessionToken || got.AccountID != want.AccountID || !got.CanExpire {
				t.Errorf("credentials = key %q account %q canExpire %v, want %q %q true (secret/token match: %v/%v)",
					got.AccessKeyID, got.AccountID, got.CanExpire, want.AccessKeyID, want.AccountID,
					got.SecretAccessKey == want.SecretAccessKey, got.SessionToken == want.SessionToken)
			}
			// The cache moves Expires earlier by its window, never later.
			if !got.Expires.Before(expires) || got.Expires.Before(expires.Add(-5*time.Minute)) {
				t.Errorf("Expires = %v, want within 5m before %v", got.Expires, expires)
			}
			reqs := ext.requests()
			wantReq := seen{Path: tt.wantPath, Auth: "tok-1", Host: fmt.Sprintf("127.0.0.1:%d", ext.port)}
			if len(reqs) != 1 || reqs[0] != wantReq {
				t.Errorf("requests = %+v, want [%+v]", reqs, wantReq)
			}
		})
	}
}

func TestProviderCaching(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name      string
		first     time.Time     // Expiration of the first answer
		pause     time.Duration // between Retrieves
		wantCalls int           // after three Retrieves
		wantKey   string        // of the last Retrieve
	}{
		{"fresh credentials are served from the cache", now.Add(time.Hour), 0, 1, "ASIA0"},
		{"expired credentials are fetched again", now.Add(-time.Minute), 0, 2, "ASIA1"},
		// At most 2 s left: the window is half of that, passed after 1.1 s.
		{"short-lived credentials are fetched again after half their life", now.Add(2 * time.Second), 1100 * time.Millisecond, 2, "ASIA1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ext := newFakeExtension(t, func(n int) (int, any) {
				if n == 0 {
					return http.StatusOK, validCreds("ASIA0", tt.first)
				}
				return http.StatusOK, validCreds(fmt.Sprintf("ASIA%d", n), now.Add(time.Hour))
			})
			tokenFile := filepath.Join(t.TempDir(), "token")
			writeToken(t, tokenFile, "tok")
			p, err := credrefresh.NewProvider(env(nil), func(o *credrefresh.Options) { o.Port, o.TokenFile = ext.port, tokenFile })
			if err != nil {
				t.Fatal(err)
			}
			var last aws.Credentials
			for i := range 3 {
				if i > 0 {
					time.Sleep(tt.pause)
				}
				if last, err = p.Retrieve(context.Background()); err != nil {
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
	}
}

func TestProviderRereadsTokenFile(t *testing.T) {
	// Every answer is already expired, so every Retrieve goes to the extension.
	ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAOLD", time.Now().Add(-time.Minute))))
	tokenFile := filepath.Join(t.TempDir(), "token")
	p, err := credrefresh.NewProvider(env(nil), func(o *credrefresh.Options) { o.Port, o.TokenFile = ext.port, tokenFile })
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tok-before", "tok-after-restart"} {
		writeToken(t, tokenFile, tok)
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
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			writeToken(t, tokenFile, "tok")
			if tt.tokenFile != nil {
				tokenFile = tt.tokenFile(dir)
			}
			p, err := credrefresh.NewProvider(env(nil), func(o *credrefresh.Options) { o.Port, o.TokenFile = ext.port, tokenFile })
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
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenFile, "tok")
	p, err := credrefresh.NewProvider(env(nil), func(o *credrefresh.Options) { o.Port, o.TokenFile = port, tokenFile })
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "extension is probably not running") {
		t.Errorf("error = %v, want one saying the extension is probably not running", err)
	}
}

func TestNewProviderInvalid(t *testing.T) {
	tests := []struct {
		name     string
		opt      func(*credrefresh.Options)
		env      map[string]string
		wantText string
	}{
		{"role with a slash", credrefresh.WithRole("a/b"), nil, `role name "a/b"`},
		{"role with a space", credrefresh.WithRole("a b"), nil, `role name "a b"`},
		{"dot-dot role", credrefresh.WithRole(".."), nil, `role name ".."`},
		{"bad role from env", nil, map[string]string{credrefresh.EnvRole: "x?y"}, `role name "x?y"`},
		{"negative port", func(o *credrefresh.Options) { o.Port = -1 }, nil, "port -1"},
		{"port too large", func(o *credrefresh.Options) { o.Port = 65536 }, nil, "port 65536"},
		{"port env not a number", nil, map[string]string{credrefresh.EnvPort: "http"}, "CREDENTIAL_REFRESH_PORT"},
		{"port env out of range", nil, map[string]string{credrefresh.EnvPort: "70000"}, "port 70000"},
		{"endpoint without scheme", func(o *credrefresh.Options) { o.Endpoint = "127.0.0.1:2775/v1/credentials" }, nil, "endpoint"},
		{"endpoint with another scheme", func(o *credrefresh.Options) { o.Endpoint = "file:///etc/passwd" }, nil, "want an absolute http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []func(*credrefresh.Options){env(tt.env)}
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			_, err := credrefresh.NewProvider(opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("NewProvider error = %v, want one containing %q", err, tt.wantText)
			}
		})
	}
}

func TestEndpointOverride(t *testing.T) {
	ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAOVERRIDE", time.Now().Add(time.Hour))))
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenFile, "tok")
	p, err := credrefresh.NewProvider(env(nil), credrefresh.WithRole("ignored"), func(o *credrefresh.Options) {
		o.Endpoint = fmt.Sprintf("http://localhost:%d/custom/path", ext.port)
		o.TokenFile = tokenFile
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

func TestLoadDefaultConfig(t *testing.T) {
	ext := newFakeExtension(t, always(http.StatusOK, validCreds("ASIAFROMEXT", time.Now().Add(time.Hour))))
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenFile, "tok")
	t.Setenv(credrefresh.EnvPort, strconv.Itoa(ext.port))
	t.Setenv(credrefresh.EnvTokenFile, tokenFile)
	t.Setenv(credrefresh.EnvRole, "")
	// The execution role's reserved variables must lose to the extension.
	t.Setenv("AWS_ACCESS_KEY_ID", "ASIAEXECUTIONROLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "execution-secret")
	t.Setenv("AWS_SESSION_TOKEN", "execution-token")
	t.Setenv("AWS_REGION", "eu-west-1")

	cfg, err := credrefresh.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessKeyID != "ASIAFROMEXT" {
		t.Errorf("AccessKeyID = %s, want ASIAFROMEXT", got.AccessKeyID)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("Region = %s, want eu-west-1", cfg.Region)
	}
}
