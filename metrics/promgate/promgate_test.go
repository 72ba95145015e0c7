package promgate_test

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/eventflow"
	"github.com/captchagate/captchagate/metrics/promgate"
)

// newApp is the scenario's App counting on a registry of its own, served at
// GET /metrics, with Config.RawEventValues set to raw, on store (the
// in-memory store if nil).
func newApp(t *testing.T, raw bool, store captchagate.Store) *eventflow.App {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := promgate.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return eventflow.Start(t, eventflow.Options{
		Observe:        m.Observe,
		RawEventValues: raw,
		Store:          store,
		Mount: func(mux *http.ServeMux) {
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		},
	})
}

// scrape reads /metrics over HTTP and returns its raw text and the value of
// each captchagate_events_total series, keyed by eventflow.Series.
func scrape(t *testing.T, a *eventflow.App) (string, map[string]float64) {
	t.Helper()
	text := a.Get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	got := map[string]float64{}
	if f := families["captchagate_events_total"]; f != nil {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[eventflow.Series(l["policy"], l["key"], l["outcome"], l["mode"])] = m.GetCounter().GetValue()
		}
	}
	return string(text), got
}

// Every outcome of the flow is counted once, by policy, key name (lockouts
// only) and mode (captcha events only), and nothing else is: the
// exposition scraped over HTTP has exactly the series the scenario makes.
func TestCountsEveryOutcome(t *testing.T) {
	t.Parallel()
	a := newApp(t, false, nil)
	want := a.Run(t)
	_, got := scrape(t, a)
	if !maps.Equal(got, want) {
		t.Errorf("captchagate_events_total:\n got %s\nwant %s", eventflow.Dump(got), eventflow.Dump(want))
	}
}

// The metrics never show which account, number or address a lockout was
// about: neither the keyed hash in Event.Value, nor with
// Config.RawEventValues the value itself, nor the spellings clients sent.
func TestNoValueInExposition(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("RawEventValues=%v", raw), func(t *testing.T) {
			t.Parallel()
			a := newApp(t, raw, nil)
			a.Run(t)
			text, got := scrape(t, a)
			if len(got) == 0 {
				t.Fatal("nothing counted")
			}
			a.AssertNoValue(t, text, "the exposition")
		})
	}
}

// New takes the registry it is given, never the global one by default, and
// says so when it cannot register.
func TestNewRegisters(t *testing.T) {
	t.Parallel()
	if _, err := promgate.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := promgate.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := promgate.New(reg); err == nil {
		t.Error("a second New on one registry succeeded")
	}
}

// A label that is not UTF-8 (a custom challenge's mode, a policy's name)
// is counted with its bad bytes replaced: the hook never panics mid-request.
func TestObserveInvalidUTF8(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := promgate.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(captchagate.Event{Kind: captchagate.EventCaptchaIssued, Policy: "log\xffin", Mode: "\xfe"})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || len(families[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v", families)
	}
	for _, l := range families[0].GetMetric()[0].GetLabel() {
		if want := map[string]string{"policy": "log\uFFFDin", "mode": "\uFFFD", "outcome": "issued", "key": ""}[l.GetName()]; l.GetValue() != want {
			t.Errorf("label %s = %q, want %q", l.GetName(), l.GetValue(), want)
		}
	}
}

// A failing store is counted as store_error, once per failed operation: the
// login's two counters of the account's key (failures and the failure
// ceiling), then, the key tripped under FailClosed, the client's captcha
// creation budget, charged for the login's captcha; the request gets 503.
func TestCountsStoreErrors(t *testing.T) {
	t.Parallel()
	a := newApp(t, false, eventflow.FailingStore{})
	eventflow.Expect(t, http.StatusServiceUnavailable, a.Login(t), "a login with the store down")
	_, got := scrape(t, a)
	want := map[string]float64{eventflow.Series("login", "", "store_error", ""): 3}
	if !maps.Equal(got, want) {
		t.Errorf("got %s\nwant %s", eventflow.Dump(got), eventflow.Dump(want))
	}
}
