package layer_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const wrapperPath = "credential-refresh/exec-wrapper"

// runtimeScript stands in for the managed runtime that the wrapper execs.
// It prints, NUL-separated, its parent pid, its argument count, its
// arguments and then its environment, and exits with WRAPPER_TEST_EXIT.
// A shell rather than a re-exec of the test binary: under -race that
// binary takes about a second to start.
const runtimeScript = `printf '%s\0' "$PPID" "$#" "$@" && env -0 && exit "${WRAPPER_TEST_EXIT:-0}"`

// received is what the runtime stand-in saw after the wrapper exec'd it.
type received struct {
	PPID int               // the test process if the wrapper exec'd
	Args []string          // the runtime's arguments
	Env  map[string]string // its whole environment
}

// shells returns every POSIX shell on this machine that the wrapper must
// run under: sh always, and dash and bash when present (Lambda's images
// have /bin/sh as bash; Debian's sh is dash).
func shells(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"sh", "dash", "bash", "busybox"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatal("no sh on PATH")
	}
	return out
}

type run struct {
	stdout, stderr string
	code           int
}

// runWrapper runs `shell wrapper args...` with exactly env (plus PATH).
func runWrapper(t *testing.T, shell string, env map[string]string, args ...string) run {
	t.Helper()
	argv := []string{wrapperPath}
	if strings.HasSuffix(shell, "busybox") {
		argv = append([]string{"sh"}, argv...)
	}
	if args != nil {
		argv = append(argv, "/bin/sh", "-c", runtimeScript, "runtime")
		argv = append(argv, args...)
	}
	cmd := exec.Command(shell, argv...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", shell, err)
	}
	return r
}

func decode(t *testing.T, r run) received {
	t.Helper()
	fields := strings.Split(r.stdout, "\x00")
	fail := func(why string) {
		t.Fatalf("runtime did not run (exit %d): %s\nstdout: %q\nstderr: %s", r.code, why, r.stdout, r.stderr)
	}
	if len(fields) < 2 {
		fail("short output")
	}
	ppid, err1 := strconv.Atoi(fields[0])
	n, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil || len(fields) < 2+n {
		fail("bad header")
	}
	got := received{PPID: ppid, Args: fields[2 : 2+n], Env: map[string]string{}}
	for _, kv := range fields[2+n:] {
		if k, v, ok := strings.Cut(kv, "="); ok {
			got.Env[k] = v
		}
	}
	return got
}

func writeToken(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const token = "dG9rZW4tZm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtbG9uZw"

func TestWrapperIsExecutable(t *testing.T) {
	fi, err := os.Stat(wrapperPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 != 0o111 {
		t.Errorf("mode %v: want executable by all", fi.Mode())
	}
	src, err := os.ReadFile(wrapperPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(src, []byte("#!/bin/sh\n")) {
		t.Errorf("first line %q: want #!/bin/sh", bytes.SplitN(src, []byte("\n"), 2)[0])
	}
	if bytes.Contains(src, []byte("\r")) {
		t.Error("wrapper has CR line endings")
	}
}

func TestWrapperExports(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantURI string
	}{
		{
			name:    "default role and port",
			env:     map[string]string{},
			wantURI: "http://127.0.0.1:2775/v1/credentials",
		},
		{
			name:    "custom port",
			env:     map[string]string{"CREDENTIAL_REFRESH_PORT": "9123"},
			wantURI: "http://127.0.0.1:9123/v1/credentials",
		},
		{
			name:    "named role",
			env:     map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": "reader.v2_eu-1"},
			wantURI: "http://127.0.0.1:2775/v1/credentials/reader.v2_eu-1",
		},
		{
			name: "named role and custom port",
			env: map[string]string{
				"CREDENTIAL_REFRESH_CLIENT_ROLE": "Writer",
				"CREDENTIAL_REFRESH_PORT":        "3000",
			},
			wantURI: "http://127.0.0.1:3000/v1/credentials/Writer",
		},
		{
			name:    "empty role means default",
			env:     map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": ""},
			wantURI: "http://127.0.0.1:2775/v1/credentials",
		},
	}
	for _, shell := range shells(t) {
		for _, tt := range tests {
			t.Run(filepath.Base(shell)+"/"+tt.name, func(t *testing.T) {
				env := map[string]string{
					"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, token+"\n"),
					// What Lambda hands the runtime: the execution role's
					// credentials, which must not reach the SDK.
					"AWS_ACCESS_KEY_ID":     "ASIAEXECUTIONROLE",
					"AWS_SECRET_ACCESS_KEY": "execution-secret",
					"AWS_SESSION_TOKEN":     "execution-session",
					// Anything that would shadow our endpoint or token.
					"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
					"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/other",
					"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "http://169.254.170.23/v1/credentials",
					"AWS_CONTAINER_AUTHORIZATION_TOKEN":      "stale",
					"AWS_REGION":                             "eu-west-1",
				}
				for k, v := range tt.env {
					env[k] = v
				}
				r := runWrapper(t, shell, env, "--handler")
				got := decode(t, r)
				if r.code != 0 {
					t.Errorf("exit %d, stderr %q", r.code, r.stderr)
				}
				for _, k := range []string{
					"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
					"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
				} {
					if v, ok := got.Env[k]; ok {
						t.Errorf("%s still set to %q", k, v)
					}
				}
				// Kept as Lambda set it: the Parameters and Secrets extension
				// authenticates the function by it, and without the key id
				// and secret no SDK's env provider uses it.
				if v := got.Env["AWS_SESSION_TOKEN"]; v != "execution-session" {
					t.Errorf("AWS_SESSION_TOKEN = %q, want it kept as Lambda set it", v)
				}
				if v := got.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]; v != tt.wantURI {
					t.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI = %q, want %q", v, tt.wantURI)
				}
				if v := got.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]; v != token {
					t.Errorf("AWS_CONTAINER_AUTHORIZATION_TOKEN = %q, want the file's content without newline", v)
				}
				if v := got.Env["AWS_REGION"]; v != "eu-west-1" {
					t.Errorf("AWS_REGION = %q: unrelated variables must pass through", v)
				}
				if got.PPID != os.Getpid() {
					t.Errorf("runtime's parent pid %d, want %d: the wrapper must exec, not fork", got.PPID, os.Getpid())
				}
				if r.stderr != "" {
					t.Errorf("stderr on success: %q", r.stderr)
				}
			})
		}
	}
}

func TestWrapperPassesArgumentsIntact(t *testing.T) {
	args := []string{
		"/var/lang/bin/python3.12", "-m", "awslambdaric", "app.handler",
		"two  spaces", "", " lead and trail ", "*", "$HOME", "`id`", "a\nb", "--k=v w", "'q'", `"dq"`, `back\slash`,
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			env := map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, token)}
			got := decode(t, runWrapper(t, shell, env, args...))
			if !reflect.DeepEqual(got.Args, args) {
				t.Errorf("args\n got %q\nwant %q", got.Args, args)
			}
		})
	}
}

func TestWrapperKeepsExitStatus(t *testing.T) {
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			env := map[string]string{
				"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, token),
				"WRAPPER_TEST_EXIT":             "7",
			}
			if r := runWrapper(t, shell, env, "x"); r.code != 7 {
				t.Errorf("exit %d, want the runtime's 7", r.code)
			}
		})
	}
}

func TestWrapperFailsLoudly(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		env       map[string]string
		noCommand bool
		want      []string // substrings of stderr
	}{
		{
			name: "missing token file",
			env:  map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": filepath.Join(dir, "nope")},
			want: []string{"does not exist", "extension did not start", "/opt/extensions/credential-refresh", "INIT logs"},
		},
		{
			name: "empty token file",
			env:  map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, "")},
			want: []string{"is empty", "/opt/extensions/credential-refresh"},
		},
		{
			name: "token file of blank lines",
			env:  map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, "\n\n")},
			want: []string{"is empty"},
		},
		{
			name: "token file is a directory",
			env:  map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": dir},
			want: []string{"could not be read", "/opt/extensions/credential-refresh"},
		},
		{
			name: "role name with slash",
			env:  map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": "a/b"},
			want: []string{"CREDENTIAL_REFRESH_CLIENT_ROLE", "not a valid role name"},
		},
		{
			name: "role name dot dot",
			env:  map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": ".."},
			want: []string{"not a valid role name"},
		},
		{
			name: "role name with space",
			env:  map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": "a b"},
			want: []string{"not a valid role name"},
		},
		{
			name: "role name with command substitution",
			env:  map[string]string{"CREDENTIAL_REFRESH_CLIENT_ROLE": "$(touch " + filepath.Join(dir, "pwned") + ")"},
			want: []string{"not a valid role name"},
		},
		{
			name: "port not a number",
			env:  map[string]string{"CREDENTIAL_REFRESH_PORT": "http"},
			want: []string{"CREDENTIAL_REFRESH_PORT", "not a port number"},
		},
		{
			name: "port out of range",
			env:  map[string]string{"CREDENTIAL_REFRESH_PORT": "70000"},
			want: []string{"not a port number"},
		},
		{
			name: "port with leading zero",
			env:  map[string]string{"CREDENTIAL_REFRESH_PORT": "02775"},
			want: []string{"no leading zero"},
		},
		{
			name: "privileged port",
			env:  map[string]string{"CREDENTIAL_REFRESH_PORT": "80"},
			want: []string{"1024-65535"},
		},
		{
			name:      "no command",
			noCommand: true,
			want:      []string{"no command given"},
		},
	}
	for _, shell := range shells(t) {
		for _, tt := range tests {
			t.Run(filepath.Base(shell)+"/"+tt.name, func(t *testing.T) {
				env := map[string]string{"CREDENTIAL_REFRESH_TOKEN_FILE": writeToken(t, token)}
				for k, v := range tt.env {
					env[k] = v
				}
				var args []string
				if !tt.noCommand {
					args = []string{"handler"}
				}
				r := runWrapper(t, shell, env, args...)
				if r.code == 0 {
					t.Errorf("exit 0, want failure")
				}
				if r.stdout != "" {
					t.Errorf("the runtime ran anyway: stdout %q", r.stdout)
				}
				if !strings.Contains(r.stderr, "credential-refresh exec-wrapper: ERROR:") {
					t.Errorf("stderr %q lacks the wrapper's error prefix", r.stderr)
				}
				for _, w := range tt.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
					}
				}
				if strings.Contains(r.stderr, token) {
					t.Error("stderr contains the token")
				}
			})
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a role name was evaluated by the shell")
	}
}
