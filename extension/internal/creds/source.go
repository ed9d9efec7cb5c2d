package creds

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Source fetches one set of temporary credentials for a keeper: it has the
// shape of the SDK's aws.CredentialsProvider, and the keeper is the cache in
// front of it. Windows, single flight, backoff, stale-while-valid and
// never-expired live in the keeper and apply to every source alike.
type Source interface {
	Retrieve(ctx context.Context) (aws.Credentials, error)
	// Describe names where the credentials come from, for logs, errors and
	// /v1/health: "assume role arn:...", "credential process /opt/bin/x".
	Describe() string
}

// AssumeRoleAPIClient is the part of *sts.Client an AssumeRole source uses.
type AssumeRoleAPIClient interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// AssumeRoleSource calls STS AssumeRole with the input, signed by whatever
// credentials client has: the execution role's (the default chain), or,
// for a link of a role chain, another keeper's (see ChainClient).
//
// stscreds.AssumeRoleProvider does the same call but has no
// ProvidedContexts, which the configuration accepts; and the keeper needs
// no second cache.
type AssumeRoleSource struct {
	Client AssumeRoleAPIClient
	Input  sts.AssumeRoleInput
}

// AssumeRole returns the source that assumes input's role with client.
func AssumeRole(client AssumeRoleAPIClient, input *sts.AssumeRoleInput) *AssumeRoleSource {
	return &AssumeRoleSource{Client: client, Input: *input}
}

// Describe is "assume role <ARN>".
func (s *AssumeRoleSource) Describe() string { return "assume role " + aws.ToString(s.Input.RoleArn) }

// Retrieve makes one AssumeRole call.
func (s *AssumeRoleSource) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, _, err := s.retrieveWithID(ctx)
	return c, err
}

// retrieveWithID makes one AssumeRole call and returns STS's request id
// with its outcome, for logs, errors, metrics and /v1/health.
func (s *AssumeRoleSource) retrieveWithID(ctx context.Context) (aws.Credentials, string, error) {
	in := s.Input // a copy: the SDK must not share our input across calls
	out, err := s.Client.AssumeRole(ctx, &in)
	if err != nil {
		return aws.Credentials{}, requestIDOf(err), err
	}
	id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
		return aws.Credentials{}, id, fmt.Errorf("STS response lacks credentials")
	}
	return aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken,
		CanExpire: true, Expires: *c.Expiration, AccountID: accountOf(out)}, id, nil
}

// lifetime is the DurationSeconds asked for, 1 h by default.
func (s *AssumeRoleSource) lifetime() time.Duration {
	if d := time.Duration(aws.ToInt32(s.Input.DurationSeconds)) * time.Second; d > 0 {
		return d
	}
	return time.Hour
}

// accountOf reads the account from arn:aws:sts::123456789012:assumed-role/...
func accountOf(out *sts.AssumeRoleOutput) string {
	if out.AssumedRoleUser == nil {
		return ""
	}
	parts := strings.SplitN(aws.ToString(out.AssumedRoleUser.Arn), ":", 6)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

// ChainClient returns an STS client like base whose requests are signed with
// the source role's credentials: the keeper of the role a chain link
// assumes from. Each AssumeRole of the link then asks that keeper for its
// current credentials, refreshing them first if they need it (single
// flight per link).
func ChainClient(base *sts.Client, from *Keeper) *sts.Client {
	return sts.New(base.Options(), func(o *sts.Options) { o.Credentials = from })
}

// Retrieve makes a keeper an aws.CredentialsProvider, for the STS client
// of a chain link that assumes a role from this one.
func (k *Keeper) Retrieve(ctx context.Context) (aws.Credentials, error) { return k.credentials(ctx, 0) }

// IsCredentialsProvider tells the SDK that a keeper is already a cache (it
// matches *aws.CredentialsCache), so an STS client does not wrap it in
// another one, which would keep handing out the keeper's credentials past
// its floor and after a forced refresh.
func (k *Keeper) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	switch target.(type) {
	case *aws.CredentialsCache, *Keeper:
		return true
	}
	return false
}
