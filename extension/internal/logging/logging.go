package logging

import (
	"io"
	"log/slog"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
)

// New returns a logger writing to w in the format and level of lc.
func New(w io.Writer, lc config.LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lc.Level, ReplaceAttr: replace(lc.JSON)}
	if lc.JSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// replace renames slog's keys to Lambda's for JSON, and names the TRACE
// and FATAL levels in both formats.
func replace(json bool) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			if json {
				return slog.String("timestamp", a.Value.Time().UTC().Format(time.RFC3339Nano))
			}
		case slog.MessageKey:
			if json {
				a.Key = "message"
			}
		case slog.LevelKey:
			a.Value = slog.StringValue(levelName(a.Value.Any().(slog.Level)))
		}
		return a
	}
}

func levelName(l slog.Level) string {
	switch {
	case l <= config.LevelTrace:
		return "TRACE"
	case l >= config.LevelFatal:
		return "FATAL"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
