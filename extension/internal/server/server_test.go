package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/logcapture"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds/ststest"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

const token = "tok-0123456789abcdefghijklmnopqrstuvwxyzABCD"

type env struct {
	url   string
	port  string
	sts   *ststest.Server
	clock *ststest.Clock
	logs  *logcapture.Buffer
	// bodies collects every response body, for the secret scan.
	bodies []string
}

// start runs a real server on 127.0.0.1:0 with a real keeper per role
// against the fake STS.
func start(t *testing.T, roleNames ...string) *env {
	t.Helper()
	e := &env{clock: ststest.NewClock(time.Now().UTC().Truncate(time.Second)), logs: &logcapture.Buffer{}}
	e.sts = ststest.New(t, e.clock.Now)
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	roles := map[string]server.Role{}
	for _, name := range roleNames {
		k := creds.NewKeeper(creds.AssumeRole(e.sts.Client(1), &sts.AssumeRoleInput{
			RoleArn: aws.String("arn:aws:iam::123456789012:role/" + name), RoleSessionName: aws.String("t"),
			DurationSeconds: aws.Int32(3600)}), func(o *creds.Options) {
			o.Name, o.Now, o.Logger = name, e.clock.Now, logger
			o.Identify = func(_ context.Context, c aws.Credentials) (creds.Identity, error) {
				return creds.Identity{Account: c.AccountID, Arn: "arn:aws:sts::123456789012:assumed-role/" + name + "/t", UserID: "AROA" + name + ":t"}, nil
			}
		})
		t.Cleanup(k.Close)
		roles[name] = k
	}
	srv := server.New(token, roles, func(o *server.Options) { o.Logger, o.Now, o.Mode = logger, e.clock.Now, "deferred" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	e.url = "http://" + ln.Addr().String()
	_, e.port, _ = net.SplitHostPort(ln.Addr().String())
	return e
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t *testing.T, method, path string, edit func(*http.Request)) reply {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e.bodies = append(e.bodies, string(b))
	return reply{resp.StatusCode, resp.Header, b}
}

func TestCredentialsBody(t *testing.T) {
	e := start(t, server.DefaultRole, "reader")
	for _, path := range []string{"/v1/credentials", "/v1/credentials/default", "/v1/credentials/reader"} {
		t.Run(path, func(t *testing.T) {
			r := e.do(t, http.MethodGet, path, nil)
			if r.status != 200 || r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d headers %v", r.status, r.header)
			}
			var got map[string]string
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"} {
				if got[k] == "" {
					t.Errorf("missing %s in %s", k, r.body)
				}
			}
			exp, err := time.Parse(time.RFC3339, got["Expiration"])
			if err != nil || !strings.HasSuffix(got["Expiration"], "Z") || !exp.Equal(e.clock.Now().Add(time.Hour)) {
				t.Errorf("Expiration %q: want UTC RFC 3339 with Z, an hour ahead", got["Expiration"])
			}
			if !strings.HasPrefix(got["AccessKeyId"], "ASIA") || got["AccountId"] != "123456789012" {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	e := start(t, server.DefaultRole)
	cases := []struct {
		name   string
		method string
		path   string
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"missing token", "GET", "/v1/credentials", func(r *http.Request) { r.Header.Del("Authorization") }, 401, "MissingToken"},
		{"wrong token", "GET", "/v1/credentials", func(r *http.Request) { r.Header.Set("Authorization", "nope") }, 403, "InvalidToken"},
		{"truncated token", "GET", "/v1/credentials", func(r *http.Request) { r.Header.Set("Authorization", token[:len(token)-1]) }, 403, "InvalidToken"},
		{"bearer prefix", "GET", "/v1/credentials", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, 403, "InvalidToken"},
		{"foreign host", "GET", "/v1/credentials", func(r *http.Request) { r.Host = "evil.example:" + e.port }, 403, "InvalidHost"},
		{"other port", "GET", "/v1/credentials", func(r *http.Request) { r.Host = "127.0.0.1:1" }, 403, "InvalidHost"},
		{"no port", "GET", "/v1/credentials", func(r *http.Request) { r.Host = "127.0.0.1" }, 403, "InvalidHost"},
		{"localhost ok", "GET", "/v1/credentials", func(r *http.Request) { r.Host = "localhost:" + e.port }, 200, ""},
		{"post", "POST", "/v1/credentials", nil, 405, "MethodNotAllowed"},
		{"put", "PUT", "/v1/credentials", nil, 405, "MethodNotAllowed"},
		{"delete", "DELETE", "/v1/health", nil, 405, "MethodNotAllowed"},
		{"unknown role", "GET", "/v1/credentials/writer", nil, 404, "RoleNotFound"},
		{"nested path", "GET", "/v1/credentials/default/x", nil, 404, "RoleNotFound"},
		{"unknown path", "GET", "/v2/credentials", nil, 404, "NotFound"},
		{"body", "GET", "/v1/credentials", func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), 1
		}, 413, "BodyNotAllowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.edit)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code == "" {
				return
			}
			var eb struct{ Code, Message string }
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Code != tc.code || eb.Message == "" ||
				r.header.Get("Content-Type") != "application/json" {
				t.Errorf("body %s (%v), want Code %s", r.body, err, tc.code)
			}
		})
	}
	if r := e.do(t, "HEAD", "/v1/credentials", nil); r.status != 200 || len(r.body) != 0 {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
	e.scanForSecrets(t)
}

func TestUnavailableIs503WithRetryAfter(t *testing.T) {
	e := start(t, server.DefaultRole)
	e.sts.Fail(&ststest.Failure{Status: 503, Code: "ServiceUnavailable", Message: "STS is down"})
	for i := range 2 {
		r := e.do(t, "GET", "/v1/credentials", nil)
		var eb struct{ Code, Message string }
		_ = json.Unmarshal(r.body, &eb)
		if r.status != 503 || eb.Code != "CredentialsUnavailable" || !strings.Contains(eb.Message, "ServiceUnavailable") {
			t.Fatalf("try %d: %d %s", i, r.status, r.body)
		}
		if i == 1 && r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After during backoff")
		}
	}
	var h struct {
		Status string
		Roles  map[string]creds.Health
	}
	if err := json.Unmarshal(e.do(t, "GET", "/v1/health", nil).body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "degraded" || h.Roles["default"].LastErrorCode != "ServiceUnavailable" || h.Roles["default"].STSCalls != 1 {
		t.Errorf("health %+v", h)
	}
	e.sts.Fail(nil)
	e.clock.Advance(time.Minute)
	if r := e.do(t, "GET", "/v1/credentials", nil); r.status != 200 {
		t.Errorf("no recovery: %d %s", r.status, r.body)
	}
}

func TestHealthHasNoSecrets(t *testing.T) {
	e := start(t, server.DefaultRole, "reader")
	e.do(t, "GET", "/v1/credentials", nil)
	r := e.do(t, "GET", "/v1/health", nil)
	var h struct {
		Status, Mode string
		Roles        map[string]creds.Health
	}
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatal(err)
	}
	d := h.Roles["default"]
	if h.Status != "ok" || h.Mode != "deferred" || d.State != creds.StateFresh || d.Expiration == nil || d.Served != 1 ||
		h.Roles["reader"].State != creds.StateEmpty {
		t.Errorf("health %s", r.body)
	}
	for _, c := range e.sts.Issued() {
		if strings.Contains(string(r.body), c.SecretAccessKey) || strings.Contains(string(r.body), c.SessionToken) {
			t.Fatal("health shows a secret")
		}
	}
}

// scanForSecrets: no log line and no error body holds a secret key, a
// session token or the auth token.
func (e *env) scanForSecrets(t *testing.T) {
	t.Helper()
	secrets := []string{token}
	for _, c := range e.sts.Issued() {
		secrets = append(secrets, c.SecretAccessKey, c.SessionToken)
	}
	haystacks := append([]string{e.logs.String()}, e.bodies...)
	for i, h := range haystacks {
		if i > 0 && strings.Contains(h, `"SecretAccessKey"`) {
			continue // a 200 credentials body is meant to carry them
		}
		for _, s := range secrets {
			if strings.Contains(h, s) {
				t.Fatalf("secret found in %s", map[bool]string{true: "logs", false: "a response body"}[i == 0])
			}
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	e := start(t, server.DefaultRole)
	e.do(t, "GET", "/v1/credentials", nil)
	e.do(t, "GET", "/v1/credentials", func(r *http.Request) { r.Header.Set("Authorization", token+"x") })
	e.do(t, "GET", "/v1/credentials/"+token, nil)
	e.do(t, "GET", "/v1/credentials", func(r *http.Request) { r.Host = token })
	e.sts.Fail(&ststest.Failure{Status: 403, Code: "AccessDenied", Message: "not authorized"})
	e.clock.Advance(2 * time.Hour)
	e.do(t, "GET", "/v1/credentials", nil)
	e.do(t, "GET", "/v1/health", nil)
	if len(e.sts.Issued()) == 0 || !strings.Contains(e.logs.String(), "credentials refreshed") {
		t.Fatal("the scan would be vacuous")
	}
	e.scanForSecrets(t)
}

// An expired credential from a Role is never served, whatever the Role does.
func TestNeverServesExpired(t *testing.T) {
	past := time.Now().Add(-time.Second)
	srv := server.New(token, map[string]server.Role{server.DefaultRole: staticRole{aws.Credentials{
		AccessKeyID: "ASIAOLD", SecretAccessKey: "old-secret", SessionToken: "old-token", CanExpire: true, Expires: past}}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, localRequest("GET", "/v1/credentials", token))
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "old-secret") {
		t.Fatalf("served an expired credential: %d %s", rec.Code, rec.Body)
	}
}

type staticRole struct{ c aws.Credentials }

func (s staticRole) Credentials(context.Context) (aws.Credentials, error) { return s.c, nil }
func (s staticRole) Refresh(context.Context) (aws.Credentials, error)     { return s.c, nil }
func (s staticRole) Identity(context.Context) (creds.Identity, error) {
	return creds.Identity{Account: "123456789012", Arn: "arn:aws:sts::123456789012:assumed-role/static/s", UserID: "AROASTATIC:s"}, nil
}
func (s staticRole) Health() creds.Health { return creds.Health{State: creds.StateFresh} }

type failingRole struct{}

func (failingRole) Credentials(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("boom")
}
func (failingRole) Refresh(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("boom")
}
func (failingRole) Identity(context.Context) (creds.Identity, error) {
	return creds.Identity{}, errors.New("boom")
}
func (failingRole) Health() creds.Health { return creds.Health{State: creds.StateFailing} }

// localRequest builds a request as if it arrived on 127.0.0.1:2775.
func localRequest(method, path, tok string) *http.Request {
	r := httptest.NewRequest(method, "http://127.0.0.1:2775"+path, nil)
	r.Header.Set("Authorization", tok)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2775}
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
}

func FuzzServeHTTP(f *testing.F) {
	f.Add("GET", "/v1/credentials", "127.0.0.1:2775", token)
	f.Add("GET", "/v1/credentials/other", "localhost:2775", token)
	f.Add("POST", "/v1/health", "127.0.0.1:2775", "")
	f.Add("GET", "/v1/credentials/../health", "evil:2775", token[:5])
	f.Add("HEAD", "//v1/credentials", "127.0.0.1", "Bearer x")
	f.Add("POST", "/v1/credentials/default/refresh", "127.0.0.1:2775", token)
	f.Add("GET", "/v1/identity/broken", "127.0.0.1:2775", token)
	secret := "fuzz-secret-value"
	srv := server.New(token, map[string]server.Role{
		server.DefaultRole: staticRole{aws.Credentials{AccessKeyID: "ASIAFUZZ", SecretAccessKey: secret,
			SessionToken: "fuzz-session", CanExpire: true, Expires: time.Now().Add(time.Hour)}},
		"broken": failingRole{},
	})
	f.Fuzz(func(t *testing.T, method, path, host, tok string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t?#%") || strings.ContainsAny(method, " \r\n\t") || method == "" {
			return
		}
		r := localRequest("GET", "/", tok)
		r.Method, r.URL.Path, r.Host = method, path, host
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		body := rec.Body.String()
		if !json.Valid([]byte(body)) || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d: not JSON: %q", rec.Code, body)
		}
		leaked := strings.Contains(body, secret)
		authorized := tok == token && (host == "127.0.0.1:2775" || strings.EqualFold(host, "localhost:2775"))
		legit := rec.Code == 200 && authorized && (method == "GET" || method == "HEAD")
		if leaked && !legit {
			t.Fatalf("secret served to %s %s host=%q", method, path, host)
		}
		if rec.Code == 200 && !authorized {
			t.Fatalf("200 for %s %s host=%q", method, path, host)
		}
		if rec.Code == 200 && method == "POST" && !strings.HasSuffix(path, "/refresh") {
			t.Fatalf("200 for POST %s", path)
		}
	})
}

func BenchmarkCredentialsGET(b *testing.B) {
	newServer := func() *server.Server {
		return server.New(token, map[string]server.Role{server.DefaultRole: staticRole{aws.Credentials{
			AccessKeyID: "ASIABENCH", SecretAccessKey: "s", SessionToken: strings.Repeat("t", 800),
			CanExpire: true, Expires: time.Now().Add(time.Hour), AccountID: "123456789012"}}})
	}
	b.Run("handler", func(b *testing.B) {
		srv := newServer()
		req := localRequest("GET", "/v1/credentials", token)
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("loopback", func(b *testing.B) {
		srv := newServer()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Shutdown(context.Background())
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/credentials", nil)
		req.Header.Set("Authorization", token)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// TestRefreshAndIdentityRoutes: the forced refresh answers the new expiry
// and key id only, shares nothing secret, and is rate-limited per role with
// 429 + Retry-After; the token is checked first even then. /v1/identity
// answers who the served credentials are.
func TestRefreshAndIdentityRoutes(t *testing.T) {
	e := start(t, server.DefaultRole, "reader")
	first := e.do(t, "GET", "/v1/credentials/reader", nil)
	r := e.do(t, "POST", "/v1/credentials/reader/refresh", nil)
	var got map[string]string
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil || len(got) != 2 || got["AccessKeyId"] == "" ||
		strings.Contains(string(first.body), `"AccessKeyId":"`+got["AccessKeyId"]+`"`) || !strings.HasSuffix(got["Expiration"], "Z") {
		t.Fatalf("POST refresh: %d %s; want 200 with a new AccessKeyId and Expiration only", r.status, r.body)
	}
	r = e.do(t, "POST", "/v1/credentials/reader/refresh", nil)
	if r.status != 429 || r.header.Get("Retry-After") != "10" || !strings.Contains(string(r.body), `"TooManyRefreshes"`) {
		t.Errorf("second POST: %d %q %s; want 429 with Retry-After 10", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r := e.do(t, "POST", "/v1/credentials/reader/refresh", func(r *http.Request) { r.Header.Del("Authorization") }); r.status != 401 {
		t.Errorf("POST without a token while rate-limited: %d, want 401", r.status)
	}
	if r := e.do(t, "POST", "/v1/credentials/default/refresh", nil); r.status != 200 {
		t.Errorf("the default role's refresh: %d %s (its own limit)", r.status, r.body)
	}
	for path, want := range map[string]string{"/v1/identity": "assumed-role/default/t", "/v1/identity/reader": "assumed-role/reader/t"} {
		r := e.do(t, "GET", path, nil)
		var id map[string]string
		if r.status != 200 || json.Unmarshal(r.body, &id) != nil || !strings.HasSuffix(id["Arn"], want) || id["Account"] != "123456789012" || id["UserId"] == "" {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v1/credentials/nope/refresh", 404, "RoleNotFound"},
		{"GET", "/v1/identity/nope", 404, "RoleNotFound"},
		{"POST", "/v1/credentials", 405, "MethodNotAllowed"},
		{"POST", "/v1/identity", 405, "MethodNotAllowed"},
		{"PUT", "/v1/credentials/reader/refresh", 405, "MethodNotAllowed"},
		{"GET", "/v1/credentials/../health", 404, "NotFound"},
	}
	for _, tc := range cases {
		r := e.do(t, tc.method, tc.path, nil)
		if r.status != tc.status || !strings.Contains(string(r.body), `"Code":"`+tc.code+`"`) {
			t.Errorf("%s %s: %d %s; want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	e.scanForSecrets(t)
}
