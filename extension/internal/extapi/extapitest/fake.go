package extapitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/memnet"
)

// Report is one init/error or exit/error call.
type Report struct {
	Path      string // "init/error" or "exit/error"
	ErrorType string // the Lambda-Extension-Function-Error-Type header
	Message   string // errorMessage
}

// API is the fake. Send events with Invoke/Shutdown.
type API struct {
	*httptest.Server // nil for NewInProcess
	mux              *http.ServeMux
	events           chan any

	mu             sync.Mutex
	name           string
	feature        string
	registered     time.Time
	nextCalls      int
	nextAt         []time.Time
	reports        []Report
	registerStatus int // when set, answered to /register
	allowed        map[string]bool
	events_        []string // the events of the successful registration
	registerCalls  int
	nextStatus     int // when set, answered to /event/next
	onRegister     func()
}

// OnRegister runs fn inside every /register call, before it answers: a test
// can check what the extension did before registering.
func (a *API) OnRegister(fn func()) {
	a.mu.Lock()
	a.onRegister = fn
	a.mu.Unlock()
}

// AllowEvents makes /register refuse (403 Extension.InvalidEventType, as
// RIE's managed-instances path does for INVOKE) any event not in events.
// Default: INVOKE and SHUTDOWN.
func (a *API) AllowEvents(events ...string) {
	a.mu.Lock()
	a.allowed = map[string]bool{}
	for _, e := range events {
		a.allowed[e] = true
	}
	a.mu.Unlock()
}

// Events returns the events of the successful registration, and how many
// /register calls were made in all.
func (a *API) Events() (events []string, calls int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.events_...), a.registerCalls
}

// FailNext makes /event/next answer status.
func (a *API) FailNext(status int) {
	a.mu.Lock()
	a.nextStatus = status
	a.mu.Unlock()
}

// New starts the fake; Addr() is the value for AWS_LAMBDA_RUNTIME_API.
func New(t testing.TB) *API {
	a := NewInProcess()
	a.Server = httptest.NewServer(a.mux)
	t.Cleanup(func() {
		a.CloseClientConnections()
		a.Close()
	})
	return a
}

// NewInProcess is the fake without a socket, for tests in a
// testing/synctest bubble: Client calls its handlers in-process.
func NewInProcess() *API {
	a := &API{events: make(chan any, 16), allowed: map[string]bool{"INVOKE": true, "SHUTDOWN": true}, mux: http.NewServeMux()}
	a.mux.HandleFunc("POST /2020-01-01/extension/register", a.register)
	a.mux.HandleFunc("GET /2020-01-01/extension/event/next", a.next)
	a.mux.HandleFunc("POST /2020-01-01/extension/init/error", a.report)
	a.mux.HandleFunc("POST /2020-01-01/extension/exit/error", a.report)
	return a
}

// Client is an HTTP client that reaches the fake: in-process for a
// NewInProcess fake, else over its socket.
func (a *API) Client() *http.Client {
	if a.Server != nil {
		return a.Server.Client()
	}
	return &http.Client{Transport: memnet.HandlerTransport(a.mux)}
}

// Addr is host:port.
func (a *API) Addr() string {
	if a.Server == nil {
		return "extensions-api.in-process.invalid:9001"
	}
	return strings.TrimPrefix(a.URL, "http://")
}

// FailRegister makes /register answer status.
func (a *API) FailRegister(status int) {
	a.mu.Lock()
	a.registerStatus = status
	a.mu.Unlock()
}

// Invoke queues an INVOKE event.
func (a *API) Invoke(requestID string, deadline time.Time) {
	a.events <- map[string]any{"eventType": "INVOKE", "deadlineMs": deadline.UnixMilli(), "requestId": requestID,
		"invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f", "tracing": map[string]string{"type": "X-Amzn-Trace-Id", "value": "Root=1"}}
}

// Shutdown queues a SHUTDOWN event.
func (a *API) Shutdown(deadline time.Time) {
	a.events <- map[string]any{"eventType": "SHUTDOWN", "deadlineMs": deadline.UnixMilli(), "shutdownReason": "spindown"}
}

// Registered returns the name and accept-feature the extension registered
// with, and when; zero values before.
func (a *API) Registered() (name, feature string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.name, a.feature, a.registered
}

// NextCalls is how many times /event/next was called, and when.
func (a *API) NextCalls() (int, []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nextCalls, append([]time.Time(nil), a.nextAt...)
}

// Reports lists the error reports received.
func (a *API) Reports() []Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Report(nil), a.reports...)
}

const identifier = "ext-id-0001"

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	var body struct{ Events []string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Events) == 0 {
		http.Error(w, `{"errorMessage":"bad request","errorType":"InvalidRequestFormat"}`, http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.registerCalls++
	for _, e := range body.Events {
		if !a.allowed[e] {
			a.mu.Unlock()
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errorMessage":"`+e+`: event type not supported","errorType":"Extension.InvalidEventType"}`)
			return
		}
	}
	a.events_ = body.Events
	status, hook := a.registerStatus, a.onRegister
	a.name, a.feature, a.registered = r.Header.Get("Lambda-Extension-Name"), r.Header.Get("Lambda-Extension-Accept-Feature"), time.Now()
	a.mu.Unlock()
	if hook != nil {
		hook()
	}
	if status != 0 {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"errorMessage":"refused","errorType":"Extension.Refused"}`)
		return
	}
	if a.name == "" {
		http.Error(w, `{"errorMessage":"missing name","errorType":"Extension.MissingName"}`, http.StatusForbidden)
		return
	}
	w.Header().Set("Lambda-Extension-Identifier", identifier)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"functionName":"f","functionVersion":"$LATEST","handler":"app.handler","accountId":"123456789012"}`)
}

func (a *API) next(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Lambda-Extension-Identifier") != identifier {
		http.Error(w, `{"errorMessage":"unknown extension","errorType":"Extension.InvalidExtensionIdentifier"}`, http.StatusForbidden)
		return
	}
	a.mu.Lock()
	a.nextCalls++
	a.nextAt = append(a.nextAt, time.Now())
	status := a.nextStatus
	a.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"errorMessage":"failed","errorType":"Runtime.Failed"}`)
		return
	}
	select {
	case ev := <-a.events:
		w.Header().Set("Lambda-Extension-Event-Identifier", "evt")
		_ = json.NewEncoder(w).Encode(ev)
	case <-r.Context().Done():
	}
}

func (a *API) report(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Lambda-Extension-Identifier") != identifier {
		http.Error(w, `{"errorMessage":"unknown extension","errorType":"Extension.InvalidExtensionIdentifier"}`, http.StatusForbidden)
		return
	}
	var body struct{ ErrorMessage, ErrorType string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	a.mu.Lock()
	a.reports = append(a.reports, Report{Path: strings.TrimPrefix(r.URL.Path, "/2020-01-01/extension/"),
		ErrorType: r.Header.Get("Lambda-Extension-Function-Error-Type"), Message: body.ErrorMessage})
	a.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}
