package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/agent"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/logging"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/metrics"
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
	mcfg, mErr := config.LoadMetrics(getenv)
	cfgErr = errors.Join(cfgErr, mErr) // every bad value, reported together
	logger := logging.New(stdout, cfg.Log).With("extension", filepath.Base(argv0))
	logger.Debug("starting", "version", version)
	err := agent.Run(ctx, cfg, cfgErr, agent.Options{
		Name:    filepath.Base(argv0),
		Logger:  logger,
		Metrics: metrics.New(mcfg, string(cfg.Mode), stdout, time.Now),
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
