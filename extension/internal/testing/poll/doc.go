// Package poll waits in tests for a condition that background goroutines
// bring about, with a deadline instead of a fixed sleep.
package poll
