package credrefresh

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// LoadDefaultConfig is config.LoadDefaultConfig with the credentials taken
// from the extension: a Provider configured from the function's environment
// (CREDENTIAL_REFRESH_CLIENT_ROLE, CREDENTIAL_REFRESH_PORT and
// CREDENTIAL_REFRESH_TOKEN_FILE, the variables the extension and the exec
// wrapper read), given to config.WithCredentialsProvider. config wraps it
// in an aws.CredentialsCache whose ExpiryWindow is DefaultExpiryWindow.
//
// optFns are config's own options, applied after the provider: a
// config.WithCredentialsCacheOptions among them changes the cache, starting
// from DefaultExpiryWindow, and a config.WithCredentialsProvider replaces
// the extension's credentials.
func LoadDefaultConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts, err := optionsFromEnv()
	if err != nil {
		return aws.Config{}, fmt.Errorf("credrefresh: %w", err)
	}
	p, err := New(func(o *Options) { *o = opts })
	if err != nil {
		return aws.Config{}, err
	}
	fns := make([]func(*config.LoadOptions) error, 0, len(optFns)+2)
	fns = append(fns, config.WithCredentialsProvider(p))
	fns = append(fns, optFns...)
	fns = append(fns, withDefaultCacheOptions)
	return config.LoadDefaultConfig(ctx, fns...)
}

// withDefaultCacheOptions runs last, so it sees the caller's
// config.WithCredentialsCacheOptions (config keeps only the last one) and
// applies it on top of the defaults instead of letting either replace the
// other.
func withDefaultCacheOptions(o *config.LoadOptions) error {
	theirs := o.CredentialsCacheOptions
	o.CredentialsCacheOptions = func(co *aws.CredentialsCacheOptions) {
		co.ExpiryWindow = DefaultExpiryWindow
		if theirs != nil {
			theirs(co)
		}
	}
	return nil
}

// optionsFromEnv reads the variables as the extension does: surrounding
// spaces ignored, the port a plain decimal (a "02775" would make the SDK
// send a Host header the extension refuses). Its errors name the variable.
func optionsFromEnv() (Options, error) {
	o := Options{
		Role:      strings.TrimSpace(os.Getenv(EnvRole)),
		TokenFile: strings.TrimSpace(os.Getenv(EnvTokenFile)),
	}
	if o.Role != "" {
		if err := contract.CheckRoleName(o.Role); err != nil {
			return Options{}, fmt.Errorf("%s: %w", EnvRole, err)
		}
	}
	if v := strings.TrimSpace(os.Getenv(EnvPort)); v != "" {
		p, err := contract.ParsePort(v)
		if err != nil {
			return Options{}, fmt.Errorf("%s: %w", EnvPort, err)
		}
		o.Port = p
	}
	return o, nil
}
