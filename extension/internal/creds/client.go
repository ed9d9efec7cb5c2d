package creds

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
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
	Endpoint    string // empty: AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL, else the SDK's regional endpoint
	MaxAttempts int
	Timeout     time.Duration // one HTTP attempt
}

// NewSTSClient builds the extension's STS client, signed with the execution
// role's credentials (BaseCredentials). Retries are the SDK's standard
// retryer (jittered exponential backoff) without its client-side retry
// quota: a long-lived extension must not lose the ability to retry after a
// bad hour. Throttling is not retried by the SDK (see NoThrottleRetries).
//
// It assembles the client from the SDK's parts rather than calling
// config.LoadDefaultConfig: the loader links and initializes SSO, SSO-OIDC,
// sign-in and IMDS clients, shared-config parsing and process credentials,
// none of which exist in a Lambda environment, and they cost the extension
// a third of its resident memory (README, "Memory"). What Lambda does
// provide is honoured: the key variables or the credentials endpoint,
// AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL (unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), AWS_USE_FIPS_ENDPOINT,
// AWS_USE_DUALSTACK_ENDPOINT, AWS_CA_BUNDLE and AWS_SDK_UA_APP_ID.
func NewSTSClient(_ context.Context, o STSOptions) (*sts.Client, error) {
	return newSTSClient(o, os.Getenv)
}

func newSTSClient(o STSOptions, getenv func(string) string) (*sts.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTimeout(o.Timeout)
	if path := getenv("AWS_CA_BUNDLE"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("AWS_CA_BUNDLE %s: no PEM certificate in it", path)
		}
		httpClient = httpClient.WithTransportOptions(func(t *http.Transport) { t.TLSClientConfig.RootCAs = pool })
	}
	so := sts.Options{
		Region:      o.Region,
		Credentials: BaseCredentials(getenv),
		HTTPClient:  httpClient,
		AppID:       getenv("AWS_SDK_UA_APP_ID"),
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = STSMaxBackoff
			so.RateLimiter = ratelimit.None
			so.Retryables = append([]retry.IsErrorRetryable{NoThrottleRetries}, so.Retryables...)
		}),
	}
	if endpoint := baseEndpoint(o.Endpoint, getenv); endpoint != "" {
		so.BaseEndpoint = aws.String(endpoint)
	}
	if envTrue(getenv("AWS_USE_FIPS_ENDPOINT")) {
		so.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
	}
	if envTrue(getenv("AWS_USE_DUALSTACK_ENDPOINT")) {
		so.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
	}
	return sts.New(so), nil
}

// baseEndpoint is the configured endpoint, else the SDK's variables for one.
func baseEndpoint(configured string, getenv func(string) string) string {
	if configured != "" || envTrue(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
		return configured
	}
	if v := getenv("AWS_ENDPOINT_URL_STS"); v != "" {
		return v
	}
	return getenv("AWS_ENDPOINT_URL")
}

func envTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// BaseCredentials returns the execution role's credentials as Lambda hands
// them to an extension, in the order of the SDK's default chain: the key
// variables (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with
// AWS_SESSION_TOKEN); where they are absent or empty (SnapStart), the
// container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
// else _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN),
// cached and fetched again 5 min before expiry, as the SDK does. With
// neither, the provider's error says so at the first AssumeRole.
func BaseCredentials(getenv func(string) string) aws.CredentialsProvider {
	id, secret := first(getenv, "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"), first(getenv, "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY")
	if id != "" && secret != "" {
		return credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))
	}
	endpoint, err := containerEndpoint(getenv)
	if err != nil {
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return aws.Credentials{}, err })
	}
	p := endpointcreds.New(endpoint, func(o *endpointcreds.Options) {
		o.AuthorizationToken = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
		if path := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); path != "" {
			o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
				b, err := os.ReadFile(path)
				return strings.TrimSpace(string(b)), err
			})
		}
	})
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
}

func first(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// containerEndpoint is the container credentials endpoint, checked as the
// SDK checks it: plain http only to a loopback address or the ECS/EKS
// container addresses.
func containerEndpoint(getenv func(string) string) (string, error) {
	if rel := getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); rel != "" {
		return "http://169.254.170.2" + rel, nil
	}
	full := getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	if full == "" {
		return "", errors.New("no execution-role credentials: neither AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY " +
			"nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set in the extension's environment")
	}
	u, err := url.Parse(full)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL with a host")
	}
	if u.Scheme == "http" && !allowedContainerHost(u.Hostname()) {
		return "", fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is allowed only to a loopback or ECS/EKS container address, not %q", u.Hostname())
	}
	return full, nil
}

func allowedContainerHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.Equal(net.ParseIP("169.254.170.2")) ||
		ip.Equal(net.ParseIP("169.254.170.23")) || ip.Equal(net.ParseIP("fd00:ec2::23")))
}

// NoThrottleRetries keeps the SDK's retryer from retrying a throttled
// request (Throttling, a 429, the SDK's other throttle codes). STS
// throttles per account: when it does, a fleet of environments is over the
// quota together, and the retryer's retries, 0–2 s later, land in the same
// burst, each taking the place of another environment's first request.
// The keeper's own backoff on Throttling waits longer instead
// (Window.Backoff; docs/fleet.md).
var NoThrottleRetries = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})
