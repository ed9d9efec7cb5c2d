package metrics

import (
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/config"
	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/creds"
)

// metric is one entry of an EMF directive's Metrics.
type metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// directive is the EMF "_aws" member.
type directive struct {
	Timestamp         int64           `json:"Timestamp"`
	CloudWatchMetrics []metricsTarget `json:"CloudWatchMetrics"`
}

type metricsTarget struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []metric   `json:"Metrics"`
}

// record builds an EMF record: the dimensions' values and the metrics'
// values at the root, described by the _aws directive.
func (e *Emitter) record(at time.Time, role string, values []value, props map[string]any) map[string]any {
	rec := map[string]any{}
	dims := []string{}
	for _, d := range e.cfg.Dimensions {
		v := d.Value
		switch d.Name {
		case config.DimensionFunctionName:
			v = e.cfg.FunctionName
		case config.DimensionFunctionVersion:
			v = e.cfg.FunctionVersion
		case config.DimensionMode:
			v = e.mode
		case config.DimensionRole:
			v = role
		}
		if v == "" { // outside Lambda, or Role in a per-environment record
			continue
		}
		rec[d.Name] = v
		dims = append(dims, d.Name)
	}
	var ms []metric
	for _, v := range values {
		rec[v.name] = v.v
		ms = append(ms, metric{Name: v.name, Unit: v.unit})
	}
	for k, v := range props {
		rec[k] = v
	}
	rec["_aws"] = directive{Timestamp: at.UnixMilli(), CloudWatchMetrics: []metricsTarget{{
		Namespace: e.cfg.Namespace, Dimensions: [][]string{dims}, Metrics: ms}}}
	return rec
}

type value struct {
	name, unit string
	v          float64
}

// refreshRecord is one call to a role's source.
func (e *Emitter) refreshRecord(a creds.Attempt) map[string]any {
	failed, outcome := 0.0, "ok"
	if a.Err != nil {
		failed, outcome = 1, a.Err.Code
	}
	values := []value{
		{config.MetricSTSLatency, "Milliseconds", float64(a.Took) / float64(time.Millisecond)},
		{config.MetricRefreshes, "Count", 1},
		{config.MetricRefreshFailures, "Count", failed},
	}
	if a.Err == nil {
		values = append(values, value{config.MetricCredentialsLifetime, "Seconds", a.Lifetime.Seconds()})
	}
	if a.LeftAtStart > 0 {
		values = append(values, value{config.MetricLifeLeftAtRefresh, "Seconds", a.LeftAtStart.Seconds()})
	}
	props := map[string]any{config.PropertyOutcome: outcome, config.PropertyForced: a.Forced}
	if a.RequestID != "" {
		props[config.PropertyRequestID] = a.RequestID
	}
	return e.record(a.Started, a.Role, values, props)
}

// environmentRecord is the requests since the last flush, all roles, and
// how many refresh records did not fit between two flushes.
func (e *Emitter) environmentRecord(at time.Time, served, waited int64, dropped int) map[string]any {
	var props map[string]any
	if dropped > 0 {
		props = map[string]any{"DroppedRefreshRecords": dropped}
	}
	return e.record(at, "", []value{
		{config.MetricRequestsServed, "Count", float64(served)},
		{config.MetricRequestsWaited, "Count", float64(waited)},
	}, props)
}
