package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// DefaultRole is the name the default role is served under.
const DefaultRole = contract.DefaultRole

// Role is one role's credentials, as kept by a *creds.Keeper.
type Role interface {
	Credentials(ctx context.Context) (aws.Credentials, error)
	// Refresh replaces the credentials now (a forced refresh).
	Refresh(ctx context.Context) (aws.Credentials, error)
	// Identity is who the served credentials are (GetCallerIdentity).
	Identity(ctx context.Context) (creds.Identity, error)
	Health() creds.Health
}

// Options tune a Server. The zero value of each field means its default.
type Options struct {
	// Logger. Default discards.
	Logger *slog.Logger
	// Now is the clock for the last expiry check. Default time.Now.
	Now func() time.Time
	// Mode is reported by /v1/health.
	Mode string
}

// Server serves credentials on a loopback listener.
type Server struct {
	tokenHash [sha256.Size]byte
	roles     map[string]Role
	served    map[string]*servedRole // the same roles, with their encoded bodies
	opts      Options
	http      *http.Server
	mux       *http.ServeMux
}

// New returns a server that requires token in the Authorization header and
// serves roles by name (DefaultRole for /v1/credentials).
func New(token string, roles map[string]Role, optFns ...func(*Options)) *Server {
	o := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	for _, fn := range optFns {
		fn(&o)
	}
	s := &Server{tokenHash: sha256.Sum256([]byte(token)), roles: roles, opts: o, mux: http.NewServeMux(),
		served: make(map[string]*servedRole, len(roles))}
	for name, r := range roles {
		s.served[name] = &servedRole{Role: r}
	}
	s.routes()
	// ReadHeaderTimeout only, as a bare server has: it closes a connection
	// that starts a request and stalls (slowloris). No ReadTimeout or
	// WriteTimeout: a request is its headers (one with a body is refused
	// before the body is read), and every handler is bounded by the keeper
	// (a credentials request by RequestWait, a forced refresh by the
	// refresh timeout). No IdleTimeout: keep-alive connections come from
	// the function's own SDK clients, a handful, each a parked goroutine
	// and a 4 KiB buffer until the client closes it or the environment
	// ends. Each of those timeouts re-arms a timer on every request, which
	// cost 5-15% of the server's CPU per request in bench-compare against a
	// bare handler.
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 2 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve credentials: %w", err)
	}
	return nil
}

// Shutdown stops accepting, lets requests in progress finish until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}

// credentialsBody is the container-credentials format.
type credentialsBody struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	AccountID       string `json:"AccountId,omitempty"`
}

// errorBody is every error's body. Messages are ours or STS's: never a secret.
type errorBody struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// routes maps each path to its handler. GET patterns serve HEAD too. The
// catch-all answers the JSON 404 or 405.
func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/credentials", s.credentials)
	s.mux.HandleFunc("GET /v1/credentials/{role...}", s.credentials)
	s.mux.HandleFunc("POST /v1/credentials/{role}/refresh", s.refresh)
	s.mux.HandleFunc("GET /v1/identity", s.identity)
	s.mux.HandleFunc("GET /v1/identity/{role...}", s.identity)
	s.mux.HandleFunc("GET /v1/health", s.health)
	s.mux.HandleFunc("/", s.unrouted)
}

// ServeHTTP checks method, host, body and token, in that order, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Logger.Enabled(r.Context(), slog.LevelDebug) {
		s.serve(w, r) // the hot path: no clock reads, no boxed log arguments
		return
	}
	start := s.opts.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.serve(sw, r)
	// Only a route label is logged: the raw path and headers are the
	// caller's and could hold anything, a token included.
	s.opts.Logger.Debug("request", "method", truncate(r.Method, 8), "route", s.routeLabel(r), "status", sw.status,
		"took", s.opts.Now().Sub(start).String())
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = noStore
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET and HEAD are served (and POST to /v1/credentials/{name}/refresh)")
		return
	}
	if !allowedHost(r) {
		s.opts.Logger.Warn("rejected request with a foreign Host header (DNS rebinding?)")
		writeError(w, http.StatusForbidden, "InvalidHost", "the Host header must be 127.0.0.1 or localhost with this port")
		return
	}
	if r.ContentLength != 0 {
		writeError(w, http.StatusRequestEntityTooLarge, "BodyNotAllowed", "requests carry no body")
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if !cleanPath(r.URL.Path) {
		// ServeMux would answer a redirect to the clean path; we answer
		// JSON, and clients never send such paths.
		notFound(w)
		return
	}
	if name, role := s.credentialsRoute(r); role != nil {
		s.serveCredentials(w, r, name, role) // the hot path, past every check above
		return
	}
	s.mux.ServeHTTP(w, r)
}

// credentialsRoute finds the role of a GET or HEAD of /v1/credentials or
// /v1/credentials/{a configured role}, the routes SDKs poll, without the
// ServeMux's matching; anything else (unknown roles, nested paths) goes
// through the mux, which answers as before.
func (s *Server) credentialsRoute(r *http.Request) (string, *servedRole) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", nil
	}
	name := DefaultRole
	if r.URL.Path != "/v1/credentials" {
		rest, ok := strings.CutPrefix(r.URL.Path, "/v1/credentials/")
		if !ok || strings.IndexByte(rest, '/') >= 0 {
			return "", nil
		}
		name = rest
	}
	return name, s.served[name]
}

// authorize compares SHA-256 digests in constant time, so neither the token
// nor its length leaks through timing.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	got := r.Header.Get("Authorization")
	if got == "" {
		writeError(w, http.StatusUnauthorized, "MissingToken",
			"set the Authorization header to the token from the token file (AWS_CONTAINER_AUTHORIZATION_TOKEN)")
		return false
	}
	var buf [64]byte // a token's bytes, on the stack (it has 43)
	sum := sha256.Sum256(append(buf[:0], got...))
	if subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) != 1 {
		s.opts.Logger.Warn("rejected request with a wrong token", "route", s.routeLabel(r))
		writeError(w, http.StatusForbidden, "InvalidToken", "the Authorization token does not match this extension's token")
		return false
	}
	return true
}

// cleanPath reports whether p is what ServeMux would not redirect.
func cleanPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// unrouted answers a path no pattern takes: 405 if another method would
// be served there, else 404.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request) {
	probe := *r
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe.Method = m
		if _, pattern := s.mux.Handler(&probe); m != r.Method && pattern != "/" {
			allow := m
			if m == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use "+allow+" on this path")
			return
		}
	}
	notFound(w)
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "NotFound",
		"no such path; use /v1/credentials, /v1/credentials/{name}, /v1/credentials/{name}/refresh, /v1/identity, /v1/identity/{name} or /v1/health")
}

// role finds the role a request names ("default" for none), or answers 404.
func (s *Server) role(w http.ResponseWriter, r *http.Request) (string, Role, bool) {
	name := r.PathValue("role")
	if name == "" && !strings.HasSuffix(r.URL.Path, "/") {
		name = DefaultRole
	}
	role, ok := s.roles[name]
	if !ok {
		writeError(w, http.StatusNotFound, "RoleNotFound",
			// The requested name is not echoed: it is the caller's text.
			"no such role is configured; configured roles: "+strings.Join(slices.Sorted(maps.Keys(s.roles)), ", "))
	}
	return name, role, ok
}

// credentials is the mux's route for what credentialsRoute did not take:
// it answers the 404 for an unknown role.
func (s *Server) credentials(w http.ResponseWriter, r *http.Request) {
	name, _, ok := s.role(w, r)
	if !ok {
		return
	}
	s.serveCredentials(w, r, name, s.served[name])
}

// serveCredentials answers with the role's credentials, encoded once per
// credential set. No timeout of our own: with nothing servable the keeper
// answers within its RequestWait (a 503 with Retry-After while its refresh
// goes on), and a client that gives up cancels r.Context().
func (s *Server) serveCredentials(w http.ResponseWriter, r *http.Request, name string, role *servedRole) {
	c, err := role.Credentials(r.Context())
	if err == nil && !c.Expires.After(s.opts.Now()) {
		err = errors.New("credentials expired") // the keeper never does this; we check anyway
	}
	if err != nil {
		s.unavailable(w, name, err)
		return
	}
	e := role.encoded(c)
	h := w.Header()
	h["Content-Type"], h["Content-Length"] = contentTypeJSON, e.length
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}

// refreshBody answers a forced refresh: the new expiry and key id, never
// the secret or the session token.
type refreshBody struct {
	Expiration  string `json:"Expiration"`
	AccessKeyID string `json:"AccessKeyId"`
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	name, role, ok := s.role(w, r)
	if !ok {
		return
	}
	c, err := role.Refresh(r.Context())
	var rl *creds.RateLimitError
	switch {
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(rl.RetryAfter)))
		writeError(w, http.StatusTooManyRequests, "TooManyRefreshes",
			fmt.Sprintf("role %q was refreshed on request less than %s ago; retry after %d s", name, rl.Interval, ceilSeconds(rl.RetryAfter)))
	case err != nil:
		s.unavailable(w, name, err)
	default:
		s.opts.Logger.Info("credentials refreshed on request", "role", name, "accessKeyId", c.AccessKeyID)
		writeJSON(w, http.StatusOK, refreshBody{Expiration: c.Expires.UTC().Format(time.RFC3339), AccessKeyID: c.AccessKeyID})
	}
}

func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	name, role, ok := s.role(w, r)
	if !ok {
		return
	}
	id, err := role.Identity(r.Context())
	if err != nil {
		s.unavailable(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, id)
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func (s *Server) unavailable(w http.ResponseWriter, name string, err error) {
	var ce *creds.Error
	msg := fmt.Sprintf("credentials for role %q are not available", name)
	switch {
	case errors.As(err, &ce):
		msg = fmt.Sprintf("%s: %s failed with %s: %s", msg, describe(ce), ce.Code, ce.Message)
		if ce.Code == creds.CodeRefreshInProgress {
			msg = fmt.Sprintf("credentials for role %q are not available yet: %s", name, ce.Message)
		}
		if ce.RequestID != "" {
			msg += " (STS request id " + ce.RequestID + ")"
		}
		if ce.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(ce.RetryAfter)))
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		msg += ": STS did not answer in time"
	}
	writeError(w, http.StatusServiceUnavailable, "CredentialsUnavailable", msg)
}

// describe names what failed: "STS AssumeRole <arn>" for AssumeRole
// sources, as before, else the source ("credential process /opt/bin/x").
func describe(ce *creds.Error) string {
	if ce.RoleArn != "" {
		return "STS AssumeRole " + ce.RoleArn
	}
	return ce.Origin
}

// healthBody is /v1/health: state per role, never credential material.
type healthBody struct {
	Status string                  `json:"status"`
	Mode   string                  `json:"mode,omitempty"`
	Roles  map[string]creds.Health `json:"roles"`
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	b := healthBody{Status: "ok", Mode: s.opts.Mode, Roles: make(map[string]creds.Health, len(s.roles))}
	for name, r := range s.roles {
		h := r.Health()
		if h.State == creds.StateFailing {
			b.Status = "degraded"
		}
		b.Roles[name] = h
	}
	writeJSON(w, http.StatusOK, b)
}

// routeLabel names the route for logs: the pattern that matched, with a
// configured role's name. Never caller-controlled text.
func (s *Server) routeLabel(r *http.Request) string {
	_, pattern := s.mux.Handler(r)
	if pattern == "/" || pattern == "" {
		return "unknown"
	}
	pattern = strings.TrimPrefix(pattern, r.Method+" ")
	if role := r.PathValue("role"); role != "" {
		if _, ok := s.roles[role]; !ok {
			role = "unknown"
		}
		return pattern + " (" + role + ")"
	}
	return pattern
}

// statusWriter remembers the status, for the debug log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// allowedHost accepts 127.0.0.1:PORT and localhost:PORT, PORT being the one
// the connection arrived on. A page that rebinds a DNS name to 127.0.0.1
// sends its own name and is refused.
func allowedHost(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, ok := strings.Cut(r.Host, ":")
	if !ok || (host != "127.0.0.1" && !strings.EqualFold(host, "localhost")) {
		return false
	}
	return canonicalPort(port, addr.Port) // no "+80" or "080"
}

// canonicalPort reports whether s is n written as a plain decimal with no
// sign or leading zero, without allocating.
func canonicalPort(s string, n int) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v == n
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Code: code, Message: msg})
}

// Header values shared by every response: net/http only reads them.
var (
	noStore         = []string{"no-store"}
	contentTypeJSON = []string{"application/json"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Code":"InternalError","Message":"could not encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
