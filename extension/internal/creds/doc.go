// Package creds owns the per-role credential keeper: it calls STS AssumeRole
// through aws-sdk-go-v2, decides from the wall clock when credentials must be
// refreshed (windows scaled to the lifetime), makes exactly one STS call per
// role per refresh whatever the number of callers, backs off on failure, keeps
// serving still-valid credentials while STS fails, and never hands out
// expired or near-expiry credentials.
package creds
