// Package app is what the router examples share: the login handler and its
// policy, and running a program. What differs between them, and what each
// main.go shows, is only the glue: where Handler is mounted and how the
// guard wraps the login route.
package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/demo"
)

// LoginPolicy asks for a captcha after 5 wrong passwords for an account in
// 15 minutes, or 20 from one address in an hour.
var LoginPolicy = captchagate.Policy{
	Name:        "login",
	MaxFailures: 5,
	Window:      15 * time.Minute,
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
}

// Login is a JSON login for alice / wonderland: 401 to a wrong password
// (which the guard counts as a failure), 200 to the right one.
func Login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request"}` + "\n"))
		return
	}
	userOK := subtle.ConstantTimeCompare([]byte(req.Username), []byte("alice"))
	passOK := subtle.ConstantTimeCompare([]byte(req.Password), []byte("wonderland"))
	if userOK&passOK != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_credentials"}` + "\n"))
		return
	}
	w.Write([]byte(`{"ok":true,"user":"alice"}` + "\n"))
}

// Main runs an example: a gate on the in-memory store, the routes newApp
// mounts on it, served on -addr until Ctrl-C or SIGTERM.
func Main(newApp func(*captchagate.Gate) http.Handler) {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gate, err := captchagate.New(captchagate.Config{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Serve(ctx, logger, *addr, newApp(gate)); err != nil {
		log.Fatal(err)
	}
}
