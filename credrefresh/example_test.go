package credrefresh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/credrefresh"
)

// A provided.al2023 function adopts the extension's credentials with two
// lines: load the config through credrefresh, build clients from it.
func ExampleLoadDefaultConfig() {
	cfg, err := credrefresh.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	_ = s3.NewFromConfig(cfg)
}

// The cache in front of the extension is the SDK's, configured the SDK's
// way: here it goes back to the extension 10 minutes before the
// credentials expire instead of 5.
func ExampleLoadDefaultConfig_cacheOptions() {
	expires, stop := startExampleExtension() // in Lambda: the layer's extension
	defer stop()

	cfg, err := credrefresh.LoadDefaultConfig(context.Background(),
		config.WithRegion("eu-west-1"),
		config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = 10 * time.Minute
		}))
	if err != nil {
		log.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(creds.Source, "refetches", expires.Sub(creds.Expires), "before expiry")
	// Output: CredentialRefreshProvider refetches 10m0s before expiry
}

// A named role from CREDENTIAL_REFRESH_ROLES, for one client only. The
// provider is not cached: config wraps it in an aws.CredentialsCache, set
// up by config.WithCredentialsCacheOptions.
func ExampleNew() {
	reports, err := credrefresh.New(func(o *credrefresh.Options) { o.Role = "reports" })
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(reports),
		config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = credrefresh.DefaultExpiryWindow
		}))
	if err != nil {
		log.Fatal(err)
	}
	_ = s3.NewFromConfig(cfg)
}

// Options are checked when the provider is built, not at the first request.
func ExampleNew_invalidRole() {
	_, err := credrefresh.New(func(o *credrefresh.Options) { o.Role = "reports/eu" })
	fmt.Println(err)
	// Output: credrefresh: role name "reports/eu" must be 1-64 characters of A-Z a-z 0-9 _ . - (not . or ..)
}

// startExampleExtension stands in for the extension in the examples: it
// serves credentials that expire in an hour, writes its token file and sets
// the function's variables, as the layer and Lambda would. It returns the
// Expiration it serves and a func that undoes it all.
func startExampleExtension() (expires time.Time, stop func()) {
	expires = time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	dir, err := os.MkdirTemp("", "credrefresh-example")
	if err != nil {
		log.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("example-token\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "example-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(validCreds("ASIAEXAMPLE", expires))
	}))
	_, port, _ := strings.Cut(srv.Listener.Addr().String(), ":")
	restore := []func(){srv.Close, func() { os.RemoveAll(dir) }}
	for k, v := range map[string]string{
		credrefresh.EnvPort: port, credrefresh.EnvTokenFile: token, credrefresh.EnvRole: "",
		"AWS_ACCESS_KEY_ID": "ASIAEXECUTIONROLE", "AWS_SECRET_ACCESS_KEY": "execution-secret",
	} {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		restore = append(restore, func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		})
	}
	return expires, func() {
		for _, f := range restore {
			f()
		}
	}
}
