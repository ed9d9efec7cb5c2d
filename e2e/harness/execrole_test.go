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

// TestExecutionRoleChain checks the premises of the SnapStart and neighbour
// scenarios against the real moto with auth on: the execution role's
// temporary credentials (with their session token) may assume the chained
// role but not write; the chained role's credentials may write; and moto
// really checks the session token (STS answers a wrong one with
// InvalidClientTokenId), so a
// scenario that passes used the real one.
func TestExecutionRoleChain(t *testing.T) {
	tools := Gate(t)
	ctx := context.Background()
	m, err := StartMoto(ctx, tools.MotoServer, filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	acct, err := m.Provision(ctx, "chain-bucket")
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.ProvisionExecutionRole(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProxy(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	exec, err := r.Credentials(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exec.AccessKeyID, "ASIA") || exec.SessionToken == "" {
		t.Fatalf("execution credentials %s with token %v; want ASIA… with a session token", exec.AccessKeyID, exec.SessionToken != "")
	}
	assume := func(c aws.Credentials) (*sts.AssumeRoleOutput, error) {
		return stsClient(p, c).AssumeRole(ctx, &sts.AssumeRoleInput{
			RoleArn: aws.String(r.ChainedRoleARN), RoleSessionName: aws.String("premise"), DurationSeconds: aws.Int32(60),
		})
	}
	wrong := exec
	wrong.SessionToken = "not-" + exec.SessionToken
	var apiErr smithy.APIError
	if _, err := assume(wrong); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidClientTokenId" {
		t.Errorf("AssumeRole with a wrong session token = %v; want InvalidClientTokenId", err)
	}
	out, err := assume(exec)
	if err != nil {
		t.Fatalf("AssumeRole of the chained role with the execution role's credentials: %v", err)
	}
	evs := p.Events()
	if last := evs[len(evs)-1]; last.Kind != AssumeRole || last.Signer != exec.AccessKeyID {
		t.Errorf("proxy recorded %s signed by %q; want AssumeRole signed by %s", last.Kind, last.Signer, exec.AccessKeyID)
	}
	c := out.Credentials
	chained := aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken)}
	if _, err := s3Client(p, chained).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(acct.Bucket), Key: aws.String("chain-0001"), Body: strings.NewReader("x"),
	}); err != nil {
		t.Fatalf("PutObject with the chained role's credentials: %v", err)
	}
}
