package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind says what the proxy saw or did.
type EventKind string

const (
	// AssumeRole: an STS AssumeRole that moto answered with credentials.
	AssumeRole EventKind = "AssumeRole"
	// AssumeRoleFailed: an AssumeRole that moto answered with an error.
	AssumeRoleFailed EventKind = "AssumeRoleFailed"
	// STSDown: an STS request the proxy answered 503 because STS is "down".
	STSDown EventKind = "STSDown"
	// ExpiredToken: a request signed with a temporary key past its
	// Expiration, answered 400 ExpiredToken.
	ExpiredToken EventKind = "ExpiredToken"
	// Forwarded: any other request, forwarded to moto.
	Forwarded EventKind = "Forwarded"
	// Revoked: a request signed with a temporary key issued before
	// RevokeSessions' time, answered 403 AccessDenied.
	Revoked EventKind = "Revoked"
)

// Event is one request through the proxy. It never holds secrets: only the
// access key ID that signed the request.
type Event struct {
	Time        time.Time
	Kind        EventKind
	Service     string // from the SigV4 credential scope: sts, s3, ...
	Method      string
	Path        string
	AccessKeyID string    // the signer; for AssumeRole, the key issued
	Expiration  time.Time // AssumeRole: the issued key's Expiration; ExpiredToken: the key's
	Status      int
	// Signer is the access key ID that signed the request, for every kind
	// (AccessKeyID of an AssumeRole is the key it issued): it shows which
	// base credentials the extension used.
	Signer string
}

// Proxy is the expiry-enforcing reverse proxy in front of moto. moto itself
// accepts temporary keys after their Expiration; AWS answers 400
// ExpiredToken, and so does the proxy.
type Proxy struct {
	URL string

	srv     *http.Server
	rp      *httputil.ReverseProxy
	now     func() time.Time
	stsDown atomic.Bool

	mu      sync.Mutex
	revoked time.Time            // keys issued before this are refused (zero: none)
	issued  map[string]time.Time // temporary access key ID -> when AssumeRole issued it
	expiry  map[string]time.Time // temporary access key ID -> Expiration
	secrets map[string][]string  // temporary access key ID -> its secret and session token
	events  []Event
}

type assumeRoleKey struct{}

// StartProxy listens on a free port of 127.0.0.1 and forwards to target.
func StartProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + l.Addr().String(), now: time.Now, expiry: map[string]time.Time{}, issued: map[string]time.Time{}, secrets: map[string][]string{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the signature covers Host
			// The proxy already read the whole body (which made net/http
			// send "100 Continue" to the client), so moto need not.
			r.Out.Header.Del("Expect")
		},
		ModifyResponse: p.observe,
		Transport:      &http.Transport{ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 32},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }

// SetSTSDown makes every later STS request get 503 ServiceUnavailable (true)
// or be forwarded again (false).
func (p *Proxy) SetSTSDown(down bool) { p.stsDown.Store(down) }

// Events returns a copy of everything seen so far.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Count counts the events of kind k since t (zero t: all).
func (p *Proxy) Count(k EventKind, since time.Time) int {
	n := 0
	for _, e := range p.Events() {
		if e.Kind == k && !e.Time.Before(since) {
			n++
		}
	}
	return n
}

// Expiration returns the Expiration STS gave the temporary key id.
func (p *Proxy) Expiration(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.expiry[id]
	return t, ok
}

// LeakedIn returns the access key IDs whose secret key or session token
// appears in text, to check logs for leaks without printing a secret.
func (p *Proxy) LeakedIn(text string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id, secrets := range p.secrets {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

func (p *Proxy) record(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	if e.Kind == AssumeRole {
		p.expiry[e.AccessKeyID] = e.Expiration
		p.issued[e.AccessKeyID] = e.Time
	}
}

// RevokeSessions makes the proxy refuse, with 403 AccessDenied, every
// request signed by a temporary key issued before t: what IAM's "revoke
// active sessions" does (an inline deny on aws:TokenIssueTime), which moto
// does not enforce (it evaluates no aws:TokenIssueTime condition).
func (p *Proxy) RevokeSessions(t time.Time) {
	p.mu.Lock()
	p.revoked = t
	p.mu.Unlock()
}

// isRevoked reports whether id was issued before the revocation time.
func (p *Proxy) isRevoked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.issued[id]
	return ok && at.Before(p.revoked)
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	id, service := signer(r)
	ev := Event{Time: p.now(), Service: service, Method: r.Method, Path: r.URL.Path, AccessKeyID: id, Signer: id}
	if service == "sts" && p.stsDown.Load() {
		ev.Kind, ev.Status = STSDown, http.StatusServiceUnavailable
		p.record(ev)
		writeAWSError(w, service, ev.Status, "ServiceUnavailable", "STS is down (e2e proxy)")
		return
	}
	if exp, ok := p.Expiration(id); ok && ev.Time.After(exp) {
		ev.Kind, ev.Status, ev.Expiration = ExpiredToken, http.StatusBadRequest, exp
		p.record(ev)
		writeAWSError(w, service, ev.Status, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	if p.isRevoked(id) {
		ev.Kind, ev.Status = Revoked, http.StatusForbidden
		p.record(ev)
		writeAWSError(w, service, ev.Status, "AccessDenied", "the session was revoked (e2e proxy: a deny on aws:TokenIssueTime)")
		return
	}
	if service == "sts" && isAssumeRole(r, body) {
		r = r.WithContext(context.WithValue(r.Context(), assumeRoleKey{}, ev))
	}
	p.rp.ServeHTTP(w, r)
}

// observe runs on moto's response: it records the event and, for
// AssumeRole, the issued key's Expiration.
func (p *Proxy) observe(resp *http.Response) error {
	ev, isAssume := resp.Request.Context().Value(assumeRoleKey{}).(Event)
	if !isAssume {
		in := resp.Request
		id, service := signer(in)
		p.record(Event{Time: p.now(), Kind: Forwarded, Service: service, Method: in.Method,
			Path: in.URL.Path, AccessKeyID: id, Signer: id, Status: resp.StatusCode})
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return err
	}
	ev.Status, ev.Kind = resp.StatusCode, AssumeRoleFailed
	if resp.StatusCode == http.StatusOK {
		c, err := parseAssumeRole(body)
		if err != nil {
			return fmt.Errorf("e2e proxy: %w", err)
		}
		ev.Kind, ev.AccessKeyID, ev.Expiration = AssumeRole, c.ID, c.Expires
		p.mu.Lock()
		p.secrets[c.ID] = []string{c.Secret, c.Token}
		p.mu.Unlock()
	}
	p.record(ev)
	return nil
}

var credentialScope = regexp.MustCompile(`Credential=([A-Z0-9]+)/[0-9]{8}/[^/]+/([^/]+)/aws4_request`)

// signer returns the access key ID and service of a SigV4-signed request
// (header or presigned query), or empty strings.
func signer(r *http.Request) (id, service string) {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1], m[2]
	}
	if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		if parts := strings.Split(c, "/"); len(parts) == 5 {
			return parts[0], parts[3]
		}
	}
	return "", ""
}

func isAssumeRole(r *http.Request, body []byte) bool {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".AssumeRole") {
		return true
	}
	form, err := url.ParseQuery(string(body))
	return err == nil && form.Get("Action") == "AssumeRole" || r.URL.Query().Get("Action") == "AssumeRole"
}

type issued struct {
	ID         string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	Secret     string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	Token      string `xml:"AssumeRoleResult>Credentials>SessionToken"`
	Expiration string `xml:"AssumeRoleResult>Credentials>Expiration"`
	Expires    time.Time
}

func parseAssumeRole(body []byte) (issued, error) {
	var c issued
	if err := xml.Unmarshal(body, &c); err != nil {
		return c, fmt.Errorf("parse AssumeRole response: %w", err)
	}
	var err error
	c.Expires, err = time.Parse(time.RFC3339Nano, c.Expiration)
	if err != nil || c.ID == "" {
		return c, fmt.Errorf("AssumeRole response without AccessKeyId/Expiration (%q): %v", c.Expiration, err)
	}
	return c, nil
}

// writeAWSError answers in the service's error shape: the query protocol's
// ErrorResponse for STS, S3's bare Error otherwise.
func writeAWSError(w http.ResponseWriter, service string, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", "e2e-proxy")
	w.WriteHeader(status)
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	if service == "sts" {
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>e2e-proxy</RequestId></ErrorResponse>`, typ, code, msg)
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>e2e-proxy</RequestId></Error>`, code, msg)
}
