package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/logging"
)

// version is set by the build (-X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Getenv, os.Stdout, os.Args[0])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer, argv0 string) int {
	cfg, cfgErr := config.Load(getenv)
	logger := logging.New(stdout, cfg.Log).With("extension", filepath.Base(argv0))
	logger.Debug("starting", "version", version)
	err := agent.Run(ctx, cfg, cfgErr, agent.Options{
		Name:   filepath.Base(argv0),
		Logger: logger,
		NewSTSClient: func(ctx context.Context, c *config.Config) (*sts.Client, error) {
			return creds.NewSTSClient(ctx, creds.STSOptions{Region: c.STSRegion, Endpoint: c.STSEndpoint,
				MaxAttempts: c.STSMaxAttempts, Timeout: c.STSTimeout})
		},
	})
	if err != nil {
		logger.Error("exiting", "error", err.Error())
		return 1
	}
	return 0
}
