package harness

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// TestMotoBehindProxy checks the premises the e2e scenarios rest on, against
// the real moto: auth is enforced, the execution user may assume the role
// but not write, the role may write, and the proxy turns moto's silent
// acceptance of expired keys into ExpiredToken.
func TestMotoBehindProxy(t *testing.T) {
	tools := Gate(t)
	ctx := context.Background()
	m, err := StartMoto(ctx, tools.MotoServer, filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	acct, err := m.Provision(ctx, "premise-bucket")
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProxy(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	out, err := stsClient(p, acct.User).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String(acct.RoleARN), RoleSessionName: aws.String("premise"), DurationSeconds: aws.Int32(2),
	})
	if err != nil {
		t.Fatalf("AssumeRole as the execution user: %v", err)
	}
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") {
		t.Errorf("AccessKeyId %q, want ASIA…", aws.ToString(c.AccessKeyId))
	}
	temp := aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken)}
	put := func() error {
		_, err := s3Client(p, temp).PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(acct.Bucket), Key: aws.String("premise-0001"), Body: strings.NewReader("x"),
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("PutObject with the role's fresh credentials: %v", err)
	}
	time.Sleep(time.Until(aws.ToTime(c.Expiration)) + 100*time.Millisecond)
	var apiErr smithy.APIError
	if err := put(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ExpiredToken" {
		t.Fatalf("PutObject after Expiration = %v, want ExpiredToken", err)
	}
	keys, err := m.Keys(ctx, acct, "premise-")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v; want exactly premise-0001", keys, err)
	}
}
