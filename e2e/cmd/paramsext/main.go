package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The real extension's names, which the harness and the example functions
// use too.
const (
	envPort     = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
	defaultPort = "2773"
	headerToken = "X-Aws-Parameters-Secrets-Token"
	envValue    = "FAKE_PARAMETERS_SECRETS_VALUE"
)

func main() {
	os.Exit(run(context.Background(), os.Getenv, os.Stdout, os.Args[0]))
}

// run is the whole extension; it returns the exit code.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer, argv0 string) int {
	name := filepath.Base(argv0)
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("extension", name)
	if err := serve(ctx, getenv, name, log); err != nil {
		log.Error("failed", "error", err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}

// serve listens before it registers, as the real extension must: the
// runtime, and so the function's first call, starts once every extension
// has registered.
func serve(ctx context.Context, getenv func(string) string, name string, log *slog.Logger) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+cmp.Or(getenv(envPort), defaultPort))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler(getenv("AWS_SESSION_TOKEN"), getenv(envValue), log), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	log.Info("listening", "addr", l.Addr().String())

	api := extensionsAPI{base: "http://" + getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension"}
	if err := api.register(ctx, name); err != nil {
		return err
	}
	log.Info("registered")
	for {
		ev, err := api.next(ctx)
		if err != nil {
			return err
		}
		if ev.EventType == "SHUTDOWN" {
			log.Info("shutdown")
			sctx, cancel := context.WithDeadline(ctx, time.UnixMilli(ev.DeadlineMs))
			defer cancel()
			return srv.Shutdown(sctx)
		}
	}
}

// handler answers 200 with the value only for the exact session token of
// this process's environment. An empty environment token matches nothing.
func handler(sessionToken, value string, log *slog.Logger) http.Handler {
	get := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		sent := r.Header.Get(headerToken)
		if sessionToken == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(sessionToken)) != 1 {
			log.Info("request", "path", r.URL.Path, "status", http.StatusUnauthorized, "tokenSent", sent != "")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"message":"%s does not match this execution environment's session token"}`, headerToken)
			return
		}
		log.Info("request", "path", r.URL.Path, "status", http.StatusOK)
		json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]string{"Name": r.URL.Query().Get("name"), "Value": value}})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /systemsmanager/parameters/get", get)
	mux.HandleFunc("GET /secretsmanager/get", get)
	return mux
}

// extensionsAPI is the little of the Extensions API this extension needs.
type extensionsAPI struct {
	base string
	id   string
}

type event struct {
	EventType  string `json:"eventType"`
	DeadlineMs int64  `json:"deadlineMs"`
}

func (a *extensionsAPI) register(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/register",
		bytes.NewReader([]byte(`{"events":["INVOKE","SHUTDOWN"]}`)))
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register: HTTP %d: %s", resp.StatusCode, body)
	}
	a.id = resp.Header.Get("Lambda-Extension-Identifier")
	return nil
}

// next blocks until the next event: no timeout, as the API requires.
func (a *extensionsAPI) next(ctx context.Context) (event, error) {
	var ev event
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/event/next", nil)
	if err != nil {
		return ev, fmt.Errorf("event/next: %w", err)
	}
	req.Header.Set("Lambda-Extension-Identifier", a.id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ev, fmt.Errorf("event/next: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return ev, fmt.Errorf("event/next: HTTP %d: %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("event/next: %w", err)
	}
	return ev, nil
}
