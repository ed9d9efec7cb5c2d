package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "stsprocess:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stsprocess", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "STS endpoint URL")
	roleARN := fs.String("role-arn", "", "role to assume")
	duration := fs.Duration("duration", time.Hour, "DurationSeconds")
	keysFile := fs.String("keys", "", "file holding the access key id and secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*keysFile)
	if err != nil {
		return err
	}
	keys := strings.Fields(string(raw))
	if len(keys) != 2 {
		return fmt.Errorf("%s must hold an access key id and a secret", *keysFile)
	}
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(*endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(keys[0], keys[1], "")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: roleARN, RoleSessionName: aws.String("credential-process"),
		DurationSeconds: aws.Int32(int32(*duration / time.Second))})
	if err != nil {
		return fmt.Errorf("assume role: %w", err)
	}
	c := out.Credentials
	return json.NewEncoder(stdout).Encode(map[string]any{"Version": 1, "AccessKeyId": c.AccessKeyId,
		"SecretAccessKey": c.SecretAccessKey, "SessionToken": c.SessionToken, "Expiration": c.Expiration.UTC().Format(time.RFC3339)})
}
