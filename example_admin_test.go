package captchagate_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"

	"github.com/captchagate/captchagate"
)

// An admin action (or a completed password reset) forgets one account's
// failures: Gate.Reset takes the policy, the key and the value, and counts
// the value as the guard does, so "ALICE" resets alice.
func ExampleGate_Reset() {
	gate, err := captchagate.New(captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	mux := http.NewServeMux()
	mux.Handle("POST /login", gate.Guard(captchagate.Policy{
		Name:        "login",
		Keys:        []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
		MaxFailures: 3,
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong password", http.StatusUnauthorized)
	})))
	// Behind the application's own admin authentication:
	mux.HandleFunc("POST /admin/users/{name}/reset-lockout", func(w http.ResponseWriter, r *http.Request) {
		if err := gate.Reset(r.Context(), "login", "username", r.PathValue("name")); err != nil {
			http.Error(w, "reset failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	login := func() int {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"alice","password":"guess"}`)))
		return w.Code
	}
	fmt.Println(login(), login(), login(), login())
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/admin/users/ALICE/reset-lockout", nil))
	fmt.Println("reset:", w.Code)
	fmt.Println(login())
	// Output:
	// 401 401 401 428
	// reset: 204
	// 401
}

// Rolling a policy out: in dry run it counts and reports (EventDryRun, and
// the logs) what it would have done, and refuses nothing. A monitoring
// network and a synthetic monitor's account are never counted.
func ExamplePolicy_dryRun() {
	gate, err := captchagate.New(captchagate.Config{
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}, // the monitoring network
		OnEvent: func(e captchagate.Event) {
			if e.Kind == captchagate.EventDryRun {
				fmt.Println("would have asked for a", e.Reason, "on", e.Key)
			}
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	user := captchagate.Username(captchagate.JSONField("username"))
	user.Allow = []string{"synthetic-monitor"}
	h := gate.Guard(captchagate.Policy{Name: "login", Keys: []captchagate.Key{user}, MaxFailures: 2, DryRun: true})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	for _, name := range []string{"alice", "alice", "alice", "synthetic-monitor", "synthetic-monitor", "synthetic-monitor"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"`+name+`"}`)))
		fmt.Println(name, w.Code)
	}
	// Output:
	// alice 401
	// alice 401
	// would have asked for a captcha on json:username
	// alice 401
	// synthetic-monitor 401
	// synthetic-monitor 401
	// synthetic-monitor 401
}
