package contract

import (
	"fmt"
	"regexp"
	"strconv"
)

// Environment variables, set on the function (the extension shares its
// environment; the exec wrapper and credrefresh read some of them too).
const (
	EnvRoleArn             = "CREDENTIAL_REFRESH_ROLE_ARN"
	EnvRoleSessionName     = "CREDENTIAL_REFRESH_ROLE_SESSION_NAME"
	EnvDurationSeconds     = "CREDENTIAL_REFRESH_DURATION_SECONDS"
	EnvExternalID          = "CREDENTIAL_REFRESH_EXTERNAL_ID"
	EnvAssumeRole          = "CREDENTIAL_REFRESH_ASSUME_ROLE"
	EnvRoles               = "CREDENTIAL_REFRESH_ROLES"
	EnvMode                = "CREDENTIAL_REFRESH_MODE"
	EnvPort                = "CREDENTIAL_REFRESH_PORT"
	EnvTokenFile           = "CREDENTIAL_REFRESH_TOKEN_FILE"
	EnvSTSRegion           = "CREDENTIAL_REFRESH_STS_REGION"
	EnvSTSEndpoint         = "CREDENTIAL_REFRESH_STS_ENDPOINT"
	EnvSTSMaxAttempts      = "CREDENTIAL_REFRESH_STS_MAX_ATTEMPTS"
	EnvSTSTimeout          = "CREDENTIAL_REFRESH_STS_TIMEOUT"
	EnvLogLevel            = "CREDENTIAL_REFRESH_LOG_LEVEL"
	EnvAllowShortDurations = "CREDENTIAL_REFRESH_ALLOW_SHORT_DURATIONS"
	// EnvClientRole is read by the exec wrapper and credrefresh: which named
	// role the function's SDK asks for. The extension checks it exists.
	EnvClientRole = "CREDENTIAL_REFRESH_CLIENT_ROLE"
	// EnvProcessRoleName names the role in a credential process's
	// environment.
	EnvProcessRoleName = "CREDENTIAL_REFRESH_ROLE_NAME"
)

// Defaults.
const (
	DefaultPort      = 2775
	DefaultTokenFile = "/tmp/credential-refresh/token"
	// DefaultRole is the name the default role is served under:
	// /v1/credentials and /v1/credentials/default.
	DefaultRole = "default"
)

// Ports: the extension binds one of MinPort..MaxPort (Lambda's sandbox user
// may not bind below 1024), and never one that another Lambda component
// already uses in the same sandbox.
const (
	MinPort = 1024
	MaxPort = 65535
)

// ReservedPorts are taken by other Lambda components, with whose.
var ReservedPorts = map[int]string{
	2772: "the AppConfig extension",
	2773: "the Parameters and Secrets extension",
	9001: "the Lambda Runtime API",
}

// Endpoint paths.
const (
	PathCredentials = "/v1/credentials" // + "/{name}" for a named role
	PathIdentity    = "/v1/identity"    // + "/{name}"
	PathHealth      = "/v1/health"
	RefreshSuffix   = "/refresh" // POST PathCredentials/{name}/refresh
)

// RoleNameChars are the characters a role name may hold, spelled out (the
// exec wrapper matches them with a shell pattern, where ranges such as A-Z
// depend on the locale).
const RoleNameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

// MaxRoleNameLen is the longest role name.
const MaxRoleNameLen = 64

var roleName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// CheckRoleName says what is wrong with a role name, or returns nil: 1 to
// 64 of RoleNameChars, and not "." or ".." (it becomes a URL path segment).
func CheckRoleName(name string) error {
	if !roleName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("role name %q must be 1-%d characters of A-Z a-z 0-9 _ . - (not . or ..)", name, MaxRoleNameLen)
	}
	return nil
}

// ParsePort parses a port as the extension and its clients require it: a
// plain decimal (no sign, no leading zero: "02775" would make clients send
// a Host header the server refuses) from MinPort to MaxPort, and not a
// reserved one.
func ParsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil || n < MinPort || n > MaxPort:
		return 0, fmt.Errorf("%q must be a whole number from %d to %d", s, MinPort, MaxPort)
	case strconv.Itoa(n) != s:
		return 0, fmt.Errorf("%q must be written as a plain number such as %d", s, DefaultPort)
	}
	if owner, taken := ReservedPorts[n]; taken {
		return 0, fmt.Errorf("port %d is used by %s; pick another (default %d)", n, owner, DefaultPort)
	}
	return n, nil
}

// CredentialsURL is the endpoint a client reads role from (DefaultRole or
// "" for the default role), as the exec wrapper exports it in
// AWS_CONTAINER_CREDENTIALS_FULL_URI: 127.0.0.1 exactly, which every SDK
// accepts (DESIGN.md §10).
func CredentialsURL(port int, role string) string {
	u := fmt.Sprintf("http://127.0.0.1:%d%s", port, PathCredentials)
	if role != "" {
		u += "/" + role
	}
	return u
}
