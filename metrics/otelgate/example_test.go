package otelgate_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/metrics/otelgate"
)

// Count a gate's events with a meter provider of the application's (here
// one with a ManualReader, where a real one would have a periodic reader
// and an OTLP or Prometheus exporter), beside the application's own hook.
func Example() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	metrics, err := otelgate.New(provider)
	if err != nil {
		log.Fatal(err)
	}
	lockouts := func(e captchagate.Event) {
		if e.Kind == captchagate.EventTripped || e.Kind == captchagate.EventCeilingReached {
			fmt.Println("lockout:", e.Policy, e.Key) // e.Value, the keyed hash of the account, is the hook's to log
		}
	}
	gate, err := captchagate.New(captchagate.Config{
		OnEvent: captchagate.EventHooks(metrics.Observe, lockouts),
		Logger:  slog.New(slog.DiscardHandler), // quiet for the example
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	login := captchagate.Policy{Name: "login", MaxFailures: 5, Window: 15 * time.Minute,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /login", gate.Guard(login)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong password", http.StatusUnauthorized)
	})))
	for range 6 { // the sixth trips the account's key and gets a captcha
		r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice","password":"guess"}`))
		mux.ServeHTTP(httptest.NewRecorder(), r)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var lines []string
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				lines = append(lines, fmt.Sprintf("%s %s %d", m.Name, dp.Attributes.Encoded(attributeEncoder), dp.Value))
			}
			slices.Sort(lines) // data points come in no particular order
			for _, l := range lines {
				fmt.Println(l)
			}
		}
	}
	// Output:
	// lockout: login json:username
	// captchagate.events key=json:username,outcome=tripped,policy=login 1
	// captchagate.events mode=image,outcome=issued,policy=login 1
}

var attributeEncoder = attribute.DefaultEncoder()
