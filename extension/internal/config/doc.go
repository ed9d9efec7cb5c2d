// Package config owns the extension's configuration: it reads the
// CREDENTIAL_REFRESH_* variables (and the Lambda variables they default from),
// validates every one of them, and reports all problems at once so a user fixes
// a template in one deploy instead of one per error.
package config
