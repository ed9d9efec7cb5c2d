package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// Chain is the cross-account pattern of a role chain, in moto: the
// execution user may assume only the hub; the spoke trusts only the hub's
// sessions; only the spoke may write SpokeBucket.
type Chain struct {
	HubARN, SpokeARN string
	HubSession       string // the hub's RoleSessionName (the spoke's trust names the session)
	SpokeBucket      string
}

const (
	hubRoleName    = "e2e-hub"
	spokeRoleName  = "e2e-spoke"
	hubSessionName = "e2e-hub-session"
)

// ProvisionChain creates the hub, the spoke and the spoke's bucket with the
// admin's credentials (auth is on), lets the execution user assume the hub,
// and checks the premise: the user cannot assume the spoke directly.
//
// moto compares trust principals literally and does not match a role ARN
// against that role's sessions, so the spoke's trust names the hub's ARN
// (as on AWS) and its exact session ARN: hence the fixed session name.
func (m *Moto) ProvisionChain(ctx context.Context, a *Account, bucket string) (*Chain, error) {
	admin := aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: a.Admin}}
	ic := iam.NewFromConfig(admin, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.URL) })
	c := &Chain{HubARN: "arn:aws:iam::" + accountID + ":role/" + hubRoleName, SpokeARN: "arn:aws:iam::" + accountID + ":role/" + spokeRoleName,
		HubSession: hubSessionName, SpokeBucket: bucket}
	trustUser := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:user/%s"},"Action":"sts:AssumeRole"}]}`, accountID, userName)
	assumeSpoke := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":%q}]}`, c.SpokeARN)
	if err := putRole(ctx, ic, hubRoleName, trustUser, "assume-spoke", assumeSpoke); err != nil {
		return nil, err
	}
	session := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", accountID, hubRoleName, hubSessionName)
	trustHub := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":[%q,%q]},"Action":"sts:AssumeRole"}]}`, c.HubARN, session)
	write := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, bucket)
	if err := putRole(ctx, ic, spokeRoleName, trustHub, "write-spoke-bucket", write); err != nil {
		return nil, err
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(userName), PolicyName: aws.String("assume-hub"),
		PolicyDocument: aws.String(fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":%q}]}`, c.HubARN))}); err != nil {
		return nil, fmt.Errorf("let the execution user assume the hub: %w", err)
	}
	if _, err := m.S3(a.Admin).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	user := sts.NewFromConfig(aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: a.User}},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(m.URL) })
	_, err := user.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(c.SpokeARN), RoleSessionName: aws.String("direct")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		return nil, fmt.Errorf("the execution user must not assume the spoke directly, got: %v", err)
	}
	return c, nil
}

// BuildTool builds the Go command pkg (e.g. "./e2e/cmd/stsprocess") for
// linux into out.
func BuildTool(ctx context.Context, root, pkg, out string) error { return goBuild(ctx, root, out, pkg) }

// UploadTo is Upload to another bucket than the stack's.
func (e *Environment) UploadTo(ctx context.Context, bucket, prefix string, count int) (Upload, error) {
	saved := e.bucket
	e.bucket = bucket
	defer func() { e.bucket = saved }()
	return e.Upload(ctx, prefix, count)
}

// Post sends an authorized POST for path to the extension, as a function
// would, and returns the body, the status and the Retry-After header.
func (e *Environment) Post(ctx context.Context, path string) ([]byte, int, string, error) {
	token, err := os.ReadFile(e.TokenPath())
	if err != nil {
		return nil, 0, "", fmt.Errorf("token file: %w", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", e.Port, path), nil)
	req.Header.Set("Authorization", strings.TrimSpace(string(token)))
	return e.send(req)
}

// PutObject writes key to the stack's bucket through the environment's
// proxy, signed with c: what a function's SDK would send with them.
func (e *Environment) PutObject(ctx context.Context, c aws.Credentials, key string) error {
	client := s3.NewFromConfig(aws.Config{Region: Region, Credentials: credentials.StaticCredentialsProvider{Value: c}},
		func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(e.Proxy.URL), true })
	_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.stack.Account.Bucket), Key: aws.String(key), Body: strings.NewReader("x")})
	return err
}
