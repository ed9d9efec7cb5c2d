// Package ststest is a fake STS for tests: an httptest server that speaks the
// AssumeRole query protocol well enough for a real *sts.Client pointed at it
// through BaseEndpoint, with a controllable clock, failures and
// latency, and a record of every call and every secret it issued (so tests
// can prove those secrets never reach a log).
package ststest
