package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
)

func TestLoadMetricsDefaults(t *testing.T) {
	m, err := config.LoadMetrics(base(map[string]string{"AWS_LAMBDA_FUNCTION_VERSION": "7"}))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Enabled || m.Namespace != "CredentialRefresh" || m.FunctionName != "my-func" || m.FunctionVersion != "7" ||
		len(m.Dimensions) != 2 || m.Dimensions[0] != (config.Dimension{Name: "FunctionName"}) || m.Dimensions[1] != (config.Dimension{Name: "Role"}) {
		t.Errorf("defaults: %+v", m)
	}
}

func TestLoadMetrics(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want func(config.Metrics) bool
	}{
		{"off", map[string]string{config.EnvMetrics: "false"}, func(m config.Metrics) bool { return !m.Enabled }},
		{"on", map[string]string{config.EnvMetrics: "TRUE"}, func(m config.Metrics) bool { return m.Enabled }},
		{"namespace", map[string]string{config.EnvMetricsNamespace: "Team/Creds #1"}, func(m config.Metrics) bool { return m.Namespace == "Team/Creds #1" }},
		{"fixed dimension", map[string]string{config.EnvMetricsDimensions: "Role, Team = payments ,Mode"}, func(m config.Metrics) bool {
			return len(m.Dimensions) == 3 && m.Dimensions[1] == config.Dimension{Name: "Team", Value: "payments"} && m.Dimensions[2].Name == "Mode"
		}},
		{"none", map[string]string{config.EnvMetricsDimensions: "none"}, func(m config.Metrics) bool { return len(m.Dimensions) == 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := config.LoadMetrics(base(tc.env))
			if err != nil || !tc.want(m) {
				t.Errorf("%+v, %v", m, err)
			}
		})
	}
}

// TestLoadMetricsErrors: every bad value is reported, together, each
// naming its variable.
func TestLoadMetricsErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"all at once", map[string]string{config.EnvMetrics: "maybe", config.EnvMetricsNamespace: "AWS/Lambda",
			config.EnvMetricsDimensions: "FunctionName,Region,Role=x"},
			[]string{config.EnvMetrics + `: "maybe" is not a boolean`, config.EnvMetricsNamespace + `: "AWS/Lambda"`,
				config.EnvMetricsDimensions + `: "Region" is neither`, config.EnvMetricsDimensions + `: "Role" is filled in`}},
		{"namespace charset", map[string]string{config.EnvMetricsNamespace: "a|b"}, []string{config.EnvMetricsNamespace + `: "a|b": use letters`}},
		{"namespace length", map[string]string{config.EnvMetricsNamespace: strings.Repeat("n", 256)}, []string{"255"}},
		{"empty entry", map[string]string{config.EnvMetricsDimensions: "Role,,Mode"}, []string{"empty entry"}},
		{"twice", map[string]string{config.EnvMetricsDimensions: "Role,Role"}, []string{`"Role" is given twice`}},
		{"bad value", map[string]string{config.EnvMetricsDimensions: "Team=\x01"}, []string{"the value of Team"}},
		{"bad name", map[string]string{config.EnvMetricsDimensions: ":x=1"}, []string{`dimension name ":x"`}},
		{"reserved name", map[string]string{config.EnvMetricsDimensions: "STSLatency=1"}, []string{`"STSLatency" is the name of a metric`}},
		{"too many", map[string]string{config.EnvMetricsDimensions: dims(31)}, []string{"has 31 dimensions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadMetrics(base(tc.env))
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want FieldErrors", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func dims(n int) string {
	var b []string
	for i := range n {
		b = append(b, "D"+strings.Repeat("x", i+1)+"=v")
	}
	return strings.Join(b, ",")
}
