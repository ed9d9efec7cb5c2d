package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

// TestEncodedOncePerCredentialSet: the body is encoded once per credential
// set and written as is, byte for byte the same as before, and a new set
// (a forced refresh) gets a new body at once.
func TestEncodedOncePerCredentialSet(t *testing.T) {
	e := start(t, server.DefaultRole)
	first := e.do(t, "GET", "/v1/credentials", nil)
	again := e.do(t, "GET", "/v1/credentials/default", nil)
	if first.status != 200 || !bytes.Equal(first.body, again.body) || first.header.Get("Content-Length") != again.header.Get("Content-Length") {
		t.Fatalf("two GETs of one set: %d %q / %q", first.status, first.body, again.body)
	}
	var got map[string]string
	if err := json.Unmarshal(first.body, &got); err != nil || !bytes.HasSuffix(first.body, []byte("}\n")) {
		t.Fatalf("body %q: %v", first.body, err)
	}
	if r := e.do(t, "POST", "/v1/credentials/default/refresh", nil); r.status != 200 {
		t.Fatalf("forced refresh: %d %s", r.status, r.body)
	}
	fresh := e.do(t, "GET", "/v1/credentials", nil)
	var next map[string]string
	if err := json.Unmarshal(fresh.body, &next); err != nil || next["AccessKeyId"] == got["AccessKeyId"] || next["Token"] == got["Token"] {
		t.Errorf("after a forced refresh the old body is still served: %s", fresh.body)
	}
	e.scanForSecrets(t)
}

// TestCredentialsHotPathAllocatesNothing: past net/http's own work, a GET
// served from cache allocates nothing in the server or the keeper.
func TestCredentialsHotPathAllocatesNothing(t *testing.T) {
	srv := server.New(token, map[string]server.Role{server.DefaultRole: staticRole{aws.Credentials{
		AccessKeyID: "ASIAALLOC", SecretAccessKey: "s", SessionToken: strings.Repeat("t", 400),
		CanExpire: true, Expires: time.Now().Add(time.Hour), AccountID: "123456789012"}}})
	req := localRequest("GET", "/v1/credentials", token)
	w := &discardWriter{h: http.Header{}}
	srv.ServeHTTP(w, req) // the first encodes the body
	if n := testing.AllocsPerRun(100, func() { clear(w.h); srv.ServeHTTP(w, req) }); n != 0 {
		t.Errorf("%.0f allocations per GET, want 0", n)
	}
	if w.status != 200 || w.n == 0 {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
}

type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// TestNoRequestHeldPastTheClientTimeout: with nothing servable and STS slow
// (3 s), a GET is answered 503 RefreshInProgress with Retry-After after
// about 800 ms, under JS v3's 1 s, while the refresh goes on; once it
// lands, the next GET gets its credentials, from that one STS call.
func TestNoRequestHeldPastTheClientTimeout(t *testing.T) {
	e := start(t, server.DefaultRole)
	e.sts.SetDelay(3 * time.Second)
	begin := time.Now()
	r := e.do(t, "GET", "/v1/credentials", nil)
	took := time.Since(begin)
	var eb struct{ Code, Message string }
	_ = json.Unmarshal(r.body, &eb)
	if r.status != 503 || eb.Code != "CredentialsUnavailable" || !strings.Contains(eb.Message, "not available yet") || r.header.Get("Retry-After") != "1" {
		t.Fatalf("%d %q Retry-After %q: %s; want 503 with Retry-After 1", r.status, eb.Code, r.header.Get("Retry-After"), r.body)
	}
	if took < creds.DefaultRequestWait || took > time.Second {
		t.Errorf("answered after %s; want %s, under the 1 s client timeout", took, creds.DefaultRequestWait)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r = e.do(t, "GET", "/v1/credentials", nil); r.status != 200 && time.Now().Before(deadline); r = e.do(t, "GET", "/v1/credentials", nil) {
		time.Sleep(200 * time.Millisecond)
	}
	if r.status != 200 || e.sts.Calls() != 1 {
		t.Errorf("after the refresh: %d, %d STS calls; want 200 from the one call", r.status, e.sts.Calls())
	}
}

// The handler benchmark without httptest.ResponseRecorder's own copies.
func BenchmarkCredentialsHandler(b *testing.B) {
	srv := server.New(token, map[string]server.Role{server.DefaultRole: staticRole{aws.Credentials{
		AccessKeyID: "ASIABENCH", SecretAccessKey: "s", SessionToken: strings.Repeat("t", 400),
		CanExpire: true, Expires: time.Now().Add(time.Hour), AccountID: "123456789012"}}})
	req := localRequest("GET", "/v1/credentials", token)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		srv.ServeHTTP(w, req)
	}
}
