package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/e2e/harness"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/internal/layerimage"
)

// EnvImage names the OCI image layout to test (scripts/test.sh sets it to
// build/credential-refresh-image, which `make image` builds from the same
// trees as the layer zips). Unset: the test builds the image itself from
// the stack's layer tree.
const EnvImage = "CREDENTIAL_REFRESH_E2E_IMAGE"

// TestImageUnderRIE is the container-image check: the amd64 image's layer,
// extracted as a container runtime unpacks it (what `COPY --from=<image>
// /opt /opt` copies), runs under RIE like the zip does. The extracted /opt
// is the layer directory; the Python function (exec wrapper, no credential
// code) then goes through scenarios 1, 2 and 5 in eager mode: every object
// lands signed by an assumed-role key, refreshes across more than 3
// lifetimes with 0 ExpiredToken and no request waiting on STS, one
// extension process from /opt/extensions/credential-refresh, and a clean
// SHUTDOWN.
func TestImageUnderRIE(t *testing.T) {
	s := sharedStack(t)
	t.Parallel()
	ctx := context.Background()
	dir := os.Getenv(EnvImage)
	if dir == "" {
		idx, err := layerimage.Index([]layerimage.Tree{{Arch: "amd64", Dir: s.LayerDir}}, layerimage.Options{Created: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(t.TempDir(), "image")
		if err := layerimage.WriteLayout(dir, idx); err != nil {
			t.Fatal(err)
		}
	}
	img, err := layerimage.ForArch(dir, "amd64")
	if err != nil {
		t.Fatalf("%s (%s): %v", dir, EnvImage, err)
	}
	root := t.TempDir()
	if err := layerimage.Extract(img, root); err != nil {
		t.Fatal(err)
	}
	for _, rel := range append([]string{"extensions/" + harness.ExtensionName, "credential-refresh/exec-wrapper"}, harness.LayerHelpers...) {
		if _, err := os.Stat(filepath.Join(root, "opt", rel)); err != nil {
			t.Errorf("the image lacks /opt/%s: %v", rel, err)
		}
	}
	fromImage := *s
	fromImage.LayerDir = filepath.Join(root, "opt")
	env := start(t, &fromImage, harness.Options{Runtime: harness.Python, Mode: "eager", Lifetime: lifecycleLifetime})

	var uploads []harness.Upload
	pids := map[int]bool{}
	begin := time.Now()
	for i := 0; time.Since(begin) < lifecycleLifetimes*lifecycleLifetime+time.Second; i++ {
		p := prefix(env, i)
		u, err := env.Upload(ctx, p, 4)
		if err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
		if i < 2 || i%10 == 0 {
			checkLanded(t, s, p, u, 4)
		}
		uploads = append(uploads, u)
		pids[env.ExtensionPID(harness.ExtensionName)] = true
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("image %s: %d invokes over %s, %d keys", dir, len(uploads), seconds(time.Since(begin)), distinctKeys(uploads))
	if len(pids) != 1 || pids[0] {
		t.Errorf("extension PIDs across warm invokes: %v; want one, from the image's /opt", pids)
	}
	checkSignedByAssumedRole(t, env)
	for i, u := range uploads {
		if exp, ok := env.Proxy.Expiration(u.AccessKeyID); !strings.HasPrefix(u.AccessKeyID, "ASIA") || !ok || !exp.After(u.End) {
			t.Errorf("invoke %d reported key %s (issued %v, expires %v)", i, u.AccessKeyID, ok, exp)
		}
	}
	checkRefreshBounds(t, env, uploads)
	h, err := env.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkOneCallPerRefresh(t, env, h)
	if w := h.Roles["default"].Waited; w != 0 {
		t.Errorf("eager: %d requests waited on STS; want 0", w)
	}
	token := readToken(env)
	checkShutdown(t, env)
	checkNoLeaks(t, s, env, token)
}
