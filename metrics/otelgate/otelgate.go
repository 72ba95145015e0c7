// Package otelgate counts a captchagate Gate's events with an OpenTelemetry
// Int64Counter, through the gate's event hook (captchagate.Config.OnEvent):
//
//	m, err := otelgate.New(meterProvider) // a metric.MeterProvider of your choosing
//	gate, err := captchagate.New(captchagate.Config{OnEvent: m.Observe})
//
// One counter, captchagate.events (unit {event}), with the attributes
// policy (the policy's name), key (the key's name, such as
// "json:username", on the lockout events tripped, ceiling and dry_run),
// outcome (captchagate.Event.Outcome: tripped, ceiling, issued, refreshed,
// solved, wrong, expired, refused, token_accepted, token_refused,
// store_error, verifier_error, render_error, internal_error, dry_run) and
// mode (image, audio, slider, pow, hosted or a custom challenge's mode, on
// captcha events). An attribute whose value would be empty is left out.
// They are the labels of package promgate's captchagate_events_total, which
// is the name OpenTelemetry's Prometheus exporter gives this counter, so
// one set of queries serves both. Every attribute takes its values from the
// application's configuration or from fixed sets, so the number of series
// is bounded whatever clients send. Event.Value (which account, number or
// address a lockout is about) is never an attribute: it is unbounded, and
// with Config.RawEventValues it is the account itself.
//
// The solve rate per mode, which OWASP advises watching, is the count of
// outcome "solved" over that of "solved", "wrong" and "expired", by mode;
// docs/metrics.md has the queries and alerting ideas.
package otelgate

import (
	"context"
	"errors"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/captchagate/captchagate"
)

// ScopeName is the instrumentation scope of the meter New creates.
const ScopeName = "github.com/captchagate/captchagate/metrics/otelgate"

// Metrics holds the counter a gate's events are counted in. Its Observe
// method is the hook; it is safe for concurrent use.
type Metrics struct {
	events metric.Int64Counter
	sets   sync.Map // labels → metric.MeasurementOption: one attribute set per series, built once
}

// labels are one series' attribute values.
type labels struct{ policy, key, outcome, mode string }

// New returns Metrics counting on a meter of mp, which must not be nil:
// pass otel.GetMeterProvider() to use the global one.
func New(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		return nil, errors.New("otelgate: New needs a metric.MeterProvider (otel.GetMeterProvider() for the global one)")
	}
	events, err := mp.Meter(ScopeName).Int64Counter("captchagate.events",
		metric.WithUnit("{event}"),
		metric.WithDescription("Events of captchagate gates, by policy, key name (lockouts only), outcome and challenge mode (captcha events only)."))
	if err != nil {
		return nil, err
	}
	return &Metrics{events: events}, nil
}

// Observe counts e, in the context of e's request when it has one. Use it
// as captchagate.Config.OnEvent, or call it from the application's own hook
// (see captchagate.EventHooks). It never reads e.Value.
func (m *Metrics) Observe(e captchagate.Event) {
	ctx := context.Background()
	if e.Request != nil {
		ctx = e.Request.Context()
	}
	m.events.Add(ctx, 1, m.attributes(labels{e.Policy, e.Key, e.Outcome(), e.Mode}))
}

// attributes returns the attribute set of l, built on its first use.
func (m *Metrics) attributes(l labels) metric.MeasurementOption {
	if o, ok := m.sets.Load(l); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := make([]attribute.KeyValue, 0, 4)
	for _, a := range [...]struct{ name, value string }{{"policy", l.policy}, {"key", l.key}, {"outcome", l.outcome}, {"mode", l.mode}} {
		if a.value != "" {
			kvs = append(kvs, attribute.String(a.name, strings.ToValidUTF8(a.value, "\uFFFD")))
		}
	}
	o, _ := m.sets.LoadOrStore(l, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}
