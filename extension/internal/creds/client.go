package creds

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STSMaxBackoff caps the SDK retryer's delay between attempts, so a
// refresh's worst case is MaxAttempts*Timeout + (MaxAttempts-1)*STSMaxBackoff.
const STSMaxBackoff = 2 * time.Second

// RefreshBudget is that worst case plus a second of slack: the bound to put
// on one refresh (Options.RefreshTimeout).
func RefreshBudget(o STSOptions) time.Duration {
	n := time.Duration(o.MaxAttempts)
	return n*o.Timeout + (n-1)*STSMaxBackoff + time.Second
}

// STSOptions are the seed's sts_client_kwargs analogues.
type STSOptions struct {
	Region      string
	Endpoint    string // empty: the SDK's regional endpoint, or AWS_ENDPOINT_URL_STS
	MaxAttempts int
	Timeout     time.Duration // one HTTP attempt
}

// NewSTSClient builds the STS client from the SDK's default chain, which in
// Lambda finds the execution role's credentials in the environment. Retries
// are the SDK's standard retryer (jittered exponential backoff) without its
// client-side retry quota: a long-lived extension must not lose the ability
// to retry after a bad hour. Throttling is not retried by the SDK (see
// NoThrottleRetries).
func NewSTSClient(ctx context.Context, o STSOptions) (*sts.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(o.Region),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(o.Timeout)),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = STSMaxBackoff
				so.RateLimiter = ratelimit.None
				so.Retryables = append([]retry.IsErrorRetryable{NoThrottleRetries}, so.Retryables...)
			})
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("load AWS config for STS: %w", err)
	}
	return sts.NewFromConfig(cfg, func(so *sts.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}

// NoThrottleRetries keeps the SDK's retryer from retrying a throttled
// request (Throttling, a 429, the SDK's other throttle codes). STS
// throttles per account: when it does, a fleet of environments is over the
// quota together, and the retryer's retries, 0–2 s later, land in the same
// burst, each taking the place of another environment's first request
// (about 2.9 requests per environment in a 10,000-environment cold start,
// against 1.4 without them: docs/fleet.md). The keeper's own backoff on
// Throttling waits longer instead (Window.Backoff).
var NoThrottleRetries = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})
