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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// DefaultRole is the name the default role is served under.
const DefaultRole = "default"

// Role is one role's credentials, as kept by a *creds.Keeper.
type Role interface {
	Credentials(ctx context.Context) (aws.Credentials, error)
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
	// RequestTimeout is the longest a credentials request may take: the
	// server's write timeout is derived from it. Set it to the keeper's
	// refresh timeout. Default 30s.
	RequestTimeout time.Duration
}

// Server serves credentials on a loopback listener.
type Server struct {
	tokenHash [sha256.Size]byte
	roles     map[string]Role
	opts      Options
	http      *http.Server
}

// New returns a server that requires token in the Authorization header and
// serves roles by name (DefaultRole for /v1/credentials).
func New(token string, roles map[string]Role, optFns ...func(*Options)) *Server {
	o := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now, RequestTimeout: 30 * time.Second}
	for _, fn := range optFns {
		fn(&o)
	}
	s := &Server{tokenHash: sha256.Sum256([]byte(token)), roles: roles, opts: o}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      o.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
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

// ServeHTTP checks method, host and token, in that order, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Logger.Enabled(r.Context(), slog.LevelDebug) {
		s.serve(w, r) // the hot path: no clock reads, no boxed log arguments
		return
	}
	start := s.opts.Now()
	status := s.serve(w, r)
	// Only a route label is logged: the raw path and headers are the
	// caller's and could hold anything, a token included.
	s.opts.Logger.Debug("request", "method", truncate(r.Method, 8), "route", s.routeLabel(r.URL.Path), "status", status,
		"took", s.opts.Now().Sub(start).String())
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET and HEAD are served")
	}
	if !allowedHost(r) {
		s.opts.Logger.Warn("rejected request with a foreign Host header (DNS rebinding?)")
		return writeError(w, http.StatusForbidden, "InvalidHost", "the Host header must be 127.0.0.1 or localhost with this port")
	}
	if r.ContentLength != 0 {
		return writeError(w, http.StatusRequestEntityTooLarge, "BodyNotAllowed", "requests carry no body")
	}
	if status := s.authorize(w, r); status != 0 {
		return status
	}
	return s.route(w, r)
}

// authorize compares SHA-256 digests in constant time, so neither the token
// nor its length leaks through timing. It returns 0 when authorized.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) int {
	got := r.Header.Get("Authorization")
	if got == "" {
		return writeError(w, http.StatusUnauthorized, "MissingToken",
			"set the Authorization header to the token from the token file (AWS_CONTAINER_AUTHORIZATION_TOKEN)")
	}
	sum := sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) != 1 {
		s.opts.Logger.Warn("rejected request with a wrong token", "route", s.routeLabel(r.URL.Path))
		return writeError(w, http.StatusForbidden, "InvalidToken", "the Authorization token does not match this extension's token")
	}
	return 0
}

// parsePath maps a request path to its route ("credentials" or "health";
// "" for none) and, for credentials, the role name.
func parsePath(p string) (route, role string) {
	switch {
	case p == "/v1/credentials":
		return "credentials", DefaultRole
	case strings.HasPrefix(p, "/v1/credentials/"):
		return "credentials", strings.TrimPrefix(p, "/v1/credentials/")
	case p == "/v1/health":
		return "health", ""
	}
	return "", ""
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) int {
	switch route, role := parsePath(r.URL.Path); route {
	case "credentials":
		return s.credentials(w, r, role)
	case "health":
		return s.health(w)
	}
	return writeError(w, http.StatusNotFound, "NotFound", "no such path; use /v1/credentials, /v1/credentials/{name} or /v1/health")
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request, name string) int {
	role, ok := s.roles[name]
	if !ok {
		return writeError(w, http.StatusNotFound, "RoleNotFound",
			// The requested name is not echoed: it is the caller's text.
			"no such role is configured; configured roles: "+strings.Join(slices.Sorted(maps.Keys(s.roles)), ", "))
	}
	// No timeout of our own: a wait on STS is bounded by the keeper's
	// refresh timeout, and a client that gives up cancels r.Context().
	c, err := role.Credentials(r.Context())
	if err == nil && !c.Expires.After(s.opts.Now()) {
		err = errors.New("credentials expired") // the keeper never does this; we check anyway
	}
	if err != nil {
		return s.unavailable(w, name, err)
	}
	return writeJSON(w, http.StatusOK, credentialsBody{
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken,
		Expiration: c.Expires.UTC().Format(time.RFC3339), AccountID: c.AccountID,
	})
}

func (s *Server) unavailable(w http.ResponseWriter, name string, err error) int {
	var ce *creds.Error
	msg := fmt.Sprintf("credentials for role %q are not available", name)
	if errors.As(err, &ce) {
		msg = fmt.Sprintf("%s: STS AssumeRole %s failed with %s: %s", msg, ce.RoleArn, ce.Code, ce.Message)
		if ce.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ce.RetryAfter+time.Second-1)/time.Second)))
		}
	} else if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		msg += ": STS did not answer in time"
	}
	return writeError(w, http.StatusServiceUnavailable, "CredentialsUnavailable", msg)
}

// healthBody is /v1/health: state per role, never credential material.
type healthBody struct {
	Status string                  `json:"status"`
	Mode   string                  `json:"mode,omitempty"`
	Roles  map[string]creds.Health `json:"roles"`
}

func (s *Server) health(w http.ResponseWriter) int {
	b := healthBody{Status: "ok", Mode: s.opts.Mode, Roles: make(map[string]creds.Health, len(s.roles))}
	for name, r := range s.roles {
		h := r.Health()
		if h.State == creds.StateFailing {
			b.Status = "degraded"
		}
		b.Roles[name] = h
	}
	return writeJSON(w, http.StatusOK, b)
}

// routeLabel names the route for logs: a configured role's name, or a
// fixed word. Never caller-controlled text.
func (s *Server) routeLabel(p string) string {
	route, role := parsePath(p)
	if route == "credentials" {
		if _, ok := s.roles[role]; !ok {
			role = "unknown"
		}
		return route + "/" + role
	}
	if route == "" {
		return "unknown"
	}
	return route
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
	n, err := strconv.Atoi(port)
	return err == nil && n == addr.Port && port == strconv.Itoa(n) // no "+80" or "080"
}

func writeError(w http.ResponseWriter, status int, code, msg string) int {
	return writeJSON(w, status, errorBody{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Code":"InternalError","Message":"could not encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
