package harness

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ContainerCredentials is the container-credentials body that both the
// extension's /v1/credentials and [CredentialServer] answer with.
type ContainerCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	AccountID       string `json:"AccountId,omitempty"`
}

// Expires parses Expiration, which must be UTC RFC 3339 ending in Z.
func (c ContainerCredentials) Expires() (time.Time, error) {
	if !strings.HasSuffix(c.Expiration, "Z") {
		return time.Time{}, fmt.Errorf("expiration %q does not end in Z", c.Expiration)
	}
	return time.Parse(time.RFC3339, c.Expiration)
}

// Mint returns new execution credentials that STS considers valid for at
// least lifetime, e.g. [ExecutionRole.Credentials].
type Mint func(ctx context.Context, lifetime time.Duration) (aws.Credentials, error)

// CredentialServerOptions tune a CredentialServer. A zero field takes its
// default.
type CredentialServerOptions struct {
	// Lifetime is how long a key is advertised as valid: Expiration is its
	// mint time plus Lifetime (whole seconds). Default 6 s.
	Lifetime time.Duration
	// Rotate: a request that finds the current key this old gets a new one.
	// Default Lifetime/2, so keys rotate well before they expire, as the
	// execution role's do.
	Rotate time.Duration
	// Now is the clock. Default time.Now; tests inject their own.
	Now func() time.Time
}

// ServedKey is one execution key the server handed out. It holds no secret.
type ServedKey struct {
	AccessKeyID string
	Minted      time.Time
	Expiration  time.Time // as advertised, whole seconds
	Requests    int       // authorized requests answered with it
}

// CredentialServer plays the credentials endpoint that SnapStart gives the
// runtime and the extensions instead of AWS_ACCESS_KEY_ID and friends:
// AWS_CONTAINER_CREDENTIALS_FULL_URI plus AWS_CONTAINER_AUTHORIZATION_TOKEN
// (DESIGN.md §9). RIE's own endpoint (--enable-init-caching) is not
// faithful: it serves RIE's environment keys with an Expiration of year 1
// and also exports them, so the harness brings this one. It listens on
// 127.0.0.1, answers only the exact token, and rotates to freshly minted
// short-lived keys on the wall clock (checked per request, like the
// extension, so it needs no timer), recording every key it served.
type CredentialServer struct {
	URL   string // AWS_CONTAINER_CREDENTIALS_FULL_URI
	Token string // AWS_CONTAINER_AUTHORIZATION_TOKEN

	opts CredentialServerOptions
	mint Mint
	srv  *http.Server

	mu       sync.Mutex // serializes minting too: one key per rotation
	current  *credentialKey
	served   []*credentialKey
	rejected int
}

type credentialKey struct {
	ServedKey
	creds aws.Credentials
}

// StartCredentialServer listens on a free port of 127.0.0.1 with a random
// token. Close it when done.
func StartCredentialServer(mint Mint, optFns ...func(*CredentialServerOptions)) (*CredentialServer, error) {
	o := CredentialServerOptions{Lifetime: 6 * time.Second, Now: time.Now}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.Rotate == 0 {
		o.Rotate = o.Lifetime / 2
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("credential server token: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("credential server: %w", err)
	}
	cs := &CredentialServer{
		// RIE's init-caching endpoint uses this path.
		URL:   "http://" + l.Addr().String() + "/2021-04-23/credentials",
		Token: base64.RawURLEncoding.EncodeToString(raw),
		opts:  o, mint: mint,
	}
	cs.srv = &http.Server{Handler: cs, ReadHeaderTimeout: 5 * time.Second}
	go cs.srv.Serve(l)
	return cs, nil
}

// Close stops the server.
func (cs *CredentialServer) Close() { _ = cs.srv.Close() }

func (cs *CredentialServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(cs.Token)) != 1 {
		cs.mu.Lock()
		cs.rejected++
		cs.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"Code":"InvalidToken","Message":"bad Authorization token"}`)
		return
	}
	k, err := cs.key(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"Code": "MintFailed", "Message": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(ContainerCredentials{
		AccessKeyID: k.AccessKeyID, SecretAccessKey: k.creds.SecretAccessKey, Token: k.creds.SessionToken,
		Expiration: k.Expiration.UTC().Format(time.RFC3339),
	})
}

// key returns the key to serve, minting a new one once the current one is
// Rotate old, and counts the request against it.
func (cs *CredentialServer) key(ctx context.Context) (credentialKey, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := cs.opts.Now()
	if cs.current == nil || now.Sub(cs.current.Minted) >= cs.opts.Rotate {
		c, err := cs.mint(ctx, cs.opts.Lifetime)
		if err != nil {
			return credentialKey{}, fmt.Errorf("mint execution credentials: %w", err)
		}
		cs.current = &credentialKey{creds: c, ServedKey: ServedKey{
			AccessKeyID: c.AccessKeyID, Minted: now, Expiration: now.Add(cs.opts.Lifetime).Truncate(time.Second),
		}}
		cs.served = append(cs.served, cs.current)
	}
	cs.current.Requests++
	return *cs.current, nil // a copy: the caller reads it without the lock
}

// Served returns every key served so far, oldest first.
func (cs *CredentialServer) Served() []ServedKey {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]ServedKey, len(cs.served))
	for i, k := range cs.served {
		out[i] = k.ServedKey
	}
	return out
}

// ServedKey returns the record of the key id, if the server served it.
func (cs *CredentialServer) ServedKey(id string) (ServedKey, bool) {
	for _, k := range cs.Served() {
		if k.AccessKeyID == id {
			return k, true
		}
	}
	return ServedKey{}, false
}

// Rejected counts the requests refused for a missing or wrong token.
func (cs *CredentialServer) Rejected() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.rejected
}

// LeakedIn returns the ids of served keys whose secret or session token
// appears in text, plus "authorization token" if the server's token does,
// to check logs without printing a secret.
func (cs *CredentialServer) LeakedIn(text string) []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []string
	for _, k := range cs.served {
		if strings.Contains(text, k.creds.SecretAccessKey) || k.creds.SessionToken != "" && strings.Contains(text, k.creds.SessionToken) {
			out = append(out, k.AccessKeyID)
		}
	}
	if strings.Contains(text, cs.Token) {
		out = append(out, "authorization token")
	}
	return out
}

// FetchCredentials GETs the extension's /v1/credentials with the token from
// its token file, as a function's after-restore hook would, and returns
// the body on 200. Any other status is an error that carries the status
// and the (secret-free) error body.
func (e *Environment) FetchCredentials(ctx context.Context) (ContainerCredentials, error) {
	var c ContainerCredentials
	body, status, err := e.get(ctx, "/v1/credentials")
	if err != nil {
		return c, fmt.Errorf("GET /v1/credentials: %w", err)
	}
	if status != http.StatusOK {
		return c, fmt.Errorf("GET /v1/credentials: HTTP %d: %s", status, body)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, fmt.Errorf("GET /v1/credentials: body is not container credentials: %w", err)
	}
	return c, nil
}
