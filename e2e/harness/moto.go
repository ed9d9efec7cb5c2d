package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Region is the region every client in the harness uses.
const Region = "us-east-1"

// Moto is a running moto server.
type Moto struct {
	URL string
	cmd *exec.Cmd
}

// StartMoto starts `moto_server -H 127.0.0.1 -p PORT` in its own process
// group, with its output appended to logPath, and waits until it answers.
func StartMoto(ctx context.Context, motoServer, logPath string) (*Moto, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(motoServer, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto: %w", err)
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	if err := waitHTTP(ctx, m.URL+"/moto-api/", 30*time.Second); err != nil {
		m.Close()
		return nil, fmt.Errorf("moto did not come up (log: %s): %w", logPath, err)
	}
	return m, nil
}

// Close kills moto's process group.
func (m *Moto) Close() {
	if m.cmd.Process == nil {
		return
	}
	_ = signalGroup(m.cmd.Process.Pid, syscall.SIGKILL)
	_ = m.cmd.Wait()
}

// waitHTTP polls url until it answers anything, for at most limit.
func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", url, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Account is what Provision sets up in moto.
type Account struct {
	Bucket  string
	RoleARN string
	// User plays the Lambda execution role: it may call sts:AssumeRole on
	// RoleARN and nothing else, so it cannot write to the bucket.
	User aws.Credentials
	// Admin may do anything; tests use it only to verify what landed.
	Admin aws.Credentials
}

const (
	userName  = "lambda-execution"
	roleName  = "credential-refresh-target"
	adminName = "e2e-admin"
	accountID = "123456789012" // moto's default account
)

// Provision creates the bucket, the target role, the execution user and the
// admin user with auth off, then turns moto's auth on (from then on moto
// checks SigV4, session tokens, IAM policies and trust policies) and checks
// that the execution user really gets AccessDenied on S3.
func (m *Moto) Provision(ctx context.Context, bucket string) (*Account, error) {
	setup := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIASETUPSETUPSETUP0", "setup", ""),
	}
	ic := iam.NewFromConfig(setup, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.URL) })
	a := &Account{Bucket: bucket, RoleARN: "arn:aws:iam::" + accountID + ":role/" + roleName}
	var err error
	if a.Admin, err = createUser(ctx, ic, adminName, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`); err != nil {
		return nil, err
	}
	assume := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":%q}]}`, a.RoleARN)
	if a.User, err = createUser(ctx, ic, userName, assume); err != nil {
		return nil, err
	}
	if err := createRole(ctx, ic, bucket); err != nil {
		return nil, err
	}
	if _, err := m.S3(a.Admin).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	if err := m.enforceAuth(ctx); err != nil {
		return nil, err
	}
	return a, m.checkUserDenied(ctx, a)
}

func createUser(ctx context.Context, ic *iam.Client, name, policy string) (aws.Credentials, error) {
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
		return aws.Credentials{}, fmt.Errorf("create user %s: %w", name, err)
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName: aws.String(name), PolicyName: aws.String(name), PolicyDocument: aws.String(policy),
	}); err != nil {
		return aws.Credentials{}, fmt.Errorf("put user policy %s: %w", name, err)
	}
	out, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("create access key %s: %w", name, err)
	}
	return accessKey(out.AccessKey), nil
}

func accessKey(k *iamtypes.AccessKey) aws.Credentials {
	return aws.Credentials{AccessKeyID: aws.ToString(k.AccessKeyId), SecretAccessKey: aws.ToString(k.SecretAccessKey)}
}

func createRole(ctx context.Context, ic *iam.Client, bucket string) error {
	trust := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:user/%s"},"Action":"sts:AssumeRole"}]}`, accountID, userName)
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String(roleName), AssumeRolePolicyDocument: aws.String(trust), MaxSessionDuration: aws.Int32(3600),
	}); err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	write := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, bucket)
	if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String(roleName), PolicyName: aws.String("write-bucket"), PolicyDocument: aws.String(write),
	}); err != nil {
		return fmt.Errorf("put role policy: %w", err)
	}
	return nil
}

// enforceAuth turns on moto's authentication and authorization for every
// later request.
func (m *Moto) enforceAuth(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/moto-api/reset-auth", strings.NewReader("0"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset-auth: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset-auth: HTTP %d", resp.StatusCode)
	}
	return nil
}

// checkUserDenied proves the premise of every test: the execution user's
// own keys cannot write to the bucket, so every object that lands was
// written with the assumed role's credentials.
func (m *Moto) checkUserDenied(ctx context.Context, a *Account) error {
	_, err := m.S3(a.User).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(a.Bucket), Key: aws.String("premise-check"), Body: strings.NewReader("x"),
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		return fmt.Errorf("execution user's own keys must get AccessDenied on S3, got: %v", err)
	}
	return nil
}

// S3 returns an S3 client that talks to moto directly (not through the
// proxy) with static credentials.
func (m *Moto) S3(c aws.Credentials) *s3.Client {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.StaticCredentialsProvider{Value: c},
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(m.URL)
		o.UsePathStyle = true
	})
}

// Keys lists the keys under prefix (flat prefixes only: moto with auth on
// rejects ListObjectsV2 prefixes containing '/').
func (m *Moto) Keys(ctx context.Context, a *Account, prefix string) ([]string, error) {
	return m.KeysIn(ctx, a.Admin, a.Bucket, prefix)
}
