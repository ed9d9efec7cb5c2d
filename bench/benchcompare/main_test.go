package main

import (
	"context"
	"strings"
	"testing"
)

// TestQuick runs the whole suite in its tiny mode, so that `make test`
// keeps it working. It asserts no figure: only that every comparison ran
// and the table has its rows.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the extension and runs servers")
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-quick"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"keep-alive, 1 client: p50", "keep-alive, 64 clients: throughput", "new connection per request",
		"server CPU per request", "RSS at start", "RSS after 5k", "init: process start to /register"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
