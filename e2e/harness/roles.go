package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// The functions that use the in-layer helpers for two named roles at once
// (examples/python/roles.py, examples/node/roles.mjs).
const (
	PythonRoles Runtime = "python-roles"
	NodeRoles   Runtime = "node-roles"
)

// NamedRole is one role of RolesAccount: the only principal that may write
// to its bucket.
type NamedRole struct {
	ARN    string
	Bucket string
}

// RolesAccount is what ProvisionRoles sets up, next to (and apart from)
// Provision's role and bucket.
type RolesAccount struct {
	// User plays the execution role of the named-roles functions: it may
	// assume each role and do nothing else.
	User  aws.Credentials
	Roles map[string]NamedRole // by the name the function uses (CREDENTIAL_REFRESH_ROLES)
}

// RolesJSON is CREDENTIAL_REFRESH_ROLES for the account's roles.
func (a *RolesAccount) RolesJSON() string {
	var parts []string
	for name, r := range a.Roles {
		parts = append(parts, fmt.Sprintf("%q:{\"RoleArn\":%q}", name, r.ARN))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// ProvisionRoles creates, with moto's auth already on and signed by admin
// (Provision's admin user): one bucket and one role per name (role
// "credential-refresh-<name>", bucket "<prefix>-<name>"), each role allowed
// to write only to its own bucket, and an execution user allowed only to
// assume them. It then checks the premise of the named-roles scenario with
// the user's own STS calls: each role may write to its bucket and gets
// AccessDenied on every other one, and the user itself gets AccessDenied
// on all of them.
func (m *Moto) ProvisionRoles(ctx context.Context, admin aws.Credentials, prefix string, names ...string) (*RolesAccount, error) {
	cfg := aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: admin}}
	ic := iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.URL) })
	user := prefix + "-execution"
	a := &RolesAccount{Roles: map[string]NamedRole{}}
	var arns []string
	for _, name := range names {
		r := NamedRole{ARN: "arn:aws:iam::" + accountID + ":role/credential-refresh-" + name, Bucket: prefix + "-" + name}
		a.Roles[name] = r
		arns = append(arns, fmt.Sprintf("%q", r.ARN))
	}
	assume := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":[%s]}]}`, strings.Join(arns, ","))
	var err error
	if a.User, err = createUser(ctx, ic, user, assume); err != nil {
		return nil, err
	}
	for name, r := range a.Roles {
		trust := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:user/%s"},"Action":"sts:AssumeRole"}]}`, accountID, user)
		if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{
			RoleName: aws.String("credential-refresh-" + name), AssumeRolePolicyDocument: aws.String(trust), MaxSessionDuration: aws.Int32(3600),
		}); err != nil {
			return nil, fmt.Errorf("create role %s: %w", name, err)
		}
		write := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, r.Bucket)
		if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
			RoleName: aws.String("credential-refresh-" + name), PolicyName: aws.String("write-" + r.Bucket), PolicyDocument: aws.String(write),
		}); err != nil {
			return nil, fmt.Errorf("put role policy %s: %w", name, err)
		}
		if _, err := m.S3(admin).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(r.Bucket)}); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", r.Bucket, err)
		}
	}
	return a, m.checkRolesPremise(ctx, a)
}

// checkRolesPremise: each role writes to its own bucket only; the user to none.
func (m *Moto) checkRolesPremise(ctx context.Context, a *RolesAccount) error {
	put := func(c aws.Credentials, bucket string) error {
		_, err := m.S3(c).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("premise-check"), Body: strings.NewReader("x")})
		return err
	}
	denied := func(err error) bool {
		var apiErr smithy.APIError
		return errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied"
	}
	stsc := sts.NewFromConfig(aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: a.User}},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(m.URL) })
	for name, r := range a.Roles {
		if err := put(a.User, r.Bucket); !denied(err) {
			return fmt.Errorf("the execution user must get AccessDenied on %s, got: %v", r.Bucket, err)
		}
		out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(r.ARN), RoleSessionName: aws.String("premise-" + name)})
		if err != nil {
			return fmt.Errorf("assume %s as the execution user: %w", name, err)
		}
		c := aws.Credentials{AccessKeyID: aws.ToString(out.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
			SessionToken: aws.ToString(out.Credentials.SessionToken)}
		for other, o := range a.Roles {
			err := put(c, o.Bucket)
			switch {
			case other == name && err != nil:
				return fmt.Errorf("role %s must write to its bucket %s: %w", name, o.Bucket, err)
			case other != name && !denied(err):
				return fmt.Errorf("role %s must get AccessDenied on %s (role %s's bucket), got: %v", name, o.Bucket, other, err)
			}
		}
	}
	return nil
}

// KeysIn lists, as c, the keys under prefix in bucket (flat prefixes only).
func (m *Moto) KeysIn(ctx context.Context, c aws.Credentials, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(m.S3(c), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
