// Package logging builds the extension's slog logger in Lambda's log format:
// AWS_LAMBDA_LOG_FORMAT=JSON gives one JSON object per line with Lambda's
// field names (timestamp, level, message); otherwise plain text. Levels
// include Lambda's TRACE and FATAL.
package logging
