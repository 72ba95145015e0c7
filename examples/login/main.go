// Command login is a runnable demo of captchagate protecting a JSON login API
// on the in-memory store.
//
//	go run ./examples/login            # listens on :8080
//	curl -i -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
// The demo account is alice / wonderland. After 5 wrong passwords for one
// username in 15 minutes (or 20 from one address in an hour) the API answers
// 428 captcha_required with the captcha's image, audio, refresh and verify
// URLs; POST the answer to /captcha/verify and retry the login with the
// returned captcha_token in the X-Captcha-Token header.
package main

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/captchagate/captchagate"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gate, err := captchagate.New(captchagate.Config{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /api/login", gate.Guard(LoginPolicy)(http.HandlerFunc(login)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("captchagate demo: POST /api/login {\"username\":\"alice\",\"password\":\"wonderland\"}\n"))
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("listening", "addr", *addr)
	log.Fatal(srv.ListenAndServe())
}

// LoginPolicy asks for a captcha after 5 failures per username in 15 minutes
// or 20 per client address in an hour.
var LoginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		{Source: captchagate.JSONField("username").Fold(), MaxFailures: 5, Window: 15 * time.Minute, ResetOnSuccess: true},
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
}

func login(w http.ResponseWriter, r *http.Request) {
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
