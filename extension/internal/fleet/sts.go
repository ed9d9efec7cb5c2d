package fleet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// STS is an in-process AssumeRole (a creds.AssumeRoleAPIClient) behind one
// account's request quota: a token bucket of Burst tokens refilled at Rate
// per second, on the clock Now. A request that finds a token is answered
// with credentials valid for Lifetime; the others get ThrottleCode, as STS
// answers "Throttling: Rate exceeded". Throttled requests take no token.
// The caller is read from the RoleSessionName "env-<n>".
type STS struct {
	Now      func() time.Time
	Rate     float64
	Burst    float64
	Lifetime time.Duration
	// ThrottleCode is the error code of a throttled request. Default
	// "Throttling".
	ThrottleCode string

	mu     sync.Mutex
	tokens float64
	last   time.Time
	calls  []Call
}

// Call is one AssumeRole request the fake received.
type Call struct {
	At  time.Time
	Env int
	OK  bool
}

// AssumeRole answers from the bucket.
func (s *STS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	env, _ := strconv.Atoi(strings.TrimPrefix(aws.ToString(in.RoleSessionName), "env-"))
	s.mu.Lock()
	now := s.Now()
	ok := s.takeLocked(now)
	s.calls = append(s.calls, Call{At: now, Env: env, OK: ok})
	n := len(s.calls)
	s.mu.Unlock()
	if !ok {
		code := s.ThrottleCode
		if code == "" {
			code = "Throttling"
		}
		return nil, &smithy.GenericAPIError{Code: code, Message: "Rate exceeded", Fault: smithy.FaultClient}
	}
	return &sts.AssumeRoleOutput{
		Credentials: &ststypes.Credentials{
			AccessKeyId: aws.String(fmt.Sprintf("ASIASIM%013d", n)), SecretAccessKey: aws.String("sim-secret"),
			SessionToken: aws.String("sim-token"), Expiration: aws.Time(now.Add(s.Lifetime)),
		},
		AssumedRoleUser: &ststypes.AssumedRoleUser{Arn: aws.String("arn:aws:sts::123456789012:assumed-role/sim/" + aws.ToString(in.RoleSessionName))},
	}, nil
}

// takeLocked refills the bucket up to now and takes a token if there is one.
func (s *STS) takeLocked(now time.Time) bool {
	if s.last.IsZero() {
		s.tokens, s.last = s.Burst, now
	}
	if dt := now.Sub(s.last); dt > 0 {
		s.tokens = min(s.Burst, s.tokens+dt.Seconds()*s.Rate)
		s.last = now
	}
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// Calls returns every request received so far, in order.
func (s *STS) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}
