package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// ExecutionRole is the execution identity as Lambda really hands it out:
// temporary credentials of a role, with a session token, rather than the
// long-term keys of [Account.User]. The SnapStart scenario serves such keys
// from its own credentials endpoint, and the neighbour scenario needs a real
// AWS_SESSION_TOKEN, because the Parameters and Secrets extension checks it.
//
// It has a target role of its own (ChainedRoleARN) rather than a change to
// [Account.RoleARN]'s trust policy, so the scenarios that share the stack
// keep exactly the identities they were written against.
type ExecutionRole struct {
	RoleARN        string // the execution role: may only assume ChainedRoleARN
	ChainedRoleARN string // target role trusting the execution role's sessions, may write the bucket
	SessionName    string // every session of RoleARN uses this name (see ProvisionExecutionRole)

	sts *sts.Client // the admin, playing the Lambda service that assumes RoleARN
}

const (
	execRoleName    = "lambda-execution-role"
	chainedRoleName = "credential-refresh-target-chained"
	execSessionName = "e2e-execution"
)

// ProvisionExecutionRole creates the execution role and its target role in
// a with the admin's credentials (moto's auth is on by then). Call it once
// per moto: role names are fixed.
//
// The target role's trust policy names the execution role's ARN, as one
// would on AWS, and also the exact session ARN: moto compares principals
// literally and does not match a role ARN against that role's sessions.
// Hence the fixed session name.
func (m *Moto) ProvisionExecutionRole(ctx context.Context, a *Account) (*ExecutionRole, error) {
	admin := aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: a.Admin}}
	ic := iam.NewFromConfig(admin, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.URL) })
	r := &ExecutionRole{
		RoleARN:        "arn:aws:iam::" + accountID + ":role/" + execRoleName,
		ChainedRoleARN: "arn:aws:iam::" + accountID + ":role/" + chainedRoleName,
		SessionName:    execSessionName,
		sts:            sts.NewFromConfig(admin, func(o *sts.Options) { o.BaseEndpoint = aws.String(m.URL) }),
	}
	trustAdmin := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::%s:user/%s"]},"Action":"sts:AssumeRole"}]}`, accountID, adminName)
	assume := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":%q}]}`, r.ChainedRoleARN)
	if err := putRole(ctx, ic, execRoleName, trustAdmin, "assume-target", assume); err != nil {
		return nil, err
	}
	session := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", accountID, execRoleName, execSessionName)
	trustExec := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":[%q,%q]},"Action":"sts:AssumeRole"}]}`, r.RoleARN, session)
	write := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, a.Bucket)
	if err := putRole(ctx, ic, chainedRoleName, trustExec, "write-bucket", write); err != nil {
		return nil, err
	}
	return r, r.checkDenied(ctx, m, a)
}

func putRole(ctx context.Context, ic *iam.Client, name, trust, policyName, policy string) error {
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust), MaxSessionDuration: aws.Int32(3600),
	}); err != nil {
		return fmt.Errorf("create role %s: %w", name, err)
	}
	if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String(name), PolicyName: aws.String(policyName), PolicyDocument: aws.String(policy),
	}); err != nil {
		return fmt.Errorf("put role policy %s/%s: %w", name, policyName, err)
	}
	return nil
}

// Credentials returns new temporary credentials of the execution role,
// valid for d as far as STS is concerned (moto never enforces it; callers
// that advertise an Expiration enforce their own). Each call is a new
// AssumeRole straight to moto, so it never shows up at a scenario's proxy.
func (r *ExecutionRole) Credentials(ctx context.Context, d time.Duration) (aws.Credentials, error) {
	out, err := r.sts.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String(r.RoleARN), RoleSessionName: aws.String(r.SessionName),
		DurationSeconds: aws.Int32(int32(max(d/time.Second, 1))),
	})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("assume execution role: %w", err)
	}
	c := out.Credentials
	return aws.Credentials{
		AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken: aws.ToString(c.SessionToken), CanExpire: true, Expires: aws.ToTime(c.Expiration),
	}, nil
}

// checkDenied is the premise of both scenarios that use the execution role:
// its own credentials cannot write to the bucket, so every object that
// lands was written with the chained role's credentials.
func (r *ExecutionRole) checkDenied(ctx context.Context, m *Moto, a *Account) error {
	c, err := r.Credentials(ctx, time.Hour)
	if err != nil {
		return err
	}
	_, err = m.S3(c).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(a.Bucket), Key: aws.String("premise-execution-role"), Body: strings.NewReader("x"),
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		return fmt.Errorf("execution role's own credentials must get AccessDenied on S3, got: %v", err)
	}
	return nil
}
