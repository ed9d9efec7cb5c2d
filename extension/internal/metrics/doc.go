// Package metrics writes the extension's CloudWatch metrics to stdout in
// the Embedded Metric Format, which Lambda ships to CloudWatch with no
// agent: per role and per refresh (STS latency, outcome, the credentials'
// lifetime, the life left when refreshed) and per environment (requests
// served and requests that waited), flushed at most once a minute and at
// SHUTDOWN, never per request.
package metrics
