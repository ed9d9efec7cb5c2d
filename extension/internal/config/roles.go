package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// AssumeRole mirrors the fields of STS AssumeRole that make sense for a
// long-running extension, with STS's own names: the JSON a user writes is
// exactly boto3-refresh-session's assume_role_kwargs.
type AssumeRole struct {
	RoleArn           string
	RoleSessionName   string
	DurationSeconds   *int32
	ExternalId        *string //nolint:revive // STS's field name, on purpose
	Policy            *string
	PolicyArns        []PolicyArn
	Tags              []Tag
	TransitiveTagKeys []string
	SourceIdentity    *string
	ProvidedContexts  []ProvidedContext
	// SourceRole names another configured role whose credentials sign this
	// role's AssumeRole: a link of a role chain (hub → spoke). Empty: the
	// execution role's credentials.
	SourceRole string
	// CredentialProcess is the argv of a program that prints AWS's
	// credential_process JSON; such a role has no RoleArn.
	CredentialProcess []string
}

// Role is one configured role and where its credentials come from.
type Role struct {
	// The STS AssumeRole input; nil for a credential-process role.
	*sts.AssumeRoleInput
	// SourceRole is the configured role whose credentials sign the
	// AssumeRole; empty for the execution role's.
	SourceRole string
	// CredentialProcess is the program and its arguments, for a
	// credential-process role.
	CredentialProcess []string
}

// MaxChainLinks is how many roles a chain may hold, its root included.
const MaxChainLinks = 5

// Limits on a CredentialProcess argv.
const (
	maxProcessArgs   = 64
	maxProcessArgLen = 4096
)

// PolicyArn is STS's PolicyDescriptorType.
type PolicyArn struct{ Arn string }

// Tag is an STS session tag.
type Tag struct{ Key, Value string }

// ProvidedContext is STS's ProvidedContext.
type ProvidedContext struct{ ProviderArn, ContextAssertion string }

var (
	roleArnPattern     = lazy(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	policyArnPattern   = lazy(`^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$`)
	sessionNamePattern = lazy(`^[\w+=,.@-]{2,64}$`)
	externalIDPattern  = lazy(`^[\w+=,.@:/-]+$`)
	sessionNameInvalid = lazy(`[^\w+=,.@-]`)
	tagTextPattern     = lazy(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// roles assembles the default role (from the flat variables and/or
// CREDENTIAL_REFRESH_ASSUME_ROLE) and the named roles.
func (l *loader) roles() map[string]*Role {
	shortOK := l.boolean(EnvAllowShortDurations)
	defDuration := l.defaultDuration(shortOK)
	defSession := SessionNameFrom(l.get("AWS_LAMBDA_FUNCTION_NAME"))
	out := map[string]*Role{}

	if def, src, ok := l.defaultRole(); ok {
		out[DefaultRoleName] = l.finish(EnvAssumeRole, src, def, defDuration, defSession, shortOK)
	}
	for name, r := range l.namedRoles() {
		out[name] = l.finish(fmt.Sprintf("%s[%q]", EnvRoles, name), nil, r, defDuration, defSession, shortOK)
	}
	if len(out) == 0 && !l.hasRoleErrors() {
		l.fail(EnvRoleArn, "no role configured: set %s, %s or %s", EnvRoleArn, EnvAssumeRole, EnvRoles)
	}
	l.chains(out)
	return out
}

// roleVar is the variable a role is configured in, for error messages.
func roleVar(name string) string {
	if name == DefaultRoleName {
		return EnvAssumeRole
	}
	return fmt.Sprintf("%s[%q]", EnvRoles, name)
}

func (l *loader) hasRoleErrors() bool {
	for _, err := range l.errs {
		if fe, ok := err.(*FieldError); ok && (strings.HasPrefix(fe.Var, EnvAssumeRole) || strings.HasPrefix(fe.Var, EnvRoles)) {
			return true
		}
	}
	return false
}

func (l *loader) defaultDuration(shortOK bool) int32 {
	v := l.get(EnvDurationSeconds)
	if v == "" {
		return DefaultDurationSeconds
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		l.fail(EnvDurationSeconds, "%q is not a whole number of seconds", v)
		return DefaultDurationSeconds
	}
	if msg := durationProblem(int32(n), shortOK); msg != "" {
		l.fail(EnvDurationSeconds, "%s", msg)
		return DefaultDurationSeconds
	}
	return int32(n)
}

// durationProblem explains why STS would refuse d, or returns "".
func durationProblem(d int32, shortOK bool) string {
	minimum := int32(900)
	if shortOK {
		minimum = 1
	}
	switch {
	case d < minimum:
		return fmt.Sprintf("%d is below STS's minimum of 900 seconds (set %s=true only against an emulator such as moto)", d, EnvAllowShortDurations)
	case d > 43200:
		return fmt.Sprintf("%d is above STS's maximum of 43200 seconds", d)
	case d > RoleChainingMaxSeconds:
		return fmt.Sprintf("%d exceeds the 1 hour session limit for roles assumed by role chaining: "+
			"inside Lambda the caller is the execution role, so every AssumeRole is role chaining and STS caps DurationSeconds at %d",
			d, RoleChainingMaxSeconds)
	}
	return ""
}

// defaultRole merges the flat variables into CREDENTIAL_REFRESH_ASSUME_ROLE.
// Setting one field in both places is an error, not a silent override.
func (l *loader) defaultRole() (AssumeRole, map[string]string, bool) {
	var r AssumeRole
	// src maps a field set by a flat variable to that variable, so errors
	// name what the user actually wrote.
	src := map[string]string{}
	js := l.get(EnvAssumeRole)
	jsonOK := true
	if js != "" {
		if err := decodeStrict(js, &r); err != nil {
			// Keep going: the flat variables are still checked, so every
			// error is reported in one go.
			l.fail(EnvAssumeRole, "%v", err)
			r, jsonOK = AssumeRole{}, false
		}
	}
	set := func(env string, field *string, jsonName string) {
		v := l.get(env)
		if v == "" {
			return
		}
		if *field != "" && *field != v {
			l.fail(env, "conflicts with %s.%s; set it in one place", EnvAssumeRole, jsonName)
		}
		*field, src[jsonName] = v, env
	}
	set(EnvRoleArn, &r.RoleArn, "RoleArn")
	set(EnvRoleSessionName, &r.RoleSessionName, "RoleSessionName")
	if v := l.get(EnvExternalID); v != "" {
		if r.ExternalId != nil && *r.ExternalId != v {
			l.fail(EnvExternalID, "conflicts with %s.ExternalId; set it in one place", EnvAssumeRole)
		}
		r.ExternalId, src["ExternalId"] = aws.String(v), EnvExternalID
	}
	if v := l.get(EnvDurationSeconds); v != "" && r.DurationSeconds != nil && strconv.Itoa(int(*r.DurationSeconds)) != v {
		l.fail(EnvDurationSeconds, "conflicts with %s.DurationSeconds; set it in one place", EnvAssumeRole)
	}
	if js == "" && r.RoleArn == "" && (r.RoleSessionName != "" || r.ExternalId != nil) {
		l.fail(EnvRoleArn, "is required when %s or %s is set", EnvRoleSessionName, EnvExternalID)
	}
	if !jsonOK && r.RoleArn == "" {
		return r, src, false // the JSON error says it all
	}
	return r, src, js != "" || r.RoleArn != ""
}

func (l *loader) namedRoles() map[string]AssumeRole {
	js := l.get(EnvRoles)
	if js == "" {
		return nil
	}
	var m map[string]AssumeRole
	if err := decodeStrict(js, &m); err != nil {
		l.fail(EnvRoles, "%v (want a JSON object {\"name\": {\"RoleArn\": ...}})", err)
		return nil
	}
	for _, name := range duplicateKeys(js) {
		l.fail(EnvRoles, "role name %q appears more than once", name)
	}
	if len(m) == 0 {
		l.fail(EnvRoles, "is an empty object; remove it or name at least one role")
	}
	for name := range m {
		if err := contract.CheckRoleName(name); err != nil {
			l.fail(EnvRoles, "%v", err)
			delete(m, name)
		} else if name == DefaultRoleName {
			l.fail(EnvRoles, "role name %q is reserved for the default role; use %s for it", name, EnvAssumeRole)
			delete(m, name)
		}
	}
	return m
}

// duplicateKeys lists the keys that appear more than once in a top-level
// JSON object: encoding/json would silently keep the last one.
func duplicateKeys(js string) []string {
	dec := json.NewDecoder(strings.NewReader(js))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen, dups := map[string]bool{}, []string(nil)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return dups
		}
		key, _ := t.(string)
		if seen[key] {
			dups = append(dups, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return dups
		}
	}
	return dups
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(js string, v any) error {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("invalid JSON: unexpected data after the object")
	}
	return nil
}

// finish applies defaults, validates every field and converts to the SDK type.
// v names the JSON variable; src names the flat variables that set fields.
func (l *loader) finish(v string, src map[string]string, r AssumeRole, defDuration int32, defSession string, shortOK bool) *Role {
	if r.CredentialProcess != nil {
		for _, p := range r.processProblems() {
			l.fail(v+"."+p.field, "%s", p.msg)
		}
		return &Role{CredentialProcess: r.CredentialProcess}
	}
	if r.RoleSessionName == "" {
		r.RoleSessionName = defSession
	}
	if r.DurationSeconds == nil {
		r.DurationSeconds = aws.Int32(defDuration)
	} else if msg := durationProblem(*r.DurationSeconds, shortOK); msg != "" {
		l.fail(v+".DurationSeconds", "%s", msg)
	}
	for _, p := range r.problems() {
		name := v + "." + p.field
		if flat, ok := src[p.field]; ok {
			name = flat
		}
		l.fail(name, "%s", p.msg)
	}
	return &Role{AssumeRoleInput: r.input(), SourceRole: r.SourceRole}
}

// processProblems checks a credential-process role: an argv of an
// absolute program path, and none of AssumeRole's fields.
func (r *AssumeRole) processProblems() []problem {
	var ps []problem
	add := func(f, format string, args ...any) { ps = append(ps, problem{f, fmt.Sprintf(format, args...)}) }
	argv := r.CredentialProcess
	switch {
	case len(argv) == 0:
		add("CredentialProcess", "is empty; give the program and its arguments, e.g. [\"/opt/bin/broker\", \"--role\", \"x\"]")
	case !filepath.IsAbs(argv[0]) || filepath.Clean(argv[0]) != argv[0]:
		add("CredentialProcess[0]", "%q must be the program's clean absolute path (it is run directly, never through a shell)", argv[0])
	case len(argv) > maxProcessArgs:
		add("CredentialProcess", "has %d entries; at most %d", len(argv), maxProcessArgs)
	}
	for i, a := range argv {
		if len(a) > maxProcessArgLen || strings.ContainsRune(a, 0) {
			add(fmt.Sprintf("CredentialProcess[%d]", i), "must be at most %d bytes, with no NUL", maxProcessArgLen)
		}
	}
	if r.RoleArn != "" {
		add("RoleArn", "a role takes either RoleArn (AssumeRole) or CredentialProcess, not both")
	}
	if r.SourceRole != "" {
		add("SourceRole", "a CredentialProcess role has no SourceRole: its program makes its own credentials")
	}
	for field, set := range map[string]bool{"RoleSessionName": r.RoleSessionName != "", "DurationSeconds": r.DurationSeconds != nil,
		"ExternalId": r.ExternalId != nil, "Policy": r.Policy != nil, "PolicyArns": r.PolicyArns != nil, "Tags": r.Tags != nil,
		"TransitiveTagKeys": r.TransitiveTagKeys != nil, "SourceIdentity": r.SourceIdentity != nil, "ProvidedContexts": r.ProvidedContexts != nil} {
		if set {
			add(field, "applies to AssumeRole only, not to a CredentialProcess role")
		}
	}
	slices.SortFunc(ps, func(a, b problem) int { return strings.Compare(a.field, b.field) })
	return ps
}

// chains checks every SourceRole: it names a configured role, follows no
// cycle, and no chain holds more than MaxChainLinks roles.
func (l *loader) chains(roles map[string]*Role) {
	names := slices.Sorted(maps.Keys(roles))
	cycles := map[string]bool{}
	for _, name := range names {
		r := roles[name]
		if r.SourceRole == "" {
			continue
		}
		if _, ok := roles[r.SourceRole]; !ok {
			l.fail(roleVar(name)+".SourceRole", "%q is not a configured role (configured: %s)", r.SourceRole, strings.Join(names, ", "))
			continue
		}
		path := []string{name}
		for cur := r.SourceRole; cur != ""; cur = roles[cur].SourceRole {
			if i := slices.Index(path, cur); i >= 0 {
				cycle := path[i:]
				if key := cycleKey(cycle); !cycles[key] {
					cycles[key] = true
					l.fail(roleVar(name)+".SourceRole", "the roles form a cycle: %s → %s", strings.Join(path, " → "), cur)
				}
				break
			}
			path = append(path, cur)
			if roles[cur] == nil {
				break // an unknown source, reported for its own role
			}
		}
		if len(path) > MaxChainLinks && roles[path[len(path)-1]] != nil && roles[path[len(path)-1]].SourceRole == "" {
			l.fail(roleVar(name)+".SourceRole", "the chain %s holds %d roles; at most %d", strings.Join(path, " → "), len(path), MaxChainLinks)
		}
	}
}

// cycleKey names a cycle whatever role it was found from.
func cycleKey(cycle []string) string {
	c := slices.Clone(cycle)
	slices.Sort(c)
	return strings.Join(c, "\x00")
}

type problem struct{ field, msg string }

func (r *AssumeRole) problems() []problem {
	var ps []problem
	add := func(f, format string, args ...any) { ps = append(ps, problem{f, fmt.Sprintf(format, args...)}) }
	if !roleArnPattern.MatchString(r.RoleArn) {
		add("RoleArn", "%q is not an IAM role ARN such as arn:aws:iam::123456789012:role/my-role", r.RoleArn)
	}
	if !sessionNamePattern.MatchString(r.RoleSessionName) {
		add("RoleSessionName", "%q must be 2-64 characters of letters, digits and +=,.@_-", r.RoleSessionName)
	}
	if r.ExternalId != nil && (len(*r.ExternalId) < 2 || len(*r.ExternalId) > 1224 || !externalIDPattern.MatchString(*r.ExternalId)) {
		add("ExternalId", "must be 2-1224 characters of letters, digits and +=,.@:/_-")
	}
	if r.SourceIdentity != nil && !sessionNamePattern.MatchString(*r.SourceIdentity) {
		add("SourceIdentity", "must be 2-64 characters of letters, digits and +=,.@_-")
	}
	if r.Policy != nil {
		ps = append(ps, policyProblems(*r.Policy)...)
	}
	ps = append(ps, r.listProblems()...)
	return ps
}

func policyProblems(p string) []problem {
	var doc map[string]any
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return []problem{{"Policy", "is not a JSON policy document: " + err.Error()}}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(p)); err == nil && compact.Len() > 2048 {
		return []problem{{"Policy", fmt.Sprintf("is %d characters without whitespace; STS allows 2048", compact.Len())}}
	}
	return nil
}

func (r *AssumeRole) listProblems() []problem {
	var ps []problem
	add := func(f, format string, args ...any) { ps = append(ps, problem{f, fmt.Sprintf(format, args...)}) }
	if len(r.PolicyArns) > 10 {
		add("PolicyArns", "has %d entries; STS allows 10", len(r.PolicyArns))
	}
	for i, p := range r.PolicyArns {
		if !policyArnPattern.MatchString(p.Arn) {
			add(fmt.Sprintf("PolicyArns[%d].Arn", i), "%q is not an IAM policy ARN", p.Arn)
		}
	}
	if len(r.Tags) > 50 {
		add("Tags", "has %d entries; STS allows 50", len(r.Tags))
	}
	keys := map[string]bool{}
	for i, t := range r.Tags {
		if len(t.Key) < 1 || len(t.Key) > 128 || len(t.Value) > 256 {
			add(fmt.Sprintf("Tags[%d]", i), "keys are 1-128 and values 0-256 characters")
		}
		if !tagTextPattern.MatchString(t.Key) || !tagTextPattern.MatchString(t.Value) {
			add(fmt.Sprintf("Tags[%d]", i), "keys and values may hold letters, digits, spaces and _.:/=+-@ only")
		}
		if keys[strings.ToLower(t.Key)] {
			add(fmt.Sprintf("Tags[%d].Key", i), "%q is repeated (tag keys are case-insensitive)", t.Key)
		}
		keys[strings.ToLower(t.Key)] = true
	}
	if len(r.TransitiveTagKeys) > 50 {
		add("TransitiveTagKeys", "has %d entries; STS allows 50", len(r.TransitiveTagKeys))
	}
	if len(r.ProvidedContexts) > 5 {
		add("ProvidedContexts", "has %d entries; STS allows 5", len(r.ProvidedContexts))
	}
	for i, c := range r.ProvidedContexts {
		if c.ProviderArn == "" || c.ContextAssertion == "" {
			add(fmt.Sprintf("ProvidedContexts[%d]", i), "needs both ProviderArn and ContextAssertion")
		}
	}
	return ps
}

// input converts to the SDK's request type.
func (r *AssumeRole) input() *sts.AssumeRoleInput {
	in := &sts.AssumeRoleInput{
		RoleArn:           aws.String(r.RoleArn),
		RoleSessionName:   aws.String(r.RoleSessionName),
		DurationSeconds:   r.DurationSeconds,
		ExternalId:        r.ExternalId,
		Policy:            r.Policy,
		TransitiveTagKeys: r.TransitiveTagKeys,
		SourceIdentity:    r.SourceIdentity,
	}
	for _, p := range r.PolicyArns {
		in.PolicyArns = append(in.PolicyArns, types.PolicyDescriptorType{Arn: aws.String(p.Arn)})
	}
	for _, t := range r.Tags {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	for _, c := range r.ProvidedContexts {
		in.ProvidedContexts = append(in.ProvidedContexts, types.ProvidedContext{
			ProviderArn: aws.String(c.ProviderArn), ContextAssertion: aws.String(c.ContextAssertion)})
	}
	return in
}

// SessionNameFrom derives a valid RoleSessionName from a function name:
// characters STS refuses become '-', and the result is cut to 64.
func SessionNameFrom(functionName string) string {
	s := sessionNameInvalid.ReplaceAllString(functionName, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	if len(s) < 2 {
		return "credential-refresh"
	}
	return s
}
