package ststest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/testing/memnet"
)

// Issued is one set of credentials the fake handed out.
type Issued struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
}

// Failure makes the fake answer with an STS error.
type Failure struct {
	Status  int
	Code    string
	Message string
}

// Server is the fake STS.
type Server struct {
	*httptest.Server
	now func() time.Time

	calls atomic.Int64

	mu       sync.Mutex
	failure  *Failure
	gate     chan struct{} // non-nil: requests wait until it is closed
	delay    time.Duration // every answer waits this long
	issued   []Issued
	requests []url.Values
	signers  []string // the access key id of each request's SigV4 signature
}

// New starts a fake STS whose Expiration is now()+DurationSeconds.
func New(t testing.TB, now func() time.Time) *Server {
	s := &Server{now: now}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

// NewInProcess is New without a socket: its Client calls the fake's
// handler in-process, so tests can run inside a testing/synctest bubble
// (whose clock cannot advance while a goroutine waits on a real socket).
// It has no URL.
func NewInProcess(now func() time.Time) *Server { return &Server{now: now} }

// Client is a real *sts.Client aimed at the fake, with maxAttempts attempts
// and near-zero retry delays.
func (s *Server) Client(maxAttempts int) *sts.Client {
	o := sts.Options{HTTPClient: &http.Client{Transport: memnet.HandlerTransport(http.HandlerFunc(s.handle))}, BaseEndpoint: aws.String("http://sts.in-process.invalid")}
	if s.Server != nil {
		o = sts.Options{BaseEndpoint: aws.String(s.URL)}
	}
	return sts.New(o, func(o *sts.Options) {
		o.Region = "us-east-1"
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIABASE", "base-secret", "")
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
			o.MaxBackoff = time.Millisecond
			o.RateLimiter = ratelimit.None
		})
	})
}

// Fail makes every call fail with f until Fail(nil).
func (s *Server) Fail(f *Failure) {
	s.mu.Lock()
	s.failure = f
	s.mu.Unlock()
}

// SetDelay makes every answer take at least d, like a distant STS.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Hold makes calls wait until the returned release func is called.
func (s *Server) Hold() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

// Calls is the number of AssumeRole requests received.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Issued lists every credential handed out.
func (s *Server) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

// Requests lists the form of every AssumeRole request.
func (s *Server) Requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.requests...)
}

// Signers lists, per AssumeRole request, the access key id it was signed
// with: which base credentials the caller used.
func (s *Server) Signers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.signers...)
}

// signer reads the key id from "AWS4-HMAC-SHA256 Credential=AKID/date/...".
func signer(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRole" {
		writeError(w, Failure{http.StatusBadRequest, "InvalidAction", "only AssumeRole is faked"})
		return
	}
	s.calls.Add(1)
	s.mu.Lock()
	s.requests = append(s.requests, r.PostForm)
	s.signers = append(s.signers, signer(r.Header.Get("Authorization")))
	gate, failure, delay := s.gate, s.failure, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if failure != nil {
		writeError(w, *failure)
		return
	}
	secs, _ := strconv.Atoi(r.PostForm.Get("DurationSeconds"))
	s.writeCredentials(w, r.PostForm, time.Duration(secs)*time.Second)
}

func (s *Server) writeCredentials(w http.ResponseWriter, form url.Values, lifetime time.Duration) {
	s.mu.Lock()
	n := len(s.issued) + 1
	c := Issued{AccessKeyID: fmt.Sprintf("ASIAFAKE%012d", n), SecretAccessKey: "sk-" + randomHex(),
		SessionToken: "st-" + randomHex(), Expiration: s.now().Add(lifetime).UTC()}
	s.issued = append(s.issued, c)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("req-%d", n)) // where the SDK reads it from
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<AssumedRoleUser><AssumedRoleId>AROAFAKE:%[1]s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/target/%[1]s</Arn></AssumedRoleUser>
<Credentials><AccessKeyId>%[2]s</AccessKeyId><SecretAccessKey>%[3]s</SecretAccessKey><SessionToken>%[4]s</SessionToken><Expiration>%[5]s</Expiration></Credentials>
</AssumeRoleResult><ResponseMetadata><RequestId>req-%[6]d</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		form.Get("RoleSessionName"), c.AccessKeyID, c.SecretAccessKey, c.SessionToken,
		c.Expiration.Format(time.RFC3339Nano), n)
}

func writeError(w http.ResponseWriter, f Failure) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", "err")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>err</RequestId></ErrorResponse>`,
		f.Code, f.Message)
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
