package otelgate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/eventflow"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/metrics/otelgate"
)

// newApp is the scenario's App counting on a meter provider with a
// ManualReader, which it returns, with Config.RawEventValues set to raw, on
// store (the in-memory store if nil).
func newApp(t *testing.T, raw bool, store captchagate.Store) (*eventflow.App, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	return eventflow.Start(t, eventflow.Options{Observe: m.Observe, RawEventValues: raw, Store: store}), reader
}

// collect reads the counts through the ManualReader and returns them in
// JSON (all that an exporter could send) and the value of each
// captchagate.events series, keyed by eventflow.Series.
func collect(t *testing.T, reader *sdkmetric.ManualReader) (string, map[string]float64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	text, err := json.Marshal(rm)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelgate.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "captchagate.events" || m.Unit != "{event}" || !ok || !sum.IsMonotonic {
				t.Errorf("metric %q (%q): %T", m.Name, m.Unit, m.Data)
				continue
			}
			for _, dp := range sum.DataPoints {
				l := map[string]string{}
				for _, kv := range dp.Attributes.ToSlice() {
					if kv.Value.Type() != attribute.STRING || kv.Value.AsString() == "" {
						t.Errorf("attribute %v", kv)
					}
					l[string(kv.Key)] = kv.Value.AsString()
				}
				if len(l) != dp.Attributes.Len() {
					t.Errorf("attributes %v", dp.Attributes)
				}
				got[eventflow.Series(l["policy"], l["key"], l["outcome"], l["mode"])] = float64(dp.Value)
			}
		}
	}
	return string(text), got
}

// Every outcome of the flow is counted once, by policy, key name (lockouts
// only) and mode (captcha events only), and nothing else is: what the
// ManualReader collects has exactly the series the scenario makes.
func TestCountsEveryOutcome(t *testing.T) {
	t.Parallel()
	a, reader := newApp(t, false, nil)
	want := a.Run(t)
	_, got := collect(t, reader)
	if !maps.Equal(got, want) {
		t.Errorf("captchagate.events:\n got %s\nwant %s", eventflow.Dump(got), eventflow.Dump(want))
	}
}

// The metrics never carry which account, number or address a lockout was
// about: neither the keyed hash in Event.Value, nor with
// Config.RawEventValues the value itself, nor the spellings clients sent.
func TestNoValueInMetrics(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("RawEventValues=%v", raw), func(t *testing.T) {
			t.Parallel()
			a, reader := newApp(t, raw, nil)
			a.Run(t)
			text, got := collect(t, reader)
			if len(got) == 0 {
				t.Fatal("nothing counted")
			}
			a.AssertNoValue(t, text, "the collected metrics")
		})
	}
}

// New takes the meter provider it is given, never the global one by default.
func TestNewNeedsMeterProvider(t *testing.T) {
	t.Parallel()
	if _, err := otelgate.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// A name that is not UTF-8 (a custom challenge's mode, a policy's name) is
// counted with its bad bytes replaced, and an empty one is left out.
func TestObserveInvalidUTF8(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(captchagate.Event{Kind: captchagate.EventCaptchaIssued, Policy: "log\xffin", Mode: "\xfe"})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	dps := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints
	want := attribute.NewSet(attribute.String("policy", "log\uFFFDin"), attribute.String("mode", "\uFFFD"), attribute.String("outcome", "issued"))
	if len(dps) != 1 || !dps[0].Attributes.Equals(&want) || dps[0].Value != 1 {
		t.Errorf("collected %+v", dps)
	}
}

// A failing store is counted as store_error, once per failed operation: the
// login's two counters of the account's key (failures and the failure
// ceiling), then, the key tripped under FailClosed, the client's captcha
// creation budget, charged for the login's captcha; the request gets 503.
func TestCountsStoreErrors(t *testing.T) {
	t.Parallel()
	a, reader := newApp(t, false, eventflow.FailingStore{})
	eventflow.Expect(t, http.StatusServiceUnavailable, a.Login(t), "a login with the store down")
	_, got := collect(t, reader)
	want := map[string]float64{eventflow.Series("login", "", "store_error", ""): 3}
	if !maps.Equal(got, want) {
		t.Errorf("got %s\nwant %s", eventflow.Dump(got), eventflow.Dump(want))
	}
}

// Observe is safe for concurrent use: hooks run on the requests' goroutines,
// and the first events of a series race to build its attribute set.
func TestObserveConcurrent(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	m, err := otelgate.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Together(8, func() {
		for range 100 {
			m.Observe(captchagate.Event{Kind: captchagate.EventCaptchaVerified, Policy: "login", Mode: "image"})
			m.Observe(captchagate.Event{Kind: captchagate.EventTripped, Policy: "login", Key: "ip", Value: "h:0"})
		}
	})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, dp := range rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints {
		got[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp.Value
	}
	want := map[string]int64{"mode=image,outcome=solved,policy=login": 800, "key=ip,outcome=tripped,policy=login": 800}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
