package harness

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
)

// TestCredentialServer checks the SnapStart stand-in against the SDK's own
// container provider: only the exact token is answered, the body is what
// endpointcreds reads (expiry included), keys rotate on the wall clock,
// and every served key is recorded without its secret.
func TestCredentialServer(t *testing.T) {
	var minted atomic.Int32
	mint := func(_ context.Context, lifetime time.Duration) (aws.Credentials, error) {
		n := minted.Add(1)
		return aws.Credentials{AccessKeyID: fmt.Sprintf("ASIAMINTED%010d", n), SecretAccessKey: fmt.Sprintf("secret-%d", n), SessionToken: fmt.Sprintf("token-%d", n)}, nil
	}
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64 // the server's handlers read the clock
	cs, err := StartCredentialServer(mint, func(o *CredentialServerOptions) {
		o.Lifetime = 10 * time.Second
		o.Now = func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx := context.Background()

	for _, token := range []string{"", "wrong", cs.Token + "x"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cs.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: %v %v; want 401", token, err, resp)
		}
		resp.Body.Close()
	}
	if cs.Rejected() != 3 || minted.Load() != 0 {
		t.Errorf("rejected %d, minted %d; want 3 and 0", cs.Rejected(), minted.Load())
	}

	retrieve := func() aws.Credentials {
		t.Helper()
		c, err := endpointcreds.New(cs.URL, func(o *endpointcreds.Options) { o.AuthorizationToken = cs.Token }).Retrieve(ctx)
		if err != nil {
			t.Fatalf("endpointcreds: %v", err)
		}
		return c
	}
	c1 := retrieve()
	elapsed.Add(int64(4 * time.Second)) // < Rotate (5 s): same key
	if c := retrieve(); c.AccessKeyID != c1.AccessKeyID {
		t.Errorf("rotated after 4 s: %s → %s", c1.AccessKeyID, c.AccessKeyID)
	}
	elapsed.Add(int64(time.Second))
	c2 := retrieve()
	want := time.Date(2026, 11, 25, 10, 0, 15, 0, time.UTC)
	if c2.AccessKeyID == c1.AccessKeyID || c2.SessionToken != "token-2" || !c2.CanExpire || !c2.Expires.Equal(want) {
		t.Errorf("after 5 s: %s token %q expires %v (can %v); want a new key expiring %v", c2.AccessKeyID, c2.SessionToken, c2.Expires, c2.CanExpire, want)
	}
	served := cs.Served()
	if len(served) != 2 || served[0].Requests != 2 || served[1].Requests != 1 {
		t.Errorf("served %+v; want 2 keys, requested 2 and 1 times", served)
	}
	if got := cs.LeakedIn("x secret-1 y " + cs.Token); len(got) != 2 || !strings.HasPrefix(got[0], "ASIAMINTED") {
		t.Errorf("LeakedIn = %v; want the first key and the token", got)
	}
}
