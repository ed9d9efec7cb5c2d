package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The demo is a plain binary: it must not link the test framework (whose
// init registers the -test.* flags), which it would through any non-test
// file of a package it imports that imports testing.
func TestDemoDoesNotImportTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if deps := strings.Fields(string(out)); slices.Contains(deps, "testing") {
		t.Error(`e2e/cmd/demo imports "testing" (go list -deps); keep test helpers in _test.go files or take an interface`)
	}
}
