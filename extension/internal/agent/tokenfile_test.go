package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
)

// On Lambda Managed Instances the extension and the runtime run as uid 993,
// gid 990 (RIE's supervisor/local/process.go), not as root. These tests run
// the token-file code in a child process with that identity: the test
// binary re-executed as uid 993 (which needs root, as CI and the e2e have).

const (
	lmiUID, lmiGID = 993, 990
	envChildOp     = "CREDENTIAL_REFRESH_TEST_TOKEN_CHILD" // write or read
	envChildPath   = "CREDENTIAL_REFRESH_TEST_TOKEN_PATH"
)

// TestTokenChild is the child's body; it does nothing in a normal run.
func TestTokenChild(t *testing.T) {
	path := os.Getenv(envChildPath)
	switch os.Getenv(envChildOp) {
	case "write":
		a := &agent{cfg: &config.Config{TokenFile: path}}
		a.o.defaults()
		if _, err := a.writeToken(); err != nil {
			fmt.Print("ERROR: ", err)
		}
	case "read": // as the exec wrapper does
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Print("ERROR: ", err)
			return
		}
		fmt.Printf("read %d bytes", len(b))
	}
}

// asUser runs TestTokenChild as uid/gid and returns what it printed.
func asUser(t *testing.T, bin string, uid, gid uint32, op, path string) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestTokenChild$")
	cmd.Env = []string{envChildOp + "=" + op, envChildPath + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	s := out.String()
	if i := strings.Index(s, "\nPASS"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "PASS"))
}

// publicDir makes a directory anyone may enter, with mode (e.g. 01777 for a
// /tmp of its own).
func publicDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "credential-refresh-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// childBinary copies the test binary where uid 993 may run it (go test
// builds it in a directory only root may enter).
func childBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(publicDir(t, 0o755), "agent.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestTokenFileAsManagedInstancesUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; this test needs root to run a child as uid 993")
		}
		t.Skip("needs root to run a child process as uid 993 (CI and make test run as root)")
	}
	bin := childBinary(t)

	t.Run("default layout in a fresh /tmp", func(t *testing.T) {
		tmp := publicDir(t, 0o1777) // as /tmp: world-writable, sticky
		path := filepath.Join(tmp, "credential-refresh", "token")
		if out := asUser(t, bin, lmiUID, lmiGID, "write", path); out != "" {
			t.Fatalf("write as uid %d: %s", lmiUID, out)
		}
		checkOwned(t, path, 0o600)
		checkOwned(t, filepath.Dir(path), 0o700|os.ModeDir)
		if out := asUser(t, bin, lmiUID, lmiGID, "read", path); out != "read 43 bytes" {
			t.Errorf("the runtime (uid %d) reads: %s", lmiUID, out)
		}
		if out := asUser(t, bin, lmiUID+1, lmiGID, "read", path); !strings.Contains(out, "permission denied") {
			t.Errorf("another user reads the token: %s", out)
		}
	})

	t.Run("custom path in a directory the user owns", func(t *testing.T) {
		dir := publicDir(t, 0o755)
		if err := os.Chown(dir, lmiUID, lmiGID); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "nested", "creds", "token")
		if out := asUser(t, bin, lmiUID, lmiGID, "write", path); out != "" {
			t.Fatalf("write: %s", out)
		}
		checkOwned(t, path, 0o600)
	})

	t.Run("a directory the user cannot write", func(t *testing.T) {
		for name, mode := range map[string]os.FileMode{"root's 0700": 0o700, "root's 0755": 0o755} {
			dir := publicDir(t, 0o755)
			stale := filepath.Join(dir, "credential-refresh")
			if err := os.Mkdir(stale, mode); err != nil {
				t.Fatal(err)
			}
			out := asUser(t, bin, lmiUID, lmiGID, "write", filepath.Join(stale, "token"))
			for _, want := range []string{"uid 993", "owned by uid 0", config.EnvTokenFile, "permission denied"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s: the error %q does not say %q", name, out, want)
				}
			}
		}
	})
}

func checkOwned(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != lmiUID || fi.Mode()&(os.ModeDir|os.ModePerm) != mode {
		t.Errorf("%s: uid %d mode %v; want uid %d mode %v", path, st.Uid, fi.Mode(), lmiUID, mode)
	}
}
