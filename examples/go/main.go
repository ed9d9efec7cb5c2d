package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
)

// Event is the invoke payload, e.g. {"bucket":"b","prefix":"go-0001-","count":8}.
type Event struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	Count  int    `json:"count"`
}

// Response says what was written and with which access key ID (never the
// secret or the session token).
type Response struct {
	Runtime     string   `json:"runtime"`
	Written     int      `json:"written"`
	Keys        []string `json:"keys"`
	AccessKeyID string   `json:"accessKeyId"`
}

const (
	defaultCount = 8
	maxCount     = 1000
	parallel     = 8 // uploads in flight at once
)

type uploader struct {
	s3    *s3.Client
	creds aws.CredentialsProvider
}

func main() {
	// The whole adoption: credrefresh.LoadDefaultConfig instead of
	// config.LoadDefaultConfig. Everything else is the usual SDK code.
	cfg, err := credrefresh.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatalf("load AWS config: %v", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// A custom S3 endpoint (AWS_ENDPOINT_URL_S3, e.g. moto or MinIO)
		// usually has no per-bucket DNS names: address buckets by path.
		o.UsePathStyle = os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	})
	u := &uploader{s3: client, creds: cfg.Credentials}
	lambda.Start(u.handle)
}

// handle uploads ev.Count objects in parallel, at most `parallel` at a time.
// Each object is a few bytes, so one PutObject writes it: no transfer
// manager is needed.
func (u *uploader) handle(ctx context.Context, ev Event) (Response, error) {
	if err := ev.validate(); err != nil {
		return Response{}, err
	}
	keys := make([]string, ev.Count)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%04d", ev.Prefix, i)
		g.Go(func() error {
			body := fmt.Sprintf("object %d of %d, written by the Go example\n", i+1, ev.Count)
			_, err := u.s3.PutObject(gctx, &s3.PutObjectInput{
				Bucket: aws.String(ev.Bucket), Key: aws.String(keys[i]), Body: strings.NewReader(body),
			})
			if err != nil {
				return fmt.Errorf("upload %s: %w", keys[i], err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Response{}, err
	}
	// Served from the cache the uploads just used: no extra request.
	c, err := u.creds.Retrieve(ctx)
	if err != nil {
		return Response{}, fmt.Errorf("credentials: %w", err)
	}
	return Response{Runtime: "go", Written: len(keys), Keys: keys, AccessKeyID: c.AccessKeyID}, nil
}

func (ev *Event) validate() error {
	if ev.Bucket == "" {
		return errors.New(`event needs "bucket"`)
	}
	if ev.Count == 0 {
		ev.Count = defaultCount
	}
	if ev.Count < 0 || ev.Count > maxCount {
		return fmt.Errorf(`"count" must be 1..%d, got %d`, maxCount, ev.Count)
	}
	if ev.Prefix == "" {
		ev.Prefix = "go-"
	}
	return nil
}
