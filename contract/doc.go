// Package contract is the user-facing contract of the credential-refresh
// layer, defined once: the environment variables' names, their defaults,
// the endpoint's paths and the rules for role names and ports. The
// extension's configuration, the Go client package credrefresh and the e2e
// harness import it; the exec wrapper (a shell script) is checked against
// it by a test that reads both (layer/wrapper_test.go).
package contract
