package credrefresh_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
)

// A provided.al2023 function adopts the extension's credentials with two
// lines: load the config through credrefresh, build clients from it.
func ExampleLoadDefaultConfig() {
	cfg, err := credrefresh.LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-1"))
	if err != nil {
		log.Fatal(err)
	}
	_ = s3.NewFromConfig(cfg)
}

// A named role from CREDENTIAL_REFRESH_ROLES, used for one client only.
func ExampleNewProvider() {
	reports, err := credrefresh.NewProvider(credrefresh.WithRole("reports"))
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithCredentialsProvider(reports))
	if err != nil {
		log.Fatal(err)
	}
	_ = s3.NewFromConfig(cfg)
}

// Options are checked when the provider is built, not at the first request.
func ExampleNewProvider_invalidRole() {
	_, err := credrefresh.NewProvider(credrefresh.WithRole("reports/eu"))
	fmt.Println(err)
	// Output: credrefresh: role name "reports/eu": want letters, digits, '_', '.' or '-'
}
