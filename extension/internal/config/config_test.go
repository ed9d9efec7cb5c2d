package config_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
)

const testArn = "arn:aws:iam::123456789012:role/target"

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func base(extra map[string]string) func(string) string {
	m := map[string]string{
		"AWS_REGION":               "eu-west-1",
		"AWS_LAMBDA_FUNCTION_NAME": "my-func",
		"AWS_LAMBDA_RUNTIME_API":   "127.0.0.1:9001",
	}
	for k, v := range extra {
		m[k] = v
	}
	return env(m)
}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(base(map[string]string{config.EnvRoleArn: testArn}))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Roles[config.DefaultRoleName]
	if in == nil {
		t.Fatal("no default role")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"RoleArn", aws.ToString(in.RoleArn), testArn},
		{"RoleSessionName", aws.ToString(in.RoleSessionName), "my-func"},
		{"DurationSeconds", aws.ToInt32(in.DurationSeconds), int32(3600)},
		{"Mode", c.Mode, config.ModeDeferred},
		{"Port", c.Port, 2775},
		{"TokenFile", c.TokenFile, "/tmp/credential-refresh/token"},
		{"STSRegion", c.STSRegion, "eu-west-1"},
		{"STSMaxAttempts", c.STSMaxAttempts, 3},
		{"STSTimeout", c.STSTimeout, 5 * time.Second},
		{"RuntimeAPI", c.RuntimeAPI, "127.0.0.1:9001"},
		{"LogLevel", c.Log.Level, slog.LevelInfo},
		{"LogJSON", c.Log.JSON, false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadFullAssumeRoleJSON(t *testing.T) {
	js := `{"RoleArn":"` + testArn + `","RoleSessionName":"s1","DurationSeconds":1200,"ExternalId":"ext-123",
	"Policy":"{\"Version\":\"2012-10-17\",\"Statement\":[]}","PolicyArns":[{"Arn":"arn:aws:iam::aws:policy/ReadOnlyAccess"}],
	"Tags":[{"Key":"team","Value":"a"}],"TransitiveTagKeys":["team"],"SourceIdentity":"alice",
	"ProvidedContexts":[{"ProviderArn":"arn:aws:iam::aws:contextProvider/IdentityCenter","ContextAssertion":"x"}]}`
	c, err := config.Load(base(map[string]string{
		config.EnvAssumeRole: js, config.EnvMode: "EAGER", config.EnvPort: "3000",
		config.EnvSTSTimeout: "1500ms", config.EnvSTSMaxAttempts: "5", config.EnvLogLevel: "debug",
		"AWS_LAMBDA_LOG_FORMAT": "JSON", config.EnvSTSEndpoint: "http://127.0.0.1:5000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Roles[config.DefaultRoleName]
	if aws.ToString(in.ExternalId) != "ext-123" || aws.ToInt32(in.DurationSeconds) != 1200 ||
		len(in.PolicyArns) != 1 || len(in.Tags) != 1 || aws.ToString(in.SourceIdentity) != "alice" ||
		len(in.ProvidedContexts) != 1 || len(in.TransitiveTagKeys) != 1 || in.Policy == nil {
		t.Errorf("fields not carried over: %+v", in)
	}
	if c.Mode != config.ModeEager || c.Port != 3000 || c.STSTimeout != 1500*time.Millisecond ||
		c.STSMaxAttempts != 5 || c.Log.Level != slog.LevelDebug || !c.Log.JSON || c.STSEndpoint != "http://127.0.0.1:5000" {
		t.Errorf("options not parsed: %+v", c)
	}
}

func TestNamedRoles(t *testing.T) {
	c, err := config.Load(base(map[string]string{
		config.EnvRoles:           `{"reader":{"RoleArn":"arn:aws:iam::111111111111:role/r"},"writer":{"RoleArn":"arn:aws:iam::222222222222:role/path/w","DurationSeconds":900}}`,
		config.EnvDurationSeconds: "1800",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Roles[config.DefaultRoleName]; ok {
		t.Error("default role configured without being asked for")
	}
	if got := strings.Join(c.RoleNames(), ","); got != "reader,writer" {
		t.Errorf("names = %s", got)
	}
	if d := aws.ToInt32(c.Roles["reader"].DurationSeconds); d != 1800 {
		t.Errorf("reader duration %d, want the default 1800", d)
	}
	if d := aws.ToInt32(c.Roles["writer"].DurationSeconds); d != 900 {
		t.Errorf("writer duration %d", d)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string // substrings, each must appear
	}{
		{"bad arn", map[string]string{config.EnvRoleArn: "arn:aws:iam::12:role/x"}, []string{config.EnvRoleArn + ": ", "not an IAM role ARN"}},
		{"no role", nil, []string{config.EnvRoleArn, "no role configured"}},
		{"mode", map[string]string{config.EnvRoleArn: testArn, config.EnvMode: "lazy"}, []string{config.EnvMode, "deferred or eager"}},
		{"port", map[string]string{config.EnvRoleArn: testArn, config.EnvPort: "70000"}, []string{config.EnvPort}},
		{"reserved port", map[string]string{config.EnvRoleArn: testArn, config.EnvPort: "2773"}, []string{"Parameters and Secrets"}},
		{"duration short", map[string]string{config.EnvRoleArn: testArn, config.EnvDurationSeconds: "60"}, []string{config.EnvDurationSeconds, "minimum of 900"}},
		{"duration chaining", map[string]string{config.EnvRoleArn: testArn, config.EnvDurationSeconds: "7200"}, []string{config.EnvDurationSeconds, "role chaining"}},
		{"duration max", map[string]string{config.EnvRoleArn: testArn, config.EnvDurationSeconds: "50000"}, []string{"43200"}},
		{"duration nan", map[string]string{config.EnvRoleArn: testArn, config.EnvDurationSeconds: "1h"}, []string{config.EnvDurationSeconds, "whole number"}},
		{"json duration chaining", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","DurationSeconds":7200}`}, []string{"ASSUME_ROLE.DurationSeconds", "role chaining"}},
		{"unknown field", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","Duration":900}`}, []string{config.EnvAssumeRole, `unknown field "Duration"`}},
		{"trailing json", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `"} {}`}, []string{"unexpected data"}},
		{"session name", map[string]string{config.EnvRoleArn: testArn, config.EnvRoleSessionName: "has space"}, []string{config.EnvRoleSessionName + ": "}},
		{"json arn", map[string]string{config.EnvAssumeRole: `{"RoleArn":"arn:aws:iam::1:role/x"}`}, []string{"CREDENTIAL_REFRESH_ASSUME_ROLE.RoleArn"}},
		{"conflict", map[string]string{config.EnvRoleArn: testArn, config.EnvAssumeRole: `{"RoleArn":"arn:aws:iam::123456789012:role/other"}`}, []string{config.EnvRoleArn, "conflicts"}},
		{"session without arn", map[string]string{config.EnvRoleSessionName: "abc"}, []string{config.EnvRoleArn, "is required"}},
		{"named bad name", map[string]string{config.EnvRoles: `{"a b":{"RoleArn":"` + testArn + `"}}`}, []string{config.EnvRoles, "role name"}},
		{"named default", map[string]string{config.EnvRoles: `{"default":{"RoleArn":"` + testArn + `"}}`}, []string{"reserved"}},
		{"named bad arn", map[string]string{config.EnvRoles: `{"r":{"RoleArn":"nope"}}`}, []string{`CREDENTIAL_REFRESH_ROLES["r"].RoleArn`}},
		{"policy", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","Policy":"{nope"}`}, []string{"Policy", "JSON policy"}},
		{"policy arn", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","PolicyArns":[{"Arn":"x"}]}`}, []string{"PolicyArns[0].Arn"}},
		{"dup tag", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","Tags":[{"Key":"a","Value":"1"},{"Key":"A","Value":"2"}]}`}, []string{"Tags[1].Key", "repeated"}},
		{"timeout", map[string]string{config.EnvRoleArn: testArn, config.EnvSTSTimeout: "forever"}, []string{config.EnvSTSTimeout}},
		{"attempts", map[string]string{config.EnvRoleArn: testArn, config.EnvSTSMaxAttempts: "0"}, []string{config.EnvSTSMaxAttempts}},
		{"endpoint", map[string]string{config.EnvRoleArn: testArn, config.EnvSTSEndpoint: "ftp://x"}, []string{config.EnvSTSEndpoint}},
		{"region", map[string]string{config.EnvRoleArn: testArn, config.EnvSTSRegion: "Mars"}, []string{config.EnvSTSRegion}},
		{"token file", map[string]string{config.EnvRoleArn: testArn, config.EnvTokenFile: "relative/token"}, []string{config.EnvTokenFile}},
		{"log level", map[string]string{config.EnvRoleArn: testArn, "AWS_LAMBDA_LOG_LEVEL": "LOUD"}, []string{"AWS_LAMBDA_LOG_LEVEL"}},
		{"client role", map[string]string{config.EnvRoleArn: testArn, config.EnvClientRole: "writer"}, []string{config.EnvClientRole, "not a configured role"}},
		{"port leading zero", map[string]string{config.EnvRoleArn: testArn, config.EnvPort: "02775"}, []string{config.EnvPort, "plain number"}},
		{"port plus", map[string]string{config.EnvRoleArn: testArn, config.EnvPort: "+2775"}, []string{config.EnvPort, "plain number"}},
		{"privileged port", map[string]string{config.EnvRoleArn: testArn, config.EnvPort: "80"}, []string{config.EnvPort, "1024"}},
		{"aws region", map[string]string{config.EnvRoleArn: testArn, "AWS_REGION": "Moon"}, []string{"AWS_REGION:", config.EnvSTSRegion}},
		{"duration conflict", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","DurationSeconds":3600}`, config.EnvDurationSeconds: "900"}, []string{config.EnvDurationSeconds, "conflicts"}},
		{"dot role", map[string]string{config.EnvRoles: `{"..":{"RoleArn":"` + testArn + `"}}`}, []string{config.EnvRoles, "role name"}},
		{"duplicate role", map[string]string{config.EnvRoles: `{"a":{"RoleArn":"` + testArn + `"},"a":{"RoleArn":"` + testArn + `"}}`}, []string{`"a" appears more than once`}},
		{"tag charset", map[string]string{config.EnvAssumeRole: `{"RoleArn":"` + testArn + `","Tags":[{"Key":"a;b","Value":"1"}]}`}, []string{"Tags[0]", "letters"}},
		{"short flag", map[string]string{config.EnvRoleArn: testArn, config.EnvAllowShortDurations: "maybe"}, []string{config.EnvAllowShortDurations}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(base(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestAllErrorsReportedTogether(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		config.EnvRoleArn:         "bad",
		config.EnvMode:            "sometimes",
		config.EnvPort:            "x",
		config.EnvDurationSeconds: "5",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, v := range []string{config.EnvRoleArn, config.EnvMode, config.EnvPort, config.EnvDurationSeconds, config.EnvSTSRegion} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("missing %s in %q", v, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n < 5 {
		t.Errorf("want at least 5 separate errors, got %d: %q", n, err)
	}
}

// A broken JSON variable does not hide the flat variables' errors.
func TestJSONErrorDoesNotHideOthers(t *testing.T) {
	_, err := config.Load(base(map[string]string{config.EnvAssumeRole: `{`, config.EnvRoleArn: "nope"}))
	if err == nil || !strings.Contains(err.Error(), config.EnvAssumeRole+": invalid JSON") || !strings.Contains(err.Error(), config.EnvRoleArn+": ") {
		t.Fatalf("err = %v", err)
	}
}

// An endpoint URL with a password is refused without echoing the password.
func TestEndpointPasswordNotEchoed(t *testing.T) {
	_, err := config.Load(base(map[string]string{config.EnvRoleArn: testArn, config.EnvSTSEndpoint: "https://user:s3cret@sts.example"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "user information") {
		t.Fatalf("err = %v", err)
	}
}

func TestShortDurationsNeedOptIn(t *testing.T) {
	c, err := config.Load(base(map[string]string{
		config.EnvRoleArn: testArn, config.EnvDurationSeconds: "4", config.EnvAllowShortDurations: "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if d := aws.ToInt32(c.Roles[config.DefaultRoleName].DurationSeconds); d != 4 {
		t.Errorf("duration %d", d)
	}
}

func TestSessionNameFrom(t *testing.T) {
	cases := map[string]string{
		"my-func":               "my-func",
		"":                      "credential-refresh",
		"a":                     "credential-refresh",
		"fn:with/bad chars!":    "fn-with-bad-chars-",
		strings.Repeat("x", 80): strings.Repeat("x", 64),
	}
	for in, want := range cases {
		if got := config.SessionNameFrom(in); got != want {
			t.Errorf("SessionNameFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLoad checks that no input panics, and that a successful load always
// yields inputs STS would accept on shape.
func FuzzLoad(f *testing.F) {
	f.Add(testArn, `{"RoleArn":"`+testArn+`"}`, `{"r":{"RoleArn":"`+testArn+`"}}`, "eager", "2775", "900")
	f.Add("", `{"Tags":[{"Key":"","Value":""}]}`, `{"":{}}`, "", "0", "-1")
	f.Add("x", `[`, `null`, "EAGER", "9001", "99999999999")
	f.Fuzz(func(t *testing.T, arn, assume, roles, mode, port, dur string) {
		c, err := config.Load(base(map[string]string{
			config.EnvRoleArn: arn, config.EnvAssumeRole: assume, config.EnvRoles: roles,
			config.EnvMode: mode, config.EnvPort: port, config.EnvDurationSeconds: dur,
		}))
		if c == nil {
			t.Fatal("nil config")
		}
		if err != nil {
			return
		}
		if len(c.Roles) == 0 {
			t.Fatal("loaded without roles")
		}
		for name, in := range c.Roles {
			d := aws.ToInt32(in.DurationSeconds)
			if d < 900 || d > 3600 {
				t.Fatalf("role %s: duration %d accepted", name, d)
			}
			if aws.ToString(in.RoleArn) == "" || len(aws.ToString(in.RoleSessionName)) < 2 {
				t.Fatalf("role %s: empty fields accepted", name)
			}
		}
	})
}

// TestModeDefaultByExecutionModel: deferred by default, eager by default on
// Lambda Managed Instances, and an explicit CREDENTIAL_REFRESH_MODE wins on
// both.
func TestModeDefaultByExecutionModel(t *testing.T) {
	for _, tc := range []struct {
		initType, mode string
		want           config.Mode
		lmi            bool
	}{
		{"", "", config.ModeDeferred, false},
		{config.InitOnDemand, "", config.ModeDeferred, false},
		{config.InitSnapStart, "", config.ModeDeferred, false},
		{config.InitManagedInstances, "", config.ModeEager, true},
		{config.InitManagedInstances, "deferred", config.ModeDeferred, true},
		{config.InitOnDemand, "eager", config.ModeEager, false},
	} {
		c, err := config.Load(base(map[string]string{config.EnvRoleArn: testArn,
			config.EnvInitializationType: tc.initType, config.EnvMode: tc.mode}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Mode != tc.want || c.ManagedInstances() != tc.lmi || c.InitializationType != tc.initType {
			t.Errorf("%s=%q %s=%q: mode %s, managed instances %v; want %s, %v",
				config.EnvInitializationType, tc.initType, config.EnvMode, tc.mode, c.Mode, c.ManagedInstances(), tc.want, tc.lmi)
		}
	}
}

// TestChainsAndCredentialProcess: a role may assume from another configured
// role (SourceRole) and a role may come from a credential process; both
// are validated with every problem reported at once.
func TestChainsAndCredentialProcess(t *testing.T) {
	const hub, spoke = `"arn:aws:iam::111111111111:role/hub"`, `"arn:aws:iam::222222222222:role/spoke"`
	c, err := config.Load(base(map[string]string{
		config.EnvAssumeRole: `{"RoleArn":` + spoke + `,"SourceRole":"hub"}`,
		config.EnvRoles: `{"hub":{"RoleArn":` + hub + `,"SourceRole":"broker"},` +
			`"broker":{"CredentialProcess":["/opt/bin/broker","--role","x"]},"spoke2":{"RoleArn":` + spoke + `,"SourceRole":"default"}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Roles["default"]; r.SourceRole != "hub" || aws.ToString(r.RoleArn) != "arn:aws:iam::222222222222:role/spoke" {
		t.Errorf("default: %+v", r)
	}
	if r := c.Roles["broker"]; r.AssumeRoleInput != nil || strings.Join(r.CredentialProcess, " ") != "/opt/bin/broker --role x" {
		t.Errorf("broker: %+v", r)
	}
	if r := c.Roles["spoke2"]; r.SourceRole != "default" || aws.ToInt32(r.DurationSeconds) != 3600 {
		t.Errorf("spoke2: %+v", r)
	}
}

func TestChainAndProcessErrors(t *testing.T) {
	const arn = `"arn:aws:iam::123456789012:role/r"`
	link := func(src string) string { return `{"RoleArn":` + arn + `,"SourceRole":"` + src + `"}` }
	_, err := config.Load(base(map[string]string{
		config.EnvRoles: `{` +
			`"self":` + link("self") + `,` +
			`"a":` + link("b") + `,"b":` + link("a") + `,` +
			`"lost":` + link("nowhere") + `,` +
			`"l1":{"RoleArn":` + arn + `},"l2":` + link("l1") + `,"l3":` + link("l2") + `,"l4":` + link("l3") + `,"l5":` + link("l4") + `,"l6":` + link("l5") + `,` +
			`"both":{"RoleArn":` + arn + `,"CredentialProcess":["/bin/x"]},` +
			`"procsrc":{"CredentialProcess":["/bin/x"],"SourceRole":"l1"},` +
			`"relative":{"CredentialProcess":["broker","--x"]},` +
			`"empty":{"CredentialProcess":[]},` +
			`"extra":{"CredentialProcess":["/bin/x"],"DurationSeconds":900,"ExternalId":"abc"}}`,
	}))
	if err == nil {
		t.Fatal("Load accepted broken chains and processes")
	}
	msg := err.Error()
	for _, want := range []string{
		`CREDENTIAL_REFRESH_ROLES["self"].SourceRole: the roles form a cycle: self → self`,
		`the roles form a cycle: a → b → a`,
		`CREDENTIAL_REFRESH_ROLES["lost"].SourceRole: "nowhere" is not a configured role`,
		`CREDENTIAL_REFRESH_ROLES["l6"].SourceRole: the chain l6 → l5 → l4 → l3 → l2 → l1 holds 6 roles; at most 5`,
		`CREDENTIAL_REFRESH_ROLES["both"].RoleArn: a role takes either RoleArn (AssumeRole) or CredentialProcess, not both`,
		`CREDENTIAL_REFRESH_ROLES["procsrc"].SourceRole: a CredentialProcess role has no SourceRole`,
		`CREDENTIAL_REFRESH_ROLES["relative"].CredentialProcess[0]: "broker" must be the program's clean absolute path`,
		`CREDENTIAL_REFRESH_ROLES["empty"].CredentialProcess: is empty`,
		`CREDENTIAL_REFRESH_ROLES["extra"].DurationSeconds: applies to AssumeRole only`,
		`CREDENTIAL_REFRESH_ROLES["extra"].ExternalId: applies to AssumeRole only`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q", want)
		}
	}
	if n := strings.Count(msg, "form a cycle: a → b → a") + strings.Count(msg, "form a cycle: b → a → b"); n != 1 {
		t.Errorf("the a/b cycle is reported %d times, want once:\n%s", n, msg)
	}
	if strings.Contains(msg, `["l5"].SourceRole: the chain`) {
		t.Errorf("a chain of 5 roles is allowed:\n%s", msg)
	}
}
