package agent

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

// buildKeepers makes one keeper per configured role, each from its source:
// AssumeRole signed by the execution role's credentials (client), AssumeRole
// signed by another role's keeper (a chain link), or a credential process.
// A link's source keeper is built first; the configuration has no cycles.
func (a *agent) buildKeepers(client *sts.Client) map[string]server.Role {
	keepers := map[string]*creds.Keeper{}
	var build func(name string) *creds.Keeper
	build = func(name string) *creds.Keeper {
		if k, ok := keepers[name]; ok {
			return k
		}
		k := creds.NewKeeper(a.source(name, client, build), func(ko *creds.Options) {
			ko.Name, ko.Now, ko.Logger, ko.RefreshTimeout = name, a.o.Now, a.o.Logger, a.refreshTimeout()
			ko.RefreshInBackground = a.cfg.Mode == config.ModeEager
			ko.Identify = identify(client)
			if a.o.Metrics != nil {
				ko.Observe = a.o.Metrics.Observe
			}
		})
		a.o.Metrics.Count(func() (int64, int64) { h := k.Health(); return h.Served, h.Waited })
		keepers[name] = k
		a.keepers = append(a.keepers, k)
		return k
	}
	roles := map[string]server.Role{}
	for _, name := range a.cfg.RoleNames() {
		roles[name] = build(name)
	}
	return roles
}

func (a *agent) source(name string, client *sts.Client, keeper func(string) *creds.Keeper) creds.Source {
	r := a.cfg.Roles[name]
	switch {
	case r.CredentialProcess != nil:
		return creds.CredentialProcess(r.CredentialProcess, a.cfg.ProcessEnv(name))
	case r.SourceRole != "":
		return creds.AssumeRole(creds.ChainClient(client, keeper(r.SourceRole)), r.AssumeRoleInput)
	default:
		return creds.AssumeRole(client, r.AssumeRoleInput)
	}
}

// identify looks up who a credential set is: GetCallerIdentity signed with
// it, through a client like the extension's own (region, endpoint, retries).
func identify(client *sts.Client) func(context.Context, aws.Credentials) (creds.Identity, error) {
	return func(ctx context.Context, c aws.Credentials) (creds.Identity, error) {
		out, err := sts.New(client.Options(), func(o *sts.Options) {
			o.Credentials = credentials.StaticCredentialsProvider{Value: c}
		}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return creds.Identity{}, err
		}
		return creds.Identity{Account: aws.ToString(out.Account), Arn: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}, nil
	}
}
