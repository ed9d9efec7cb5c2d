package extapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Wire names from the Extensions API.
const (
	headerName       = "Lambda-Extension-Name"
	headerIdentifier = "Lambda-Extension-Identifier"
	headerFeature    = "Lambda-Extension-Accept-Feature"
	headerErrorType  = "Lambda-Extension-Function-Error-Type"
)

// EventType is INVOKE or SHUTDOWN.
type EventType string

// The events the extension subscribes to.
const (
	Invoke   EventType = "INVOKE"
	Shutdown EventType = "SHUTDOWN"
)

// Event is one /event/next answer.
type Event struct {
	EventType          EventType `json:"eventType"`
	DeadlineMs         int64     `json:"deadlineMs"`
	RequestID          string    `json:"requestId,omitempty"`
	InvokedFunctionArn string    `json:"invokedFunctionArn,omitempty"`
	ShutdownReason     string    `json:"shutdownReason,omitempty"`
}

// Deadline is DeadlineMs as a time.
func (e *Event) Deadline() time.Time { return time.UnixMilli(e.DeadlineMs) }

// Registration is the /register answer.
type Registration struct {
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
	AccountID       string `json:"accountId,omitempty"`
}

// StatusError is an unexpected HTTP status from the API. Exit is true when
// the API says the extension must exit (403 or 500 on register). ErrorType
// is the errorType of the API's JSON error body, when it has one.
type StatusError struct {
	Op        string
	Status    int
	Body      string
	ErrorType string
	Exit      bool
}

// ErrInvalidEventType is the errorType the API answers (403) to a
// registration for an event this execution model does not deliver, as Lambda
// Managed Instances does for INVOKE.
const ErrInvalidEventType = "Extension.InvalidEventType"

func (e *StatusError) Error() string {
	return fmt.Sprintf("extensions API %s: status %d: %s", e.Op, e.Status, e.Body)
}

// Options tune a Client.
type Options struct {
	// HTTPClient. Default: a client without a timeout (Next must block).
	HTTPClient *http.Client
	// Timeout for every call but Next. Default 5s.
	Timeout time.Duration
}

// Client talks to the Extensions API at AWS_LAMBDA_RUNTIME_API.
type Client struct {
	base string
	http *http.Client
	opts Options
	id   string
}

// New returns a client for runtimeAPI (host:port).
func New(runtimeAPI string, optFns ...func(*Options)) *Client {
	o := Options{HTTPClient: &http.Client{}, Timeout: 5 * time.Second}
	for _, fn := range optFns {
		fn(&o)
	}
	return &Client{base: "http://" + runtimeAPI + "/2020-01-01/extension", http: o.HTTPClient, opts: o}
}

// ID is the identifier from Register.
func (c *Client) ID() string { return c.id }

// Register announces the extension under name (its executable's base name)
// for events, asking for the account ID. A refused event type is a
// *StatusError with ErrorType ErrInvalidEventType; the API keeps no state
// from a refused registration, so the caller may register again.
func (c *Client) Register(ctx context.Context, name string, events ...EventType) (*Registration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(struct {
		Events []EventType `json:"events"`
	}{events})
	if err != nil {
		return nil, fmt.Errorf("extensions API register: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/register", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("extensions API register: %w", err)
	}
	req.Header.Set(headerName, name)
	req.Header.Set(headerFeature, "accountId")
	req.Header.Set("Content-Type", "application/json")
	var reg Registration
	resp, err := c.do(req, "register", http.StatusOK, &reg)
	if err != nil {
		return nil, err
	}
	c.id = resp.Header.Get(headerIdentifier)
	if c.id == "" {
		return nil, fmt.Errorf("extensions API register: no %s header in the answer", headerIdentifier)
	}
	return &reg, nil
}

// Next blocks until the next event. It has no timeout of its own: the
// sandbox may be frozen for hours inside it. Cancel ctx to stop waiting.
func (c *Client) Next(ctx context.Context) (*Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/event/next", nil)
	if err != nil {
		return nil, fmt.Errorf("extensions API next: %w", err)
	}
	req.Header.Set(headerIdentifier, c.id)
	var ev Event
	if _, err := c.do(req, "next", http.StatusOK, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// InitError reports a failed init with errType ("Extension.ConfigInvalid").
// Lambda then fails the init; the caller must exit.
func (c *Client) InitError(ctx context.Context, errType string, cause error) error {
	return c.report(ctx, "init/error", errType, cause)
}

// ExitError reports an error before exiting.
func (c *Client) ExitError(ctx context.Context, errType string, cause error) error {
	return c.report(ctx, "exit/error", errType, cause)
}

type errorReport struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace"`
}

func (c *Client) report(ctx context.Context, path, errType string, cause error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	body, _ := json.Marshal(errorReport{ErrorMessage: cause.Error(), ErrorType: errType, StackTrace: []string{}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("extensions API %s: %w", path, err)
	}
	req.Header.Set(headerIdentifier, c.id)
	req.Header.Set(headerErrorType, errType)
	req.Header.Set("Content-Type", "application/json")
	_, err = c.do(req, path, http.StatusAccepted, nil)
	return err
}

// do sends req, checks the status and decodes the JSON answer into out.
func (c *Client) do(req *http.Request, op string, want int, out any) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("extensions API %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("extensions API %s: read answer: %w", op, err)
	}
	if resp.StatusCode != want {
		exit := op == "register" && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusInternalServerError)
		var apiErr struct{ ErrorType string }
		_ = json.Unmarshal(b, &apiErr) // not every error has a JSON body
		return nil, &StatusError{Op: op, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b)), ErrorType: apiErr.ErrorType, Exit: exit}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("extensions API %s: decode answer: %w", op, err)
		}
	}
	return resp, nil
}
