package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// Mode selects when credentials are fetched.
type Mode string

const (
	// ModeDeferred fetches on the first request, as boto3-refresh-session's
	// defer_refresh=True does.
	ModeDeferred Mode = "deferred"
	// ModeEager fetches at process start, overlapping the runtime's init, and
	// refreshes in the background on INVOKE events.
	ModeEager Mode = "eager"
)

// Values of AWS_LAMBDA_INITIALIZATION_TYPE, which Lambda sets in the
// extension's environment.
const (
	InitOnDemand          = "on-demand"
	InitProvisioned       = "provisioned-concurrency"
	InitSnapStart         = "snap-start"
	InitManagedInstances  = "lambda-managed-instances"
	EnvInitializationType = "AWS_LAMBDA_INITIALIZATION_TYPE"
	envRuntimeAPI         = "AWS_LAMBDA_RUNTIME_API"
)

// DefaultRoleName is the name under which the default role is served
// (/v1/credentials and /v1/credentials/default).
const DefaultRoleName = contract.DefaultRole

// Variable names: the contract package's, which the exec wrapper and
// credrefresh share.
const (
	EnvRoleArn             = contract.EnvRoleArn
	EnvRoleSessionName     = contract.EnvRoleSessionName
	EnvDurationSeconds     = contract.EnvDurationSeconds
	EnvExternalID          = contract.EnvExternalID
	EnvAssumeRole          = contract.EnvAssumeRole
	EnvRoles               = contract.EnvRoles
	EnvMode                = contract.EnvMode
	EnvPort                = contract.EnvPort
	EnvTokenFile           = contract.EnvTokenFile
	EnvSTSRegion           = contract.EnvSTSRegion
	EnvSTSEndpoint         = contract.EnvSTSEndpoint
	EnvSTSMaxAttempts      = contract.EnvSTSMaxAttempts
	EnvSTSTimeout          = contract.EnvSTSTimeout
	EnvLogLevel            = contract.EnvLogLevel
	EnvAllowShortDurations = contract.EnvAllowShortDurations
	EnvClientRole          = contract.EnvClientRole
)

// Defaults, documented in the README's configuration table.
const (
	DefaultPort            = contract.DefaultPort
	DefaultTokenFile       = contract.DefaultTokenFile
	DefaultDurationSeconds = 3600
	DefaultSTSMaxAttempts  = 3
	DefaultSTSTimeout      = 5 * time.Second
	// RoleChainingMaxSeconds is STS's cap for AssumeRole called with role
	// credentials, which is always the case inside Lambda.
	RoleChainingMaxSeconds = 3600
)

// Config is the validated configuration of one extension process.
type Config struct {
	// Roles maps a role name to its configuration. The default role, when
	// configured, is under DefaultRoleName.
	Roles map[string]*Role

	Mode           Mode
	Port           int
	TokenFile      string
	STSRegion      string
	STSEndpoint    string // empty: the SDK's regional endpoint (or AWS_ENDPOINT_URL_STS)
	STSMaxAttempts int
	STSTimeout     time.Duration // per AssumeRole attempt
	RuntimeAPI     string        // AWS_LAMBDA_RUNTIME_API, host:port
	Log            LogConfig
	// InitializationType is AWS_LAMBDA_INITIALIZATION_TYPE (empty outside
	// Lambda and in older emulators).
	InitializationType string
	// ProcessEnvBase is the environment of a credential process, before
	// ProcessEnv adds the role's name.
	ProcessEnvBase []string
}

// ProcessEnv is the whole environment a credential process runs with: a
// clean, documented one, never the function's. It holds PATH, HOME=/tmp,
// LANG, TZ, AWS_REGION, AWS_DEFAULT_REGION and AWS_LAMBDA_FUNCTION_NAME as
// the extension sees them, and CREDENTIAL_REFRESH_ROLE_NAME, so one program
// can serve several roles. Not the execution role's credentials: a
// program that needs AWS credentials brings its own.
func (c *Config) ProcessEnv(role string) []string {
	return append(slices.Clip(c.ProcessEnvBase), EnvProcessRoleName+"="+role)
}

// EnvProcessRoleName names the role in a credential process's environment.
const EnvProcessRoleName = contract.EnvProcessRoleName

// processEnvBase picks ProcessEnv's variables from the extension's.
func processEnvBase(getenv func(string) string) []string {
	env := []string{"HOME=/tmp"}
	defaults := map[string]string{"PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "LANG": "C.UTF-8"}
	for _, k := range []string{"PATH", "LANG", "TZ", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME"} {
		v := getenv(k)
		if v == "" {
			v = defaults[k]
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ManagedInstances reports whether this is a Lambda Managed Instances
// environment: no INVOKE events for extensions, never frozen, many
// invocations at once.
func (c *Config) ManagedInstances() bool { return c.InitializationType == InitManagedInstances }

// RoleNames returns the configured role names, sorted, for stable output.
func (c *Config) RoleNames() []string { return slices.Sorted(maps.Keys(c.Roles)) }

// FieldError is one invalid variable. Load joins them with errors.Join.
type FieldError struct {
	Var     string // the environment variable (and JSON path, if any)
	Problem string
}

func (e *FieldError) Error() string { return e.Var + ": " + e.Problem }

// Load reads and validates the configuration from getenv. On error it returns
// every problem found, joined, each naming its variable; the returned Config
// still carries the log settings so the failure can be reported properly.
func Load(getenv func(string) string) (*Config, error) {
	l := &loader{getenv: getenv}
	initType := strings.TrimSpace(getenv(EnvInitializationType))
	c := &Config{
		InitializationType: initType,
		Mode:               l.mode(initType == InitManagedInstances),
		Port:               l.port(),
		TokenFile:          l.tokenFile(),
		STSRegion:          l.region(),
		STSEndpoint:        l.endpoint(),
		STSMaxAttempts:     l.intRange(EnvSTSMaxAttempts, DefaultSTSMaxAttempts, 1, 10),
		STSTimeout:         l.duration(EnvSTSTimeout, DefaultSTSTimeout, 100*time.Millisecond, time.Minute),
		RuntimeAPI:         strings.TrimSpace(getenv(envRuntimeAPI)),
		Log:                l.logConfig(),
		ProcessEnvBase:     processEnvBase(getenv),
	}
	c.Roles = l.roles()
	l.clientRole(c.Roles)
	return c, errors.Join(l.errs...)
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(v, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{Var: v, Problem: fmt.Sprintf(format, args...)})
}

func (l *loader) get(name string) string { return strings.TrimSpace(l.getenv(name)) }

// mode defaults to deferred, except on Lambda Managed Instances: there init
// runs before any invocation (with up to 130 s), and an environment then
// serves many invocations at once, so eager's first fetch during init costs
// no invocation anything, where deferred would make the first burst of
// concurrent invocations all wait on it. (After the first fetch both modes
// refresh in the background on the timer.)
func (l *loader) mode(managedInstances bool) Mode {
	switch v := strings.ToLower(l.get(EnvMode)); v {
	case "":
		if managedInstances {
			return ModeEager
		}
		return ModeDeferred
	case string(ModeDeferred):
		return ModeDeferred
	case string(ModeEager):
		return ModeEager
	default:
		l.fail(EnvMode, "%q is not a mode; use deferred or eager", l.get(EnvMode))
		return ModeDeferred
	}
}

// port follows contract.ParsePort's rules.
func (l *loader) port() int {
	v := l.get(EnvPort)
	if v == "" {
		return DefaultPort
	}
	p, err := contract.ParsePort(v)
	if err != nil {
		l.fail(EnvPort, "%v", err)
		return DefaultPort
	}
	return p
}

func (l *loader) tokenFile() string {
	v := l.get(EnvTokenFile)
	if v == "" {
		return DefaultTokenFile
	}
	if !filepath.IsAbs(v) || filepath.Clean(v) != v || strings.HasSuffix(v, "/") {
		l.fail(EnvTokenFile, "%q must be a clean absolute file path, such as %s", v, DefaultTokenFile)
	}
	return v
}

func (l *loader) region() string {
	if v := l.get(EnvSTSRegion); v != "" {
		if !regionPattern.MatchString(v) {
			l.fail(EnvSTSRegion, "%q is not an AWS region name such as us-east-1", v)
		}
		return v
	}
	if v := l.get("AWS_REGION"); v != "" {
		if !regionPattern.MatchString(v) {
			l.fail("AWS_REGION", "%q is not an AWS region name; set %s to the STS region", v, EnvSTSRegion)
		}
		return v
	}
	l.fail(EnvSTSRegion, "no STS region: set %s or AWS_REGION (Lambda sets AWS_REGION itself)", EnvSTSRegion)
	return ""
}

var regionPattern = lazy(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)

func (l *loader) endpoint() string {
	v := l.get(EnvSTSEndpoint)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		l.fail(EnvSTSEndpoint, "is not a URL; use one such as https://sts.eu-west-1.amazonaws.com")
	case u.User != nil:
		// Never echo what may be a password.
		l.fail(EnvSTSEndpoint, "%q must not carry user information", u.Redacted())
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		l.fail(EnvSTSEndpoint, "%q is not an http(s) URL with a host, such as https://sts.eu-west-1.amazonaws.com", v)
	}
	return v
}

func (l *loader) clientRole(roles map[string]*Role) {
	v := l.get(EnvClientRole)
	if v == "" || len(roles) == 0 {
		return
	}
	if _, ok := roles[v]; !ok {
		l.fail(EnvClientRole, "%q is not a configured role; configured: %s", v, strings.Join(slices.Sorted(maps.Keys(roles)), ", "))
	}
}

func (l *loader) intRange(name string, def, lo, hi int) int {
	v := l.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		l.fail(name, "%q must be a whole number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// duration accepts a Go duration ("2s", "1500ms") or a bare number of seconds.
func (l *loader) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := l.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			l.fail(name, "%q is not a duration such as 3s or 1500ms", v)
			return def
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < lo || d > hi {
		l.fail(name, "%s is out of range; use %s to %s", v, lo, hi)
		return def
	}
	return d
}

func (l *loader) boolean(name string) bool {
	switch strings.ToLower(l.get(name)) {
	case "", "0", "false", "no":
		return false
	case "1", "true", "yes":
		return true
	}
	l.fail(name, "%q is not a boolean; use true or false", l.get(name))
	return false
}

// LogConfig is how the extension logs, following Lambda's own variables.
type LogConfig struct {
	Level slog.Level
	JSON  bool // AWS_LAMBDA_LOG_FORMAT=JSON
}

func (l *loader) logConfig() LogConfig {
	lc := LogConfig{Level: slog.LevelInfo, JSON: strings.EqualFold(l.get("AWS_LAMBDA_LOG_FORMAT"), "JSON")}
	name, v := EnvLogLevel, l.get(EnvLogLevel)
	if v == "" {
		name, v = "AWS_LAMBDA_LOG_LEVEL", l.get("AWS_LAMBDA_LOG_LEVEL")
	}
	if v == "" {
		return lc
	}
	lvl, ok := ParseLevel(v)
	if !ok {
		l.fail(name, "%q is not a log level; use TRACE, DEBUG, INFO, WARN, ERROR or FATAL", v)
		return lc
	}
	lc.Level = lvl
	return lc
}

// LevelTrace and LevelFatal extend slog's levels with Lambda's.
const (
	LevelTrace = slog.LevelDebug - 4
	LevelFatal = slog.LevelError + 4
)

// ParseLevel maps Lambda's log level names onto slog levels.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace, true
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO":
		return slog.LevelInfo, true
	case "WARN", "WARNING":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	case "FATAL":
		return LevelFatal, true
	}
	return 0, false
}
