package credrefresh

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// ProviderName is the Source of the credentials a Provider returns.
const ProviderName = "CredentialRefreshProvider"

// Defaults. They match the extension's own: both sides read the same
// function environment.
const (
	DefaultPort      = contract.DefaultPort
	DefaultTokenFile = contract.DefaultTokenFile

	// DefaultExpiryWindow is the aws.CredentialsCache ExpiryWindow that
	// LoadDefaultConfig sets: the one the SDK's own container provider gets
	// from config.LoadDefaultConfig. The extension hands out credentials with
	// more than 15 minutes left whenever the lifetime allows, so 5 minutes
	// never makes a healthy function wait; and it leaves a failing extension
	// 5 minutes for retries before the credentials really expire. A Provider
	// caps any window at half the credentials' remaining lifetime.
	DefaultExpiryWindow = 5 * time.Minute
)

// The environment variables LoadDefaultConfig reads. New reads none.
const (
	EnvRole      = contract.EnvClientRole
	EnvPort      = contract.EnvPort
	EnvTokenFile = contract.EnvTokenFile
)

// Options configures a Provider. A zero field takes the default its comment
// names; New never reads the environment.
type Options struct {
	// Role is the named role to read, served at /v1/credentials/{Role}.
	// Default "": the extension's default role, at /v1/credentials.
	// Otherwise 1-64 characters of A-Z a-z 0-9 _ . -, and not "." or "..".
	Role string

	// Port is the extension's port on 127.0.0.1, 1024-65535.
	// Default 0: DefaultPort (2775).
	Port int

	// TokenFile holds the token the extension expects in the Authorization
	// header. It is read on every fetch, so a restarted extension's new
	// token is picked up. Default "": DefaultTokenFile.
	TokenFile string

	// Endpoint replaces the whole credentials URL (an absolute http or
	// https URL); Role and Port are then ignored.
	// Default "": http://127.0.0.1:{Port}/v1/credentials[/{Role}].
	Endpoint string

	// HTTPClient sends the requests to the extension.
	// Default nil: the endpointcreds provider's own client.
	HTTPClient endpointcreds.HTTPClient
}

// Provider reads the credentials the credential-refresh extension serves.
// It is the SDK's endpointcreds provider with the extension's token file,
// clearer errors and an expiry window scaled to short lifetimes. Like the
// SDK's providers it does not cache: wrap it in an aws.CredentialsCache,
// as config.WithCredentialsProvider and LoadDefaultConfig do.
type Provider struct {
	endpoint string
	inner    *endpointcreds.Provider
	now      func() time.Time
}

var (
	_ aws.CredentialsProvider                     = (*Provider)(nil)
	_ aws.CredentialProviderSource                = (*Provider)(nil)
	_ aws.AdjustExpiresByCredentialsCacheStrategy = (*Provider)(nil)
)

// New returns a Provider for the extension on 127.0.0.1. It makes no
// request: the first Retrieve does. It fails only on invalid options.
func New(optFns ...func(*Options)) (*Provider, error) {
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	endpoint, err := o.endpoint()
	if err != nil {
		return nil, fmt.Errorf("credrefresh: %w", err)
	}
	tokenFile := o.TokenFile
	if tokenFile == "" {
		tokenFile = DefaultTokenFile
	}
	return &Provider{
		endpoint: endpoint,
		inner: endpointcreds.New(endpoint, func(eo *endpointcreds.Options) {
			eo.HTTPClient = o.HTTPClient
			eo.AuthorizationTokenProvider = readToken(tokenFile)
		}),
		now: time.Now,
	}, nil
}

// endpoint validates the options and returns the credentials URL.
func (o *Options) endpoint() (string, error) {
	if o.Endpoint != "" {
		return o.Endpoint, validateEndpoint(o.Endpoint)
	}
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	if err := validatePort(port); err != nil {
		return "", err
	}
	if o.Role != "" {
		if err := contract.CheckRoleName(o.Role); err != nil {
			return "", err
		}
	}
	return contract.CredentialsURL(port, o.Role), nil
}

// validatePort applies the extension's port rules (contract.ParsePort) to
// a port given as a number.
func validatePort(p int) error {
	_, err := contract.ParsePort(strconv.Itoa(p))
	return err
}

func validateEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q: want an absolute http or https URL", s)
	}
	return nil
}

// readToken reads the token on every call, so a rotated token is used at
// once. The token itself never appears in an error.
func readToken(path string) endpointcreds.TokenProviderFunc {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read token file: %w; the credential-refresh extension is probably not running (is its layer attached?)", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty; the credential-refresh extension is probably not running", path)
		}
		return tok, nil
	}
}

// Retrieve fetches the credentials from the extension.
func (p *Provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := p.inner.Retrieve(ctx)
	if err == nil {
		creds.Source = ProviderName
		return creds, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return aws.Credentials{}, fmt.Errorf("credential-refresh extension at %s: %w; the extension is probably not running (is its layer attached?)", p.endpoint, err)
	}
	return aws.Credentials{}, fmt.Errorf("credential-refresh extension at %s: %w", p.endpoint, err)
}

// ProviderSources reports the source as the SDK's HTTP credentials provider.
func (p *Provider) ProviderSources() []aws.CredentialSource {
	return p.inner.ProviderSources()
}

// AdjustExpiresBy lets aws.CredentialsCache apply its expiry window, capped
// at half the remaining lifetime. Without the cap, credentials that live
// less than the window (tests and demos use lifetimes of minutes) would
// count as expired at once, and every SDK call would fetch them again.
func (p *Provider) AdjustExpiresBy(creds aws.Credentials, dur time.Duration) (aws.Credentials, error) {
	if !creds.CanExpire {
		return creds, nil
	}
	window := -dur
	if half := creds.Expires.Sub(p.now()) / 2; window > half {
		window = max(half, 0)
	}
	creds.Expires = creds.Expires.Add(-window)
	return creds, nil
}
