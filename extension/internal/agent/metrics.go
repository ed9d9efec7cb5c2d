package agent

// stopMetrics ends the metrics' ticker and writes what is left: the last
// records, once the server has stopped, so the counts are final. Called
// once, by stop.
func (a *agent) stopMetrics() {
	select {
	case <-a.metricsDone:
	default:
		close(a.metricsDone)
	}
	a.o.Metrics.Flush()
}
