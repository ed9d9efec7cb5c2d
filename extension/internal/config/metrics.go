package config

import (
	"errors"
	"slices"
	"strings"
)

// Variables of the CloudWatch metrics the extension writes to stdout in the
// Embedded Metric Format (README, "Metrics").
const (
	EnvMetrics           = "CREDENTIAL_REFRESH_METRICS"
	EnvMetricsNamespace  = "CREDENTIAL_REFRESH_METRICS_NAMESPACE"
	EnvMetricsDimensions = "CREDENTIAL_REFRESH_METRICS_DIMENSIONS"
)

// Defaults of the metrics variables.
const (
	DefaultMetricsNamespace  = "CredentialRefresh"
	DefaultMetricsDimensions = "FunctionName,Role"
)

// Dimensions the extension fills in itself. Role applies to the per-role
// metrics only (the per-environment ones leave it out).
const (
	DimensionFunctionName    = "FunctionName"
	DimensionFunctionVersion = "FunctionVersion"
	DimensionRole            = "Role"
	DimensionMode            = "Mode"
)

var builtinDimensions = []string{DimensionFunctionName, DimensionFunctionVersion, DimensionRole, DimensionMode}

// Names of the metrics and properties in the records (package metrics
// writes them): a fixed dimension may not take one.
const (
	MetricSTSLatency          = "STSLatency"          // Milliseconds, per refresh
	MetricRefreshes           = "Refreshes"           // Count, per refresh: 1
	MetricRefreshFailures     = "RefreshFailures"     // Count, per refresh: 0 or 1
	MetricCredentialsLifetime = "CredentialsLifetime" // Seconds, per successful refresh
	MetricLifeLeftAtRefresh   = "LifeLeftAtRefresh"   // Seconds, per refresh that replaces credentials
	MetricRequestsServed      = "RequestsServed"      // Count, per environment and flush
	MetricRequestsWaited      = "RequestsWaited"      // Count, per environment and flush
	PropertyOutcome           = "Outcome"             // "ok" or STS's error code
	PropertyRequestID         = "RequestId"           // STS's request id
	PropertyForced            = "Forced"              // a forced refresh (POST .../refresh)
)

var reservedNames = []string{MetricSTSLatency, MetricRefreshes, MetricRefreshFailures, MetricCredentialsLifetime,
	MetricLifeLeftAtRefresh, MetricRequestsServed, MetricRequestsWaited, PropertyOutcome, PropertyRequestID, PropertyForced, "_aws"}

// maxDimensions is CloudWatch's limit per metric.
const maxDimensions = 30

// Metrics is the metrics configuration.
type Metrics struct {
	Enabled   bool
	Namespace string
	// Dimensions in the order configured: a built-in (Value empty, filled
	// in when a record is written) or a fixed Name=Value.
	Dimensions []Dimension
	// What the built-ins are filled in from.
	FunctionName, FunctionVersion string
}

// Dimension is one CloudWatch dimension.
type Dimension struct{ Name, Value string }

// LoadMetrics reads and validates the metrics variables. Like Load, it
// returns every problem found, joined, each naming its variable; main joins
// them with Load's, so all bad values are reported together.
func LoadMetrics(getenv func(string) string) (Metrics, error) {
	l := &loader{getenv: getenv}
	m := Metrics{Enabled: true, Namespace: DefaultMetricsNamespace,
		FunctionName: l.get("AWS_LAMBDA_FUNCTION_NAME"), FunctionVersion: l.get("AWS_LAMBDA_FUNCTION_VERSION")}
	switch strings.ToLower(l.get(EnvMetrics)) {
	case "", "1", "true", "yes", "on":
	case "0", "false", "no", "off":
		m.Enabled = false
	default:
		l.fail(EnvMetrics, "%q is not a boolean; use true or false (false turns the metrics off)", l.get(EnvMetrics))
	}
	if v := l.get(EnvMetricsNamespace); v != "" {
		m.Namespace = v
		l.namespace(v)
	}
	dims := l.get(EnvMetricsDimensions)
	if dims == "" {
		dims = DefaultMetricsDimensions
	}
	m.Dimensions = l.dimensions(dims)
	return m, errors.Join(l.errs...)
}

// namespace follows CloudWatch's rules for a namespace.
func (l *loader) namespace(v string) {
	switch {
	case len(v) > 255:
		l.fail(EnvMetricsNamespace, "is %d characters long; CloudWatch allows 255", len(v))
	case strings.HasPrefix(v, "AWS/"):
		l.fail(EnvMetricsNamespace, "%q: namespaces starting with AWS/ are reserved for AWS services", v)
	case strings.IndexFunc(v, func(r rune) bool { return !namespaceRune(r) }) >= 0:
		l.fail(EnvMetricsNamespace, "%q: use letters, digits, spaces and . - _ / # : only", v)
	}
}

func namespaceRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" ._-/#:", r)
}

// dimensions parses "FunctionName,Role,Team=payments" ("none": no
// dimension at all).
func (l *loader) dimensions(v string) []Dimension {
	if strings.EqualFold(v, "none") {
		return nil
	}
	var out []Dimension
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		name, value, fixed := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case item == "":
			l.fail(EnvMetricsDimensions, "has an empty entry; use a comma-separated list such as %s,Team=payments", DefaultMetricsDimensions)
			continue
		case !fixed && !slices.Contains(builtinDimensions, name):
			l.fail(EnvMetricsDimensions, "%q is neither one of %s nor a Name=Value pair", name, strings.Join(builtinDimensions, ", "))
			continue
		case fixed && slices.Contains(builtinDimensions, name):
			l.fail(EnvMetricsDimensions, "%q is filled in by the extension; give it without a value", name)
			continue
		case fixed && slices.Contains(reservedNames, name):
			l.fail(EnvMetricsDimensions, "%q is the name of a metric or property the extension writes; pick another", name)
			continue
		case fixed && !dimensionText(name, 255):
			l.fail(EnvMetricsDimensions, "dimension name %q: use 1 to 255 printable ASCII characters, not starting with a colon", name)
			continue
		case fixed && !dimensionText(value, 1024):
			l.fail(EnvMetricsDimensions, "the value of %s: use 1 to 1024 printable ASCII characters", name)
			continue
		case slices.ContainsFunc(out, func(d Dimension) bool { return d.Name == name }):
			l.fail(EnvMetricsDimensions, "%q is given twice", name)
			continue
		}
		out = append(out, Dimension{Name: name, Value: value})
	}
	if len(out) > maxDimensions {
		l.fail(EnvMetricsDimensions, "has %d dimensions; CloudWatch allows %d", len(out), maxDimensions)
	}
	return out
}

func dimensionText(s string, most int) bool {
	if s == "" || len(s) > most || s[0] == ':' || strings.TrimSpace(s) == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
