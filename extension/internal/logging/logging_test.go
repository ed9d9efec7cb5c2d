package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/logging"
)

func TestJSONUsesLambdaFieldNames(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, config.LogConfig{Level: slog.LevelInfo, JSON: true})
	log.Debug("hidden")
	log.Info("credentials refreshed", "role", "default")
	log.Log(context.Background(), config.LevelFatal, "bye")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered), got %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["message"] != "credentials refreshed" || m["level"] != "INFO" || m["role"] != "default" || m["timestamp"] == nil {
		t.Errorf("line %v", m)
	}
	if !strings.Contains(lines[1], `"level":"FATAL"`) {
		t.Errorf("fatal line %s", lines[1])
	}
}

func TestTextAndTrace(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, config.LogConfig{Level: config.LevelTrace})
	log.Log(context.Background(), config.LevelTrace, "deep")
	if !strings.Contains(buf.String(), "level=TRACE") || !strings.Contains(buf.String(), "msg=deep") {
		t.Errorf("text %q", buf.String())
	}
}
