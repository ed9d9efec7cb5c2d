package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error is a failed attempt to obtain credentials for one role. Callers
// branch on Retryable (recoverable STS failures) and use RetryAfter for a
// Retry-After header. The message never contains credential material: STS
// error messages do not, and we add only ARNs and durations.
type Error struct {
	Role       string // the role's name in our configuration
	RoleArn    string // the role assumed, for AssumeRole sources
	Origin     string // where the credentials come from: Source.Describe()
	Code       string // STS error code, or RequestTimeout / ConnectionError / ...
	Message    string
	Retryable  bool
	RetryAfter time.Duration // 0 unless a backoff is in force
	// RequestID is STS's id of the failed request, when it answered: AWS
	// Support asks for it.
	RequestID string
	Err       error
}

func (e *Error) Error() string {
	origin := e.Origin
	if origin == "" {
		origin = "assume role " + e.RoleArn
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s: %s: %s (STS request id %s)", origin, e.Code, e.Message, e.RequestID)
	}
	return fmt.Sprintf("%s: %s: %s", origin, e.Code, e.Message)
}

// Throttled reports whether STS refused the call for the account's request
// rate: the keeper then backs off longer (Window.Backoff).
func (e *Error) Throttled() bool { return throttleCodes[e.Code] }

// Codes (and the status text of a bare 429) that mean the request rate was
// too high.
var throttleCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
	"TooManyRequestsException": true, "Too Many Requests": true,
}

// requestIDOf is the request id of the service response inside err, if any.
func requestIDOf(err error) string {
	var r interface{ ServiceRequestID() string }
	if errors.As(err, &r) {
		return r.ServiceRequestID()
	}
	return ""
}

func (e *Error) Unwrap() error { return e.Err }

// sdkRetryable is the SDK's own classification of what a later attempt may
// fix: throttling and transient codes, 5xx statuses, connection errors.
var sdkRetryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// retryable reports whether the SDK's retryer would try err again.
func retryable(err error) bool { return sdkRetryable.IsErrorRetryable(err) == aws.TrueTernary }

// classify turns a source's error into an *Error.
func classify(role string, err error) *Error {
	e := &Error{Role: role, Err: err, RequestID: requestIDOf(err)}
	var api smithy.APIError
	var resp *awshttp.ResponseError
	var from *Error
	var proc *ProcessError
	switch {
	case errors.As(err, &from):
		// A chain link whose source role has no credentials to sign with.
		e.Code, e.Retryable = "SourceRoleUnavailable", from.Retryable
		e.Message = fmt.Sprintf("its source role %q has no credentials: %s: %s", from.Role, from.Code, from.Message)
	case errors.As(err, &proc):
		e.Code, e.Message, e.Retryable = proc.Code(), proc.Error(), proc.Kind != ProcessNotRunnable
	case errors.As(err, &api):
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
		e.Retryable = retryable(err)
	case errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Message, e.Retryable = "RequestTimeout", "STS did not answer in time", true
	case errors.Is(err, context.Canceled):
		e.Code, e.Message, e.Retryable = "RequestCanceled", "the extension is shutting down", false
	case errors.As(err, new(*smithyhttp.RequestSendError)) || (errors.As(err, &resp) && resp.HTTPStatusCode() == 0):
		e.Code, e.Message, e.Retryable = "ConnectionError", "could not reach STS: "+rootCause(err), true
	case errors.As(err, &resp):
		e.Code, e.Message = http.StatusText(resp.HTTPStatusCode()), "unexpected STS response"
		e.Retryable = retryable(err) || resp.HTTPStatusCode() == http.StatusTooManyRequests
	default:
		e.Code, e.Message, e.Retryable = "ConnectionError", "could not reach STS: "+rootCause(err), true
	}
	switch {
	case e.Code == "ValidationError" && strings.Contains(e.Message, "role chaining"):
		e.Message += " (inside Lambda the execution role's credentials are role credentials, so AssumeRole is always role chaining: " +
			"set CREDENTIAL_REFRESH_DURATION_SECONDS to 3600 or less)"
	case e.Code == "ExpiredToken":
		e.Message += BaseCredentialsExpiredHint
	}
	return e
}

// BaseCredentialsExpiredHint follows STS's ExpiredToken: the token that
// expired is the one AssumeRole was signed with, the execution role's.
const BaseCredentialsExpiredHint = " (these are the execution role's credentials, which Lambda gave this execution environment " +
	"and the extension signs AssumeRole with, not the assumed role's: they expired, and an extension cannot renew them. " +
	"Lambda gives a new execution environment new ones: on Lambda Managed Instances, publish a new function version or " +
	"update the function's configuration to replace the environments; elsewhere, check the clock. " +
	"Credentials already fetched are served until their own expiry)"

// rootCause is the innermost error's text: it names the network problem
// ("connection refused") without the SDK's long operation prefix.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
