package harness

import (
	"os"
	"testing"
)

// EnvE2E turns the end-to-end tests on; scripts/test.sh sets it.
const EnvE2E = "CREDENTIAL_REFRESH_E2E"

// Gate skips t unless CREDENTIAL_REFRESH_E2E=1. When the tests are on, a
// missing tool is a failure, not a skip: CI must not pass by skipping.
func Gate(t testing.TB) Tools {
	t.Helper()
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("end-to-end test against RIE + moto: set %s=1 to run it (make test does, after scripts/setup.sh)", EnvE2E)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools, err := FindTools(root)
	if err != nil {
		t.Fatalf("%s=1 but the e2e tools are missing:\n%v", EnvE2E, err)
	}
	return tools
}
