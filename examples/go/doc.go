// Command go is the Go example function (runtime provided.al2023, built as
// bootstrap) for the credential-refresh layer.
//
// It adopts the layer with one call, credrefresh.LoadDefaultConfig, and then
// uploads N objects to S3 in parallel (an errgroup, PutObject each): the
// parallel-upload example of boto3-refresh-session, the Go way. The event is
//
//	{"bucket":"my-bucket","prefix":"go-0001-","count":8}
//
// and the response names the keys written and the access key ID used (never
// the secret or the session token). When AWS_ENDPOINT_URL_S3 is set (moto,
// MinIO, the e2e proxy) the S3 client uses path-style addressing.
//
// Build: GOOS=linux CGO_ENABLED=0 go build -o bootstrap ./examples/go
package main
