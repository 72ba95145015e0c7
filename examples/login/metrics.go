package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/metrics/promgate"
)

// Metrics returns the demo's Prometheus metrics, on a registry of its own:
// hook counts the gate's events (set it as Config.OnEvent, or call it from
// the application's own hook; see captchagate.EventHooks), and handler serves them
// with the Go runtime's and the process's metrics.
func Metrics() (hook func(captchagate.Event), handler http.Handler, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := promgate.New(reg)
	if err != nil {
		return nil, nil, err
	}
	return m.Observe, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// WithMetrics serves metrics at GET /metrics and everything else with app.
// The demo serves them on its one address; a deployment serves them where
// only its Prometheus can reach (another listener, or behind
// authentication): the counts say which policies trip and how often.
func WithMetrics(app, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", app)
	return mux
}
