package promgate_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/metrics/promgate"
)

// Count a gate's events on a registry of its own, served at /metrics, beside
// the application's own hook (here, one that reports lockouts; it could log
// e.Value, the keyed hash of the account, which the metrics never show).
func Example() {
	registry := prometheus.NewRegistry()
	metrics, err := promgate.New(registry)
	if err != nil {
		log.Fatal(err)
	}
	lockouts := func(e captchagate.Event) {
		if e.Kind == captchagate.EventTripped || e.Kind == captchagate.EventCeilingReached {
			fmt.Println("lockout:", e.Policy, e.Key)
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))

	for range 6 { // the sixth trips the account's key and gets a captcha
		r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice","password":"guess"}`))
		mux.ServeHTTP(httptest.NewRecorder(), r)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(w.Body.String()) {
		if strings.HasPrefix(line, "captchagate_") {
			fmt.Print(line)
		}
	}
	// Output:
	// lockout: login json:username
	// captchagate_events_total{key="",mode="image",outcome="issued",policy="login"} 1
	// captchagate_events_total{key="json:username",mode="",outcome="tripped",policy="login"} 1
}
