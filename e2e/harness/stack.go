package harness

import (
	"cmp"
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
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// Runtime names an example function.
type Runtime string

// The example functions.
const (
	Go     Runtime = "go"
	Python Runtime = "python"
	Node   Runtime = "node"
	// Java runs examples/java (built by scripts/setup.sh) under the java21
	// stand-in runtime in the scenarios that list it (not in Runtimes).
	Java Runtime = "java"
)

// Runtimes lists every example function.
var Runtimes = []Runtime{Go, Python, Node}

// Modes lists the extension's refresh modes.
var Modes = []string{"deferred", "eager"}

// ExtensionName is the extension's file name in the layer, and so its name.
const ExtensionName = "credential-refresh"

// Stack is what every scenario shares: the built layer and Go function, and
// moto provisioned with auth on. Each scenario brings its own proxy and
// execution environment.
type Stack struct {
	Tools     Tools
	Dir       string // scratch directory for builds, logs, token files
	LayerDir  string // extensions/credential-refresh + credential-refresh/exec-wrapper
	GoTaskDir string // bootstrap of examples/go
	Moto      *Moto
	Account   *Account
}

// NewStack builds the layer and the Go function into dir, starts moto and
// provisions it. Close undoes what it started.
func NewStack(ctx context.Context, tools Tools, dir, bucket string) (*Stack, error) {
	s := &Stack{Tools: tools, Dir: dir, LayerDir: filepath.Join(dir, "layer"), GoTaskDir: filepath.Join(dir, "task-go")}
	// The managed-instances path runs the function and the extension as
	// uid 993: the layer and the Go function must be reachable for it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := BuildLayer(ctx, tools.Root, s.LayerDir); err != nil {
		return nil, err
	}
	if err := goBuild(ctx, tools.Root, filepath.Join(s.GoTaskDir, "bootstrap"), "./examples/go"); err != nil {
		return nil, err
	}
	m, err := StartMoto(ctx, tools.MotoServer, filepath.Join(dir, "moto.log"))
	if err != nil {
		return nil, err
	}
	s.Moto = m
	if s.Account, err = m.Provision(ctx, bucket); err != nil {
		m.Close()
		return nil, err
	}
	return s, nil
}

// Close stops moto.
func (s *Stack) Close() { s.Moto.Close() }

// EnvExtensionBinary, when set, names a prebuilt extension binary to put
// in the layer instead of building ./extension (e.g. a release artifact).
const EnvExtensionBinary = "CREDENTIAL_REFRESH_E2E_EXTENSION_BINARY"

// BuildLayer lays out the layer as Lambda unpacks it under /opt: the
// extension binary (linux, static), the exec wrapper and the helpers
// (LayerHelpers) from layer/.
func BuildLayer(ctx context.Context, root, dir string) error {
	bin := filepath.Join(dir, "extensions", ExtensionName)
	if prebuilt := os.Getenv(EnvExtensionBinary); prebuilt != "" {
		if err := copyFile(prebuilt, bin, 0o755); err != nil {
			return fmt.Errorf("%s: %w", EnvExtensionBinary, err)
		}
	} else if err := goBuild(ctx, root, bin, "./extension"); err != nil {
		return err
	}
	src := filepath.Join(root, "layer", "credential-refresh", "exec-wrapper")
	if err := copyFile(src, filepath.Join(dir, "credential-refresh", "exec-wrapper"), 0o755); err != nil {
		return fmt.Errorf("exec wrapper: %w", err)
	}
	return copyHelpers(root, dir)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Options describes one execution environment.
type Options struct {
	Name     string  // unique per scenario: names the log file and token file
	Runtime  Runtime // which example function
	Mode     string  // CREDENTIAL_REFRESH_MODE
	Lifetime time.Duration
	// Env is appended to the generated environment; a later KEY=VALUE wins,
	// and KEY= (empty) removes KEY. ProxyURLPlaceholder in a value becomes
	// the proxy's URL.
	Env []string
	// Workers > 0 runs the environment as Lambda Managed Instances do, with
	// that many runtime workers (see FunctionSpec.Workers).
	Workers int
	// TokenFile is CREDENTIAL_REFRESH_TOKEN_FILE as the environment sees it.
	// Empty: a file in the scenario's directory on the classic path, and the
	// extension's default (the variable unset) on the managed-instances
	// path, whose /tmp is the environment's own.
	TokenFile string
	// LayerDir replaces Stack.LayerDir as /opt, e.g. the layer merged with
	// another extension's (MergeLayers). Empty: Stack.LayerDir.
	LayerDir string
}

// Environment is one execution environment under RIE with its own proxy.
type Environment struct {
	*Function
	Proxy     *Proxy
	Opts      Options
	Port      int    // the extension's CREDENTIAL_REFRESH_PORT
	TokenFile string // CREDENTIAL_REFRESH_TOKEN_FILE
	bucket    string // UploadTo's; empty: the stack's
	LogPath   string
	stack     *Stack
}

// Start starts an execution environment (RIE is lazy: the extension and the
// runtime start at the first Invoke). Close it when done.
func (s *Stack) Start(ctx context.Context, o Options) (*Environment, error) {
	p, err := StartProxy(s.Moto.URL)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		p.Close()
		return nil, err
	}
	dir := filepath.Join(s.Dir, o.Name)
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		p.Close()
		return nil, err
	}
	e := &Environment{Proxy: p, Opts: o, Port: port, stack: s, TokenFile: o.TokenFile, LogPath: filepath.Join(dir, "rie.log")}
	switch {
	case e.TokenFile != "":
	case o.Workers > 0:
		e.TokenFile = DefaultTokenFile
	default:
		e.TokenFile = filepath.Join(dir, "token", "token")
	}
	task, command := s.task(o.Runtime)
	e.Function, err = StartFunction(ctx, FunctionSpec{
		Tools: s.Tools, LayerDir: cmp.Or(o.LayerDir, s.LayerDir), TaskDir: task, Command: command,
		Env: e.env(dir), LogPath: e.LogPath, Workers: o.Workers, RuntimeDir: s.runtimeDir(o), Reach: s.reach(o),
		Keep: []string{s.Tools.Root, filepath.Dir(s.Tools.RIE), s.Dir},
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return e, nil
}

// DefaultTokenFile is the extension's default CREDENTIAL_REFRESH_TOKEN_FILE.
const DefaultTokenFile = contract.DefaultTokenFile

// runtimeDir is the stand-in managed runtime bound on /var/runtime on the
// managed-instances path (its bootstrap is found there); none for Go, whose
// bootstrap is the function itself in /var/task.
func (s *Stack) runtimeDir(o Options) string {
	if o.Workers == 0 || o.Runtime == Go {
		return ""
	}
	return filepath.Join(s.Tools.Root, "e2e", "runtimes", string(o.Runtime))
}

// reach lists what uid 993 must reach on the managed-instances path beyond
// the repository: the interpreter behind the venv's python3.
func (s *Stack) reach(o Options) []string {
	if o.Workers == 0 || o.Runtime != Python {
		return nil
	}
	real, err := filepath.EvalSymlinks(filepath.Join(s.Tools.VenvBin, "python3"))
	if err != nil {
		return nil
	}
	return []string{real}
}

// task returns the working directory and bootstrap command of a runtime.
// Python and Node run the examples in place, under the stand-in managed
// runtimes of e2e/runtimes.
func (s *Stack) task(r Runtime) (string, []string) {
	root := s.Tools.Root
	switch r {
	case Python:
		return filepath.Join(root, "examples", "python"), []string{filepath.Join(root, "e2e", "runtimes", "python", "bootstrap"), "app.handler"}
	case Node:
		return filepath.Join(root, "examples", "node"), []string{filepath.Join(root, "e2e", "runtimes", "node", "bootstrap"), "index.handler"}
	case PythonRoles:
		return filepath.Join(root, "examples", "python"), []string{filepath.Join(root, "e2e", "runtimes", "python", "bootstrap"), "roles.handler"}
	case NodeRoles:
		return filepath.Join(root, "examples", "node"), []string{filepath.Join(root, "e2e", "runtimes", "node", "bootstrap"), "roles.handler"}
	case Java:
		return filepath.Join(root, "examples", "java", "target", "function"), []string{filepath.Join(root, "e2e", "runtimes", "java", "bootstrap"), "example.Handler::handleRequest"}
	default:
		return s.GoTaskDir, []string{"./bootstrap"}
	}
}

// env is the function's environment: what Lambda would set, the base
// credentials (the execution user's keys), and the extension's config.
// Nothing from the caller's environment leaks in but PATH.
func (e *Environment) env(dir string) []string {
	s, o := e.stack, e.Opts
	home := filepath.Join(dir, "home")
	kv := []string{
		"PATH=" + s.Tools.VenvBin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1",
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + s.Account.User.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.Account.User.SecretAccessKey,
		"AWS_ENDPOINT_URL_S3=" + e.Proxy.URL,
		"AWS_EC2_METADATA_DISABLED=true", // never reach for 169.254.169.254
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_LAMBDA_FUNCTION_NAME=e2e-" + o.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30",
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		contract.EnvRoleArn + "=" + s.Account.RoleARN,
		contract.EnvMode + "=" + o.Mode,
		contract.EnvPort + "=" + strconv.Itoa(e.Port),
		contract.EnvTokenFile + "=" + e.TokenFile,
		"AWS_LAMBDA_MAX_CONCURRENCY=" + workers(o.Workers), // set: RIE takes the managed-instances path
		contract.EnvSTSEndpoint + "=" + e.Proxy.URL,
		contract.EnvSTSRegion + "=" + Region,
		contract.EnvSTSMaxAttempts + "=2",
		contract.EnvSTSTimeout + "=3s",
		contract.EnvDurationSeconds + "=" + strconv.Itoa(int(o.Lifetime/time.Second)),
		contract.EnvAllowShortDurations + "=true",
	}
	if o.Runtime != Go {
		kv = append(kv, "AWS_LAMBDA_EXEC_WRAPPER=/opt/credential-refresh/exec-wrapper")
	}
	if o.Workers > 0 {
		// The environment's /tmp is its own (the scenario's directory is not
		// in it), and uid 993 owns nothing else.
		kv = append(kv, "HOME=/tmp")
		if o.TokenFile == "" {
			kv = append(kv, contract.EnvTokenFile+"=") // the extension's default
		}
	}
	for _, v := range o.Env {
		kv = append(kv, strings.ReplaceAll(v, ProxyURLPlaceholder, e.Proxy.URL))
	}
	return mergeEnv(kv)
}

// ProxyURLPlaceholder in an Options.Env value stands for the environment's
// proxy URL, which is known only once the environment starts.
const ProxyURLPlaceholder = "{{PROXY_URL}}"

func workers(n int) string {
	if n == 0 {
		return "" // unset: the classic path
	}
	return strconv.Itoa(n)
}

// mergeEnv keeps the last value of each key and drops keys set to "".
func mergeEnv(kv []string) []string {
	last := map[string]int{}
	for i, s := range kv {
		k, _, _ := strings.Cut(s, "=")
		last[k] = i
	}
	var out []string
	for i, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		if last[k] == i && v != "" {
			out = append(out, s)
		}
	}
	return out
}

// Close tears the environment down hard (kills every process group) and
// stops its proxy.
func (e *Environment) Close() {
	e.Function.Close()
	e.Proxy.Close()
}

// Upload is one invocation of an example function and what it answered.
type Upload struct {
	Invocation
	Runtime     string   `json:"runtime"`
	Written     int      `json:"written"`
	Keys        []string `json:"keys"`
	AccessKeyID string   `json:"accessKeyId"`
}

// Upload invokes the example function with its events/upload-<runtime>.json
// payload, with bucket, prefix and count replaced. A function error is
// returned as an error (with the Invocation still filled in).
func (e *Environment) Upload(ctx context.Context, prefix string, count int) (Upload, error) {
	payload, err := e.stack.Event(e.Opts.Runtime, cmp.Or(e.bucket, e.stack.Account.Bucket), prefix, count)
	if err != nil {
		return Upload{}, err
	}
	inv, err := e.Invoke(ctx, payload)
	u := Upload{Invocation: inv}
	if err != nil {
		return u, err
	}
	if inv.NoIdleWorker() {
		return u, ErrNoIdleWorker
	}
	if fe := inv.Error(); fe != nil {
		return u, fmt.Errorf("function error %s: %s", fe.ErrorType, fe.ErrorMessage)
	}
	if err := json.Unmarshal(inv.Body, &u); err != nil || u.Runtime == "" {
		return u, fmt.Errorf("unexpected invoke response (HTTP %d): %.500s", inv.Status, inv.Body)
	}
	return u, nil
}

// ErrNoIdleWorker is Upload's error for an invoke the managed-instances
// path refused because every runtime worker was busy; it did not run.
var ErrNoIdleWorker = errors.New("no idle runtime worker (400 Runtime.Unavailable)")

// Event reads events/upload-<runtime>.json and sets bucket, prefix, count.
func (s *Stack) Event(r Runtime, bucket, prefix string, count int) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(s.Tools.Root, "events", "upload-"+string(r)+".json"))
	if err != nil {
		return nil, err
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("events/upload-%s.json: %w", r, err)
	}
	ev["bucket"], ev["prefix"], ev["count"] = bucket, prefix, count
	return json.Marshal(ev)
}

// RoleHealth is one role's entry in GET /v1/health.
type RoleHealth struct {
	RoleARN       string `json:"roleArn"`
	Source        string `json:"source"`
	State         string `json:"state"`
	Expiration    string `json:"expiration"`
	LastRefresh   string `json:"lastRefresh"`
	LastErrorCode string `json:"lastErrorCode"`
	STSCalls      int    `json:"stsCalls"`
	STSFailures   int    `json:"stsFailures"`
	Served        int    `json:"served"`
	Waited        int    `json:"waited"`
}

// Health is GET /v1/health.
type Health struct {
	Mode  string                `json:"mode"`
	Roles map[string]RoleHealth `json:"roles"`
}

// Health reads the extension's /v1/health with the token from its token
// file, as a function would.
func (e *Environment) Health(ctx context.Context) (Health, error) {
	var h Health
	body, status, err := e.get(ctx, "/v1/health")
	if err != nil {
		return h, err
	}
	if status != http.StatusOK {
		return h, fmt.Errorf("GET /v1/health: HTTP %d: %s", status, body)
	}
	return h, json.Unmarshal(body, &h)
}

// get sends an authorized GET to the extension's endpoint.
func (e *Environment) get(ctx context.Context, path string) ([]byte, int, error) {
	token, err := os.ReadFile(e.TokenPath())
	if err != nil {
		return nil, 0, fmt.Errorf("token file: %w", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.Port, path), nil)
	req.Header.Set("Authorization", strings.TrimSpace(string(token)))
	body, status, _, err := e.send(req)
	return body, status, err
}

// send does req with a 10 s bound and returns the body, the status and the
// Retry-After header.
func (e *Environment) send(req *http.Request) ([]byte, int, string, error) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, resp.Header.Get("Retry-After"), err
}

// TokenPath is where the harness reads the token file: TokenFile itself on
// the classic path, the same file through RIE's mount namespace on the
// managed-instances path (while RIE runs).
func (e *Environment) TokenPath() string {
	if e.Opts.Workers > 0 {
		return e.HostPath(e.TokenFile)
	}
	return e.TokenFile
}

// Get sends an authorized GET for path (e.g. /v1/credentials) to the
// extension, as a function would, and returns the body and status.
func (e *Environment) Get(ctx context.Context, path string) ([]byte, int, error) {
	return e.get(ctx, path)
}

// Refreshes returns the extension's "credentials refreshed" log records.
func (e *Environment) Refreshes() []LogRecord {
	var out []LogRecord
	for _, r := range e.JSONLogs() {
		if r.Msg() == "credentials refreshed" {
			out = append(out, r)
		}
	}
	return out
}
