package poll

import (
	"testing"
	"time"
)

// Until calls cond every millisecond until it is true, failing t after 5s.
func Until(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
