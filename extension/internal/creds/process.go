package creds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Limits of a credential process, documented in the README.
const (
	// ProcessTimeout bounds one run of the program; it is then killed,
	// with its whole process group.
	ProcessTimeout = 10 * time.Second
	// ProcessMaxOutput bounds what is read of its stdout.
	ProcessMaxOutput = 64 << 10
	// ProcessDefaultLifetime is how long credentials without an Expiration
	// (long-term keys) are served before the program runs again.
	ProcessDefaultLifetime = time.Hour
	// processStderrKept is how much of stderr is kept for the summary.
	processStderrKept = 4 << 10
)

// ProcessSource runs a program that prints AWS's credential_process JSON on
// stdout: {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken",
// "Expiration"}. The program is run directly from its argv, never through a
// shell, with the environment Env and nothing else, no stdin, and "/" as its
// working directory.
//
// The SDK's processcreds provider is not used: it runs a command line
// through sh, passes the whole environment and stdin on, copies stderr to
// our logs unfiltered, reads stdout without a bound, and puts the program's
// output into its parse errors, where a secret could reach a log.
type ProcessSource struct {
	Argv    []string
	Env     []string
	Timeout time.Duration // default ProcessTimeout
}

// CredentialProcess returns the source that runs argv with env.
func CredentialProcess(argv, env []string) *ProcessSource {
	return &ProcessSource{Argv: argv, Env: env, Timeout: ProcessTimeout}
}

// Describe is "credential process <program>" (its arguments are left out:
// they could hold anything).
func (p *ProcessSource) Describe() string { return "credential process " + p.Argv[0] }

// ProcessErrorKind says how a credential process failed.
type ProcessErrorKind int

// The ways a credential process fails. All but ProcessNotRunnable are
// retryable: a broker may be briefly unable to answer.
const (
	ProcessNotRunnable ProcessErrorKind = iota + 1 // could not be started (missing, not executable)
	ProcessFailed                                  // exited non-zero, or was killed
	ProcessTimedOut                                // ran past the timeout
	ProcessBadOutput                               // stdout is not valid credential_process JSON
)

// ProcessError is a failed run of a credential process. It never holds the
// program's stdout, and only a redacted summary of its stderr.
type ProcessError struct {
	Kind     ProcessErrorKind
	Program  string
	ExitCode int    // for ProcessFailed; -1 if killed by a signal
	Detail   string // what went wrong
	Stderr   string // a redacted summary of stderr's first line
}

func (e *ProcessError) Error() string {
	s := fmt.Sprintf("%s: %s", e.Program, e.Detail)
	if e.Stderr != "" {
		s += fmt.Sprintf(" (stderr: %s)", e.Stderr)
	}
	return s
}

// Code is the error code reported for e, in the 503s and /v1/health.
func (e *ProcessError) Code() string {
	switch e.Kind {
	case ProcessNotRunnable:
		return "CredentialProcessNotRunnable"
	case ProcessTimedOut:
		return "CredentialProcessTimeout"
	case ProcessBadOutput:
		return "CredentialProcessInvalidOutput"
	}
	return "CredentialProcessFailed"
}

// Retrieve runs the program once and parses what it printed.
func (p *ProcessSource) Retrieve(ctx context.Context) (aws.Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Argv[0], p.Argv[1:]...)
	cmd.Env, cmd.Dir = p.Env, "/"
	stdout, stderr := &capped{max: ProcessMaxOutput}, &capped{max: processStderrKept}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, killed whole on timeout: a helper script's
	// children must not outlive it holding our pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	perr := &ProcessError{Program: p.Argv[0]}
	switch {
	case err == nil && stdout.over:
		perr.Kind, perr.Detail = ProcessBadOutput, fmt.Sprintf("printed more than %d bytes", ProcessMaxOutput)
	case err == nil:
		c, perr2 := ParseProcessOutput(stdout.Bytes())
		if perr2 == nil {
			return c, nil
		}
		perr.Kind, perr.Detail = ProcessBadOutput, perr2.Error()
	case ctx.Err() == context.DeadlineExceeded:
		perr.Kind, perr.Detail = ProcessTimedOut, fmt.Sprintf("did not finish within %s and was killed", p.Timeout)
	case ctx.Err() != nil:
		return aws.Credentials{}, ctx.Err() // the extension is shutting down
	default:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			perr.Kind, perr.ExitCode = ProcessFailed, exit.ExitCode()
			perr.Detail = fmt.Sprintf("exited with status %d", exit.ExitCode())
			if exit.ExitCode() < 0 {
				perr.Detail = "was killed: " + exit.String()
			}
		} else {
			perr.Kind, perr.Detail = ProcessNotRunnable, "could not be started: "+rootCause(err)
		}
	}
	perr.Stderr = summarize(stderr.Bytes())
	return aws.Credentials{}, perr
}

// processOutput is credential_process's JSON.
type processOutput struct {
	Version         *int    `json:"Version"`
	AccessKeyID     string  `json:"AccessKeyId"`
	SecretAccessKey string  `json:"SecretAccessKey"`
	SessionToken    string  `json:"SessionToken"`
	Expiration      *string `json:"Expiration"`
	AccountID       string  `json:"AccountId"`
}

// ParseProcessOutput parses credential_process JSON. Its errors never
// contain the output itself, which may hold secrets.
func ParseProcessOutput(b []byte) (aws.Credentials, error) {
	var out processOutput
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&out); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return aws.Credentials{}, fmt.Errorf("output is not JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return aws.Credentials{}, fmt.Errorf("output field %q has the wrong type (%s, want %s)", te.Field, te.Value, te.Type)
		}
		return aws.Credentials{}, errors.New("output is not a JSON object")
	}
	if dec.More() {
		return aws.Credentials{}, errors.New("output has data after the JSON object")
	}
	switch {
	case out.Version == nil || *out.Version != 1:
		return aws.Credentials{}, errors.New(`output must have "Version": 1`)
	case out.AccessKeyID == "" || out.SecretAccessKey == "":
		return aws.Credentials{}, errors.New("output lacks AccessKeyId or SecretAccessKey")
	}
	c := aws.Credentials{AccessKeyID: out.AccessKeyID, SecretAccessKey: out.SecretAccessKey,
		SessionToken: out.SessionToken, AccountID: out.AccountID}
	if out.Expiration != nil {
		t, err := time.Parse(time.RFC3339, *out.Expiration)
		if err != nil {
			return aws.Credentials{}, errors.New("output's Expiration is not an RFC 3339 time such as 2026-11-25T10:00:00Z")
		}
		c.CanExpire, c.Expires = true, t
	}
	return c, nil
}

// capped keeps the first max bytes written to it and notes any excess.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.over = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil // keep the program writing; the excess is dropped
	}
	return c.Buffer.Write(p)
}

// secretLike matches runs that could be keys or tokens: long stretches of
// base64 or hex characters.
var secretLike = regexp.MustCompile(`[A-Za-z0-9+/=_-]{16,}`)

// summarize keeps stderr's first non-empty line, at most 200 bytes, with
// anything that could be a key or token redacted.
func summarize(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			if len(line) > 200 {
				line = line[:200] + "..."
			}
			return secretLike.ReplaceAllString(line, "[redacted]")
		}
	}
	return ""
}
