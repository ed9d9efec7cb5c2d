// Package e2e holds the end-to-end tests of the credential-refresh layer:
// the real extension binary and exec wrapper, the example functions in Go,
// Python and Node.js, the Runtime Interface Emulator (RIE) that SAM's images
// run, and moto as IAM, STS and S3 with auth enforced, behind an
// expiry-enforcing proxy. See docs/e2e.md for the scenarios and their bounds.
//
// The tests run only with CREDENTIAL_REFRESH_E2E=1 (scripts/test.sh sets
// it), as root, after scripts/setup.sh:
//
//	CREDENTIAL_REFRESH_E2E=1 go test -race -count=1 ./e2e/...
package e2e
