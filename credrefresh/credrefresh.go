package credrefresh

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
)

// Defaults, and the environment variables that override them. They match
// the extension's own: both sides read the same function environment.
const (
	DefaultPort      = 2775
	DefaultTokenFile = "/tmp/credential-refresh/token"

	EnvRole      = "CREDENTIAL_REFRESH_CLIENT_ROLE"
	EnvPort      = "CREDENTIAL_REFRESH_PORT"
	EnvTokenFile = "CREDENTIAL_REFRESH_TOKEN_FILE"
)

// maxExpiryWindow is how long before the served Expiration the cache goes
// back to the extension. It is the window the SDK's own container provider
// uses (config.LoadDefaultConfig sets 5 minutes). The extension hands out
// credentials with more than 15 minutes left whenever the lifetime allows,
// so 5 minutes never makes a healthy function wait; and it leaves a failing
// extension 5 minutes for retries before the credentials really expire.
const maxExpiryWindow = 5 * time.Minute

// roleName is what the extension accepts as a named role in the URL path.
var roleName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Options configures NewProvider. A zero field takes its default.
type Options struct {
	// Role is the named role to read, served at /v1/credentials/{Role}.
	// Empty: the value of CREDENTIAL_REFRESH_CLIENT_ROLE, and when that is
	// empty too, the extension's default role (/v1/credentials).
	// It must match [A-Za-z0-9_.-]+.
	Role string

	// Port is the extension's port on 127.0.0.1. Zero: the value of
	// CREDENTIAL_REFRESH_PORT, and when that is empty too, 2775.
	Port int

	// TokenFile holds the token the extension expects in the Authorization
	// header. It is read on every fetch, so a restarted extension's new token
	// is picked up. Empty: the value of CREDENTIAL_REFRESH_TOKEN_FILE, and
	// when that is empty too, /tmp/credential-refresh/token.
	TokenFile string

	// Endpoint replaces the whole credentials URL; Role and Port are then
	// ignored. Empty: http://127.0.0.1:{Port}/v1/credentials[/{Role}].
	Endpoint string

	// HTTPClient sends the requests to the extension. Nil: the SDK's default.
	HTTPClient endpointcreds.HTTPClient

	// Getenv reads the environment. Nil: os.Getenv. Tests set it.
	Getenv func(string) string
}

// WithRole selects the named role. It is a shortcut for setting Options.Role.
func WithRole(name string) func(*Options) {
	return func(o *Options) { o.Role = name }
}

// NewProvider returns a cached credentials provider that reads the
// extension's endpoint. It makes no request: the first Retrieve does.
// It fails only on invalid options.
func NewProvider(optFns ...func(*Options)) (aws.CredentialsProvider, error) {
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	endpoint, err := o.resolve()
	if err != nil {
		return nil, fmt.Errorf("credrefresh: %w", err)
	}
	p := &provider{
		endpoint: endpoint,
		inner: endpointcreds.New(endpoint, func(eo *endpointcreds.Options) {
			eo.HTTPClient = o.HTTPClient
			eo.AuthorizationTokenProvider = tokenFile(o.TokenFile)
		}),
		now: time.Now,
	}
	return aws.NewCredentialsCache(p, func(co *aws.CredentialsCacheOptions) {
		co.ExpiryWindow = maxExpiryWindow
	}), nil
}

// LoadDefaultConfig is config.LoadDefaultConfig with the credentials taken
// from the extension (NewProvider with its defaults and environment). The
// options are applied after ours, so config.WithCredentialsProvider among
// them would replace the extension's credentials.
func LoadDefaultConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	p, err := NewProvider()
	if err != nil {
		return aws.Config{}, err
	}
	fns := append([]func(*config.LoadOptions) error{config.WithCredentialsProvider(p)}, optFns...)
	return config.LoadDefaultConfig(ctx, fns...)
}

// resolve fills the zero fields from the environment and the defaults,
// validates them and returns the credentials URL.
func (o *Options) resolve() (string, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.TokenFile == "" {
		o.TokenFile = o.Getenv(EnvTokenFile)
	}
	if o.TokenFile == "" {
		o.TokenFile = DefaultTokenFile
	}
	if o.Endpoint != "" {
		return o.Endpoint, validateEndpoint(o.Endpoint)
	}
	return o.endpointURL()
}

func (o *Options) endpointURL() (string, error) {
	if o.Role == "" {
		o.Role = o.Getenv(EnvRole)
	}
	if o.Role != "" && (!roleName.MatchString(o.Role) || o.Role == "." || o.Role == "..") {
		return "", fmt.Errorf("role name %q: want letters, digits, '_', '.' or '-'", o.Role)
	}
	if err := o.resolvePort(); err != nil {
		return "", err
	}
	u := "http://127.0.0.1:" + strconv.Itoa(o.Port) + "/v1/credentials"
	if o.Role != "" {
		u += "/" + o.Role
	}
	return u, nil
}

func (o *Options) resolvePort() error {
	if o.Port == 0 {
		v := o.Getenv(EnvPort)
		if v == "" {
			o.Port = DefaultPort
			return nil
		}
		p, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: not a port number", EnvPort, v)
		}
		o.Port = p
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("port %d: want 1-65535", o.Port)
	}
	return nil
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

// tokenFile reads the token on every call, so a rotated token is used at
// once. The token itself never appears in an error.
func tokenFile(path string) endpointcreds.TokenProviderFunc {
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

// provider is the SDK's endpointcreds provider with clearer errors and an
// expiry window scaled to short lifetimes.
type provider struct {
	endpoint string
	inner    *endpointcreds.Provider
	now      func() time.Time
}

func (p *provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := p.inner.Retrieve(ctx)
	if err == nil {
		return creds, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return aws.Credentials{}, fmt.Errorf("credential-refresh extension at %s: %w; the extension is probably not running (is its layer attached?)", p.endpoint, err)
	}
	return aws.Credentials{}, fmt.Errorf("credential-refresh extension at %s: %w", p.endpoint, err)
}

// ProviderSources reports the source as the SDK's HTTP credentials provider.
func (p *provider) ProviderSources() []aws.CredentialSource {
	return p.inner.ProviderSources()
}

// AdjustExpiresBy lets aws.CredentialsCache apply its expiry window, capped
// at half the remaining lifetime. Without the cap, credentials that live
// less than the window (tests and demos use lifetimes of minutes) would
// count as expired at once, and every SDK call would fetch them again.
func (p *provider) AdjustExpiresBy(creds aws.Credentials, dur time.Duration) (aws.Credentials, error) {
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
