package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FunctionSpec describes one Lambda execution environment to run under RIE.
type FunctionSpec struct {
	Tools    Tools
	LayerDir string   // bind-mounted over /opt
	TaskDir  string   // working directory: the function's code
	Command  []string // the runtime's bootstrap and its arguments
	Env      []string // the function's environment (config, base credentials)
	LogPath  string   // RIE's stdout+stderr (runtime and extension logs) are appended here too
	// Workers > 0 runs RIE's Lambda Managed Instances path with that many
	// runtime workers (AWS_LAMBDA_MAX_CONCURRENCY). There RIE ignores
	// Command: it runs /var/runtime/bootstrap, else /var/task/bootstrap, in
	// /var/task, as uid 993, and initializes at start. The namespace gets a
	// /var of its own with TaskDir on /var/task and RuntimeDir (if any) on
	// /var/runtime, and a /tmp of its own, as a fresh Lambda environment
	// has; the harness reaches its files through HostPath.
	Workers    int
	RuntimeDir string
	// Reach lists paths the managed-instances path's uid 993 must reach,
	// such as the Python interpreter a venv links to. Where one lies under a
	// directory only root may enter (pyenv under /root), the namespace
	// replaces that directory with an open one holding just the way through.
	Reach []string
	// Keep lists directories the environment must still see after its /tmp
	// is replaced (the repository, RIE, the scratch directory: a checkout
	// may itself live under /tmp).
	Keep []string
}

// LMIUID is the uid RIE's managed-instances path runs the runtime and the
// extensions as (supervisor/local/process.go).
const LMIUID = 993

// mountScript prepares RIE's private mount namespace and execs RIE:
// $1 layer, $2 task dir, $3 runtime dir (may be empty), then RIE's argv.
const mountScript = `mount --bind "$1" /opt && cd "$2" && shift 3 && exec "$@"`

// lmiMountScript does the same for the managed-instances path.
const lmiMountScript = `mount --bind "$1" /opt &&
mount -t tmpfs -o mode=755 tmpfs /var && mkdir /var/task /var/runtime /var/tmp &&
ln -s /run /var/run && ln -s /run/lock /var/lock &&
mount --bind "$2" /var/task &&
{ [ -z "$3" ] || mount --bind "$3" /var/runtime; } &&
mount -t tmpfs -o mode=1777 tmpfs /tmp &&
cd /var/task && shift 3 && exec "$@"`

// openWay returns the mount commands that let any user through dir (a
// directory only root may enter) to its entry child, inside the namespace.
func openWay(dir, child string) string {
	hide := "/var/hidden" + strings.ReplaceAll(dir, "/", "-")
	return fmt.Sprintf(`mkdir %[1]s && mount --bind %[2]q %[1]s && mount -t tmpfs -o mode=755 tmpfs %[2]q && `+
		`mkdir %[4]q && mount --bind %[1]s/%[3]s %[4]q && `, hide, dir, child, filepath.Join(dir, child))
}

// keepThroughTmp returns the commands that carry the directories under /tmp
// in keep over the mount of a fresh /tmp: each is bound aside first, then
// back at its own path.
func keepThroughTmp(keep []string) (before, after string) {
	for i, k := range keep {
		k = filepath.Clean(k)
		if !strings.HasPrefix(k, "/tmp/") {
			continue
		}
		aside := fmt.Sprintf("/var/keep%d", i)
		before += fmt.Sprintf("mkdir %s && mount --bind %q %s && ", aside, k, aside)
		after += fmt.Sprintf("&& mkdir -p %q && mount --bind %s %q ", k, aside, k)
	}
	return before, after
}

// closedAncestor finds the first directory above p that others may not
// enter, and the entry under it on the way to p.
func closedAncestor(p string) (dir, child string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	for i := 0; i < len(parts)-1; i++ {
		cur = filepath.Join(cur, parts[i])
		fi, err := os.Stat(cur)
		if err == nil && fi.Mode().Perm()&0o001 == 0 {
			return cur, parts[i+1], true
		}
	}
	return "", "", false
}

// Function is a running RIE with one execution environment.
type Function struct {
	URL  string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{}

	mu   sync.Mutex
	seen map[int]Proc // every descendant ever seen, for teardown
}

// StartFunction starts RIE in a private mount namespace with the layer over
// /opt, as DESIGN.md §5 describes. RIE's init is lazy: nothing of the
// function runs before the first Invoke.
func StartFunction(ctx context.Context, s FunctionSpec) (*Function, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	rapi, err := FreePort()
	if err != nil {
		return nil, err
	}
	script := mountScript
	if s.Workers > 0 {
		script = lmiMountScript
		for _, p := range s.Reach {
			if dir, child, ok := closedAncestor(p); ok {
				script = strings.Replace(script, "mount -t tmpfs -o mode=1777", openWay(dir, child)+"mount -t tmpfs -o mode=1777", 1)
			}
		}
		before, after := keepThroughTmp(s.Keep)
		script = strings.Replace(script, "mount -t tmpfs -o mode=1777 tmpfs /tmp ", before+"mount -t tmpfs -o mode=1777 tmpfs /tmp "+after, 1)
	}
	args := []string{"--mount", "--propagation", "private", "sh", "-c", script, "rie",
		s.LayerDir, s.TaskDir, s.RuntimeDir, s.Tools.RIE,
		"--runtime-interface-emulator-address", "127.0.0.1:" + strconv.Itoa(port),
		"--runtime-api-address", "127.0.0.1:" + strconv.Itoa(rapi)}
	if s.Workers == 0 {
		args = append(args, s.Command...)
	}
	cmd := exec.Command(s.Tools.Unshare, args...)
	cmd.Env = s.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	f := &Function{
		URL:  fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port),
		out:  newLineLog(s.LogPath),
		done: make(chan struct{}),
		seen: map[int]Proc{},
	}
	cmd.Stdout, cmd.Stderr = f.out, f.out
	f.cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start RIE: %w", err)
	}
	go func() { _ = cmd.Wait(); f.out.flush(); close(f.done) }()
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), 10*time.Second); err != nil {
		f.Close()
		return nil, fmt.Errorf("RIE did not listen: %w\n%s", err, f.out.String())
	}
	return f, nil
}

// Invocation is the outcome of one Invoke.
type Invocation struct {
	Start, End time.Time
	Status     int
	ErrorType  string // the Error-Type header, if any
	Body       []byte
}

// NoIdleWorker reports the managed-instances path's answer to an invoke
// that finds every runtime worker busy: 400 with Error-Type
// Runtime.Unavailable. The invoke did not run; it may be sent again.
func (inv Invocation) NoIdleWorker() bool {
	return inv.Status == http.StatusBadRequest && inv.ErrorType == "Runtime.Unavailable"
}

// FunctionError is the error JSON a runtime reports (RIE answers 200 with it).
type FunctionError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// Error returns the function error in the body, if the body is one.
func (inv Invocation) Error() *FunctionError {
	var fe FunctionError
	if json.Unmarshal(inv.Body, &fe) != nil || (fe.ErrorType == "" && fe.ErrorMessage == "") {
		return nil
	}
	return &fe
}

// HostPath maps a path as the environment sees it to one the harness can
// open: through /proc/PID/root, RIE's view of its own mount namespace (its
// /opt, /var and, on the managed-instances path, /tmp are its own).
func (f *Function) HostPath(p string) string {
	return filepath.Join("/proc", strconv.Itoa(f.cmd.Process.Pid), "root", p)
}

// Invoke posts payload to RIE and waits for the result. On the classic path
// callers must not invoke concurrently: RIE crashes on concurrent invokes.
// The managed-instances path takes one invoke per idle runtime worker and
// answers 400 Runtime.Unavailable beyond that.
func (f *Function) Invoke(ctx context.Context, payload []byte) (Invocation, error) {
	inv := Invocation{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(payload))
	if err != nil {
		return inv, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return inv, fmt.Errorf("invoke: %w", err)
	}
	defer resp.Body.Close()
	inv.Body, err = io.ReadAll(resp.Body)
	inv.End, inv.Status, inv.ErrorType = time.Now(), resp.StatusCode, resp.Header.Get("Error-Type")
	f.remember()
	return inv, err
}

// remember records the current descendants so teardown can find them even
// after RIE is gone.
func (f *Function) remember() []Proc {
	ps := descendants(f.cmd.Process.Pid)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ps {
		f.seen[p.PID] = p
	}
	return ps
}

// Processes lists RIE's live descendants: the runtime, the extensions and
// their children.
func (f *Function) Processes() []Proc { return f.remember() }

// ExtensionPID returns the PID of the process running
// /opt/extensions/<name>, or 0.
func (f *Function) ExtensionPID(name string) int {
	for _, p := range f.Processes() {
		if p.Exe == "/opt/extensions/"+name {
			return p.PID
		}
	}
	return 0
}

// Freeze stops RIE and every process of the environment with SIGSTOP, as
// Lambda freezes an environment between invocations; Thaw resumes them.
func (f *Function) Freeze() error { return f.signalAll(syscall.SIGSTOP) }

// Thaw resumes a frozen environment.
func (f *Function) Thaw() error { return f.signalAll(syscall.SIGCONT) }

func (f *Function) signalAll(sig syscall.Signal) error {
	groups := map[int]bool{f.cmd.Process.Pid: true}
	for _, p := range f.Processes() {
		groups[p.PGID] = true
	}
	var errs []error
	for g := range groups {
		errs = append(errs, signalGroup(g, sig))
	}
	return errors.Join(errs...)
}

// Shutdown is the outcome of Stop.
type Shutdown struct {
	Took      time.Duration // SIGTERM to RIE's exit
	ExitCode  int           // RIE's
	Leftovers []Proc        // environment processes still alive after RIE exited
}

// Stop sends SIGTERM to RIE, which delivers SHUTDOWN to the extensions, and
// waits up to limit for RIE to exit. Then it lists any leftover process and
// kills it.
func (f *Function) Stop(limit time.Duration) (Shutdown, error) {
	procs := f.remember()
	start := time.Now()
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return Shutdown{}, fmt.Errorf("SIGTERM RIE: %w", err)
	}
	select {
	case <-f.done:
	case <-time.After(limit):
		f.Close()
		return Shutdown{}, fmt.Errorf("RIE still running %v after SIGTERM", limit)
	}
	sd := Shutdown{Took: time.Since(start), ExitCode: f.cmd.ProcessState.ExitCode()}
	// Give the kernel a moment to reap children that exited with RIE.
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		sd.Leftovers = sd.Leftovers[:0]
		for _, p := range procs {
			if alive(p) {
				sd.Leftovers = append(sd.Leftovers, p)
			}
		}
		if len(sd.Leftovers) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Close()
	return sd, nil
}

// Close kills RIE's and every seen descendant's process group. It is safe
// to call more than once and after Stop.
func (f *Function) Close() {
	f.remember()
	f.mu.Lock()
	groups := map[int]bool{f.cmd.Process.Pid: true}
	for _, p := range f.seen {
		if alive(p) {
			groups[p.PGID] = true
		}
	}
	f.mu.Unlock()
	for g := range groups {
		_ = signalGroup(g, syscall.SIGKILL) // SIGKILL ends stopped processes too

	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
}

// Output returns everything RIE, the runtime and the extensions printed.
func (f *Function) Output() string { return f.out.String() }

// LogRecord is one JSON log line (AWS_LAMBDA_LOG_FORMAT=JSON) with the time
// the harness read it.
type LogRecord struct {
	Seen   time.Time
	Fields map[string]any
}

// Msg returns the record's message: "message" in Lambda's JSON log format,
// "msg" in plain slog JSON.
func (r LogRecord) Msg() string {
	if s, ok := r.Fields["message"].(string); ok {
		return s
	}
	s, _ := r.Fields["msg"].(string)
	return s
}

// Time returns the record's own timestamp ("timestamp" or "time"), or the
// time the harness read the line.
func (r LogRecord) Time() time.Time {
	for _, k := range []string{"timestamp", "time"} {
		if t, err := time.Parse(time.RFC3339Nano, r.Str(k)); err == nil {
			return t
		}
	}
	return r.Seen
}

// Str returns a string field.
func (r LogRecord) Str(k string) string { s, _ := r.Fields[k].(string); return s }

// JSONLogs returns the JSON lines printed so far (extension and runtime logs
// when AWS_LAMBDA_LOG_FORMAT=JSON).
func (f *Function) JSONLogs() []LogRecord { return f.out.records() }

// lineLog collects output, appends it to a file, and parses JSON lines.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	recs    []LogRecord
	file    *os.File
}

func newLineLog(path string) *lineLog {
	l := &lineLog{}
	if path != "" {
		l.file, _ = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	}
	return l
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	if l.file != nil {
		l.file.Write(b)
	}
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.parse(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *lineLog) parse(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var m map[string]any
	if json.Unmarshal(line, &m) == nil {
		l.recs = append(l.recs, LogRecord{Seen: time.Now(), Fields: m})
	}
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.parse(l.partial)
		l.partial = nil
	}
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *lineLog) records() []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LogRecord(nil), l.recs...)
}

// Lines returns the output lines containing substr.
func (f *Function) Lines(substr string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(f.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}
