// Package promgate counts a captchagate Gate's events in Prometheus
// counters, through the gate's event hook (captchagate.Config.OnEvent):
//
//	m, err := promgate.New(registry) // a prometheus.Registerer of your choosing
//	gate, err := captchagate.New(captchagate.Config{OnEvent: m.Observe})
//	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
//
// One counter, captchagate_events_total, with the labels policy (the
// policy's name), key (the key's name, such as "json:username", for the
// lockout events tripped, ceiling and dry_run; empty otherwise), outcome
// (captchagate.Event.Outcome: tripped, ceiling, issued, refreshed, solved,
// wrong, expired, refused, token_accepted, token_refused, store_error,
// verifier_error, render_error, internal_error, dry_run) and mode (image,
// audio, slider, pow, hosted or a custom challenge's mode, for captcha
// events; empty otherwise). Every label takes its values from the
// application's configuration or from fixed sets, so the number of series
// is bounded whatever clients send. Event.Value (which account, number or
// address a lockout is about) is never a label: it is unbounded, and with
// Config.RawEventValues it is the account itself.
//
// The solve rate per mode, which OWASP advises watching (a rate near 100%
// on a captcha humans often fail hints at a solving service):
//
//	sum by (mode) (rate(captchagate_events_total{outcome="solved"}[1h]))
//	  / sum by (mode) (rate(captchagate_events_total{outcome=~"solved|wrong|expired"}[1h]))
//
// docs/metrics.md has more queries and alerting ideas.
package promgate

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/captchagate/captchagate"
)

// Metrics holds the counters a gate's events are counted in. Its Observe
// method is the hook; it is safe for concurrent use.
type Metrics struct {
	events *prometheus.CounterVec
}

// Labels of captchagate_events_total, in this order.
var labels = []string{"policy", "key", "outcome", "mode"}

// New returns Metrics whose counters are registered with reg, which must
// not be nil: pass prometheus.DefaultRegisterer to use the global registry.
// It fails when reg refuses them (already registered, for instance: create
// one Metrics per registry and share it between gates).
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("promgate: New needs a prometheus.Registerer (prometheus.DefaultRegisterer for the global one)")
	}
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "captchagate_events_total",
			Help: "Events of captchagate gates, by policy, key name (lockouts only), outcome and challenge mode (captcha events only).",
		}, labels),
	}
	if err := reg.Register(m.events); err != nil {
		return nil, err
	}
	return m, nil
}

// Observe counts e. Use it as captchagate.Config.OnEvent, or call it from
// the application's own hook (see captchagate.EventHooks). It never reads e.Value.
func (m *Metrics) Observe(e captchagate.Event) {
	// Label values must be UTF-8 (WithLabelValues panics otherwise): names
	// come from the configuration, but a hook must never panic mid-request.
	m.events.WithLabelValues(valid(e.Policy), valid(e.Key), e.Outcome(), valid(e.Mode)).Inc()
}

func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
