package harness

import "os"

// EnvE2E turns the end-to-end tests on; scripts/test.sh sets it.
const EnvE2E = "CREDENTIAL_REFRESH_E2E"

// TB is the part of testing.TB that Gate uses. Gate takes it instead of
// testing.TB so that this package does not import testing: the demo binary
// (e2e/cmd/demo) links the harness, and a binary that imports testing
// carries the test framework and its flags.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Gate skips t unless CREDENTIAL_REFRESH_E2E=1. When the tests are on, a
// missing tool is a failure, not a skip: CI must not pass by skipping.
func Gate(t TB) Tools {
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
