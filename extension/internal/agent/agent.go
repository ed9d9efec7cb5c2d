package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/extapi"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/metrics"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

// Error types reported to Lambda, as Category.Reason.
const (
	ErrConfigInvalid = "Extension.ConfigInvalid"
	ErrStartFailed   = "Extension.StartFailed"
	ErrServerFailed  = "Extension.ServerFailed"
)

// Options wire the agent. NewSTSClient is required.
type Options struct {
	// Name is the extension's name: its executable's base name.
	Name string
	// Logger. Default discards.
	Logger *slog.Logger
	// Now is the clock handed to the keepers. Default time.Now.
	Now func() time.Time
	// NewSTSClient builds the STS client from the configuration.
	NewSTSClient func(ctx context.Context, cfg *config.Config) (*sts.Client, error)
	// Random is the token's entropy. Default crypto/rand.
	Random io.Reader
	// PrefetchWait bounds how long eager mode holds back the first
	// /event/next for the prefetch. Default 5s (init has 10s in all).
	PrefetchWait time.Duration
	// ShutdownMargin is kept free before the SHUTDOWN deadline. Default 100ms.
	ShutdownMargin time.Duration
	// TimerMaxSleep is the longest the refresh timer (both modes, where no
	// INVOKE event comes) sleeps between wall-clock checks. Default 1 min.
	TimerMaxSleep time.Duration
	// APIOptions tune the Extensions API client.
	APIOptions []func(*extapi.Options)
	// Listen opens the credentials listener on addr ("127.0.0.1:2775").
	// Default: net.Listen over TCP. Tests listen in memory.
	Listen func(addr string) (net.Listener, error)
	// Metrics receives every STS call and the request counters, and is
	// flushed at most once a minute and at SHUTDOWN. Nil: no metrics.
	Metrics *metrics.Emitter
}

// Run runs the extension until SHUTDOWN (or ctx is cancelled, as on
// SIGTERM). cfgErr is config.Load's error: it is reported to Lambda as
// Extension.ConfigInvalid and Run returns it.
func Run(ctx context.Context, cfg *config.Config, cfgErr error, o Options) error {
	o.defaults()
	if cfg.RuntimeAPI == "" {
		return errors.Join(cfgErr, errors.New("AWS_LAMBDA_RUNTIME_API is not set: not running as a Lambda extension"))
	}
	a := &agent{cfg: cfg, o: o, api: extapi.New(cfg.RuntimeAPI, o.APIOptions...), stopTimers: func() {}, metricsDone: make(chan struct{})}
	if cfgErr != nil {
		return a.failInit(ctx, ErrConfigInvalid, fmt.Errorf("invalid configuration: %w", cfgErr))
	}
	if err := a.start(ctx); err != nil {
		return a.failInit(ctx, ErrStartFailed, err)
	}
	return a.run(ctx)
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "credential-refresh"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Random == nil {
		o.Random = rand.Reader
	}
	if o.PrefetchWait == 0 {
		o.PrefetchWait = 5 * time.Second
	}
	if o.ShutdownMargin == 0 {
		o.ShutdownMargin = 100 * time.Millisecond
	}
	if o.TimerMaxSleep == 0 {
		o.TimerMaxSleep = time.Minute
	}
	if o.Listen == nil {
		o.Listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
}

type agent struct {
	cfg     *config.Config
	o       Options
	api     *extapi.Client
	keepers []*creds.Keeper
	srv     *server.Server
	served  chan error // Serve's result
	ready   chan struct{}
	// stopTimers ends the eager refresh timers, if any run.
	stopTimers context.CancelFunc
	// metricsDone ends the metrics' minute ticker.
	metricsDone chan struct{}
}

// failInit registers (the API wants an identifier on init/error), reports
// err and returns it. Nothing has been served.
func (a *agent) failInit(ctx context.Context, errType string, err error) error {
	a.o.Logger.Error("init failed", "errorType", errType, "error", err.Error())
	if _, _, rerr := a.register(ctx); rerr != nil {
		return errors.Join(err, rerr)
	}
	if rerr := a.api.InitError(ctx, errType, err); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// start writes the token file, listens, builds the keepers and the server,
// and, in eager mode, starts the prefetch. All of it before /register, so
// the runtime (which starts after every extension registered) always finds
// the token file and a listening port.
func (a *agent) start(ctx context.Context) error {
	token, err := a.writeToken()
	if err != nil {
		return err
	}
	ln, err := a.o.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d (set %s to a free port): %w", a.cfg.Port, config.EnvPort, err)
	}
	client, err := a.o.NewSTSClient(ctx, a.cfg)
	if err != nil {
		ln.Close()
		return err
	}
	roles := a.buildKeepers(client)
	a.srv = server.New(token, roles, func(so *server.Options) {
		so.Logger, so.Now, so.Mode = a.o.Logger, a.o.Now, string(a.cfg.Mode)
	})
	a.served = make(chan error, 1)
	go func() { a.served <- a.srv.Serve(ln) }()
	a.ready = make(chan struct{})
	if a.cfg.Mode == config.ModeEager {
		go a.prefetch(ctx)
	} else {
		close(a.ready)
	}
	a.o.Logger.Info("extension started", "mode", a.cfg.Mode, "address", ln.Addr().String(), "roles", a.cfg.RoleNames(),
		"initializationType", a.cfg.InitializationType, "uid", os.Geteuid())
	return nil
}

// refreshTimeout bounds one refresh: every SDK attempt plus its backoff.
func (a *agent) refreshTimeout() time.Duration {
	return creds.RefreshBudget(creds.STSOptions{MaxAttempts: a.cfg.STSMaxAttempts, Timeout: a.cfg.STSTimeout})
}

// prefetch fetches every role concurrently, then closes a.ready. Failures
// are recorded by the keepers (and retried on demand after backoff).
func (a *agent) prefetch(ctx context.Context) {
	defer close(a.ready)
	start := a.o.Now()
	var wg sync.WaitGroup
	for _, k := range a.keepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.Prefetch(ctx); err != nil {
				a.o.Logger.Warn("eager prefetch failed", "role", k.Name(), "error", err.Error())
			}
		}()
	}
	wg.Wait()
	a.o.Logger.Info("eager prefetch done", "took", a.o.Now().Sub(start).String())
}

// writeToken writes 32 random bytes, base64url, with no newline, mode 0600,
// atomically: the wrapper never reads a half-written token.
func (a *agent) writeToken() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(a.o.Random, b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	dir := filepath.Dir(a.cfg.TokenFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", a.tokenDirError(dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return "", a.tokenDirError(dir, err)
	}
	defer os.Remove(tmp.Name())
	if err := writeClose(tmp, token); err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), a.cfg.TokenFile); err != nil {
		return "", fmt.Errorf("token file %s: %w", a.cfg.TokenFile, err)
	}
	return token, nil
}

func writeClose(f *os.File, s string) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tokenDirError explains a token directory this process cannot write. On
// Lambda Managed Instances extensions and the runtime run as uid 993, not
// as root, so a directory made by another user (or a read-only path) stops
// the extension here, before anything is served.
func (a *agent) tokenDirError(dir string, err error) error {
	why := ""
	if fi, serr := os.Stat(dir); serr == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			why = fmt.Sprintf(" (it is owned by uid %d, mode %s)", st.Uid, fi.Mode().Perm())
		}
	}
	return fmt.Errorf("token file %s: this process (uid %d) cannot create it in %s%s: %w; "+
		"set %s to a path in a directory this user may write, such as %s",
		a.cfg.TokenFile, os.Geteuid(), dir, why, err, config.EnvTokenFile, config.DefaultTokenFile)
}
