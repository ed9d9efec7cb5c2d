// Package logcapture holds a goroutine-safe buffer for tests that capture an
// slog logger's output while background goroutines write to it, then scan it
// (for example for secrets that must never appear).
package logcapture
