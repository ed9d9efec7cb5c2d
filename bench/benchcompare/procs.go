package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binaries builds the extension and the bare handler as the layer's build
// does (static, stripped) into dir.
func binaries(ctx context.Context, root, dir string) (ext, bare string, err error) {
	ext, bare = filepath.Join(dir, "credential-refresh"), filepath.Join(dir, "barehandler")
	for out, pkg := range map[string]string{ext: "./extension", bare: "./bench/barehandler"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return ext, bare, nil
}

// server is a process under test serving credentials on 127.0.0.1.
type server struct {
	name    string
	cmd     *exec.Cmd
	addr    string // host:port
	token   string
	api     *extensionsAPI // the extension's, nil for the bare handler
	started time.Time
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// startExtension runs the extension in deferred mode against a fake
// Extensions API and STS, and waits for its registration.
func (b *bench) startExtension(ctx context.Context) (*server, time.Duration, error) {
	api, err := newExtensionsAPI(b.sts.calls.Load)
	if err != nil {
		return nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	dir, err := os.MkdirTemp(b.tmp, "ext-")
	if err != nil {
		return nil, 0, err
	}
	tokenFile := filepath.Join(dir, "token")
	cmd := exec.Command(b.ext)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_LAMBDA_RUNTIME_API=" + api.addr, "AWS_REGION=us-east-1", "AWS_LAMBDA_FUNCTION_NAME=bench",
		"AWS_ACCESS_KEY_ID=AKIABENCHEXECUTION00", "AWS_SECRET_ACCESS_KEY=bench-secret", "AWS_SESSION_TOKEN=bench-session",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
		"CREDENTIAL_REFRESH_ROLE_ARN=arn:aws:iam::123456789012:role/bench", "CREDENTIAL_REFRESH_MODE=deferred",
		"CREDENTIAL_REFRESH_STS_ENDPOINT=" + b.sts.url, "CREDENTIAL_REFRESH_PORT=" + strconv.Itoa(port),
		"CREDENTIAL_REFRESH_TOKEN_FILE=" + tokenFile, "CREDENTIAL_REFRESH_LOG_LEVEL=WARN",
	}
	cmd.Env = append(cmd.Env, b.extraEnv...)
	if b.stderr {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &server{name: "extension", cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port), api: api}
	s.started = time.Now()
	if err := cmd.Start(); err != nil {
		api.close()
		return nil, 0, err
	}
	select {
	case at := <-api.registered:
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			s.stop()
			return nil, 0, err
		}
		s.token = string(tok)
		if n := api.callsAtReg.Load(); n != 0 {
			s.stop()
			return nil, 0, fmt.Errorf("the extension called STS %d times before registering (deferred mode)", n)
		}
		return s, at.Sub(s.started), nil
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, 0, errors.New("the extension did not register within 10 s")
	case <-ctx.Done():
		s.stop()
		return nil, 0, ctx.Err()
	}
}

// startBare runs the bare handler serving body.
func (b *bench) startBare(body []byte) (*server, error) {
	f := filepath.Join(b.tmp, "body.json")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.bare, "-body", f)
	cmd.Env = append(os.Environ(), b.extraEnv...)
	if b.stderr {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{name: "bare", cmd: cmd, started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("bare handler: %w", err)
	}
	s.addr = strings.TrimSpace(line)
	return s, nil
}

// initTimeBare is the bare extension's time from start to /register.
func (b *bench) initTimeBare(ctx context.Context) (time.Duration, error) {
	api, err := newExtensionsAPI(b.sts.calls.Load)
	if err != nil {
		return 0, err
	}
	defer api.close()
	cmd := exec.Command(b.bare, "-extension")
	cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + api.addr}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { api.shutdown(); _ = cmd.Wait() }()
	select {
	case at := <-api.registered:
		return at.Sub(start), nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return 0, errors.New("the bare extension did not register within 10 s")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return 0, ctx.Err()
	}
}

// stop ends the process: SHUTDOWN for the extension (it exits by itself),
// a kill for the bare handler or after 3 s.
func (s *server) stop() {
	if s.api != nil {
		s.api.shutdown()
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-s.pid(), syscall.SIGKILL)
			<-done
		}
		s.api.close()
		return
	}
	_ = syscall.Kill(-s.pid(), syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// rssKB is the process's resident set (VmRSS), in kB.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS")
}

// rssSplit is the resident set's anonymous part (heap, stacks, runtime
// data) and file-backed part (the binary's pages), in MB, from
// /proc/PID/smaps_rollup.
func rssSplit(pid int) (anon, file float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		switch k {
		case "Pss_Anon":
			anon = float64(kb) / 1024
		case "Pss_File":
			file = float64(kb) / 1024
		}
	}
	return anon, file
}

// cpuTime is the process's user + system CPU time so far (all threads).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that ends the command name: state is 3rd
	// overall, utime 14th, stime 15th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100
