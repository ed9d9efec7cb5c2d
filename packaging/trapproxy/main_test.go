package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// Both ways a client uses a proxy are refused and logged: CONNECT for
// https, an absolute URL for plain http.
func TestTrapRefusesAndLogs(t *testing.T) {
	var log bytes.Buffer
	srv := httptest.NewServer(trap(&log))
	proxy, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}

	if _, err := client.Get("https://pypi.org/pypi/aws-sam-cli/json"); err == nil {
		t.Error("https GET through the trap succeeded, want the CONNECT refused")
	}
	resp, err := client.Get("http://example.com/telemetry")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("http GET through the trap: status %d, want 403", resp.StatusCode)
	}
	srv.Close() // waits for the handlers: log is complete
	if want := "CONNECT pypi.org:443\nGET http://example.com/telemetry\n"; log.String() != want {
		t.Errorf("log = %q, want %q", log.String(), want)
	}
}
