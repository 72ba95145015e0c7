// Command login is a runnable demo of captchagate protecting a JSON login API,
// on the in-memory store or, with -redis, on Redis shared by several
// instances.
//
//	go run ./examples/login            # listens on :8080, in-memory store
//	curl -i -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
//	export CAPTCHAGATE_SECRET=$(head -c 32 /dev/urandom | base64)   # the same on every instance
//	go run ./examples/login -addr :8081 -redis redis://127.0.0.1:6379/0
//	go run ./examples/login -addr :8082 -redis redis://127.0.0.1:6379/0
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

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/redisstore"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	redisURL := flag.String("redis", os.Getenv("REDIS_URL"), "Redis URL (redis://host:port/db) to share state between instances; default $REDIS_URL, or in memory")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := captchagate.Config{Logger: logger}
	if *redisURL != "" {
		opt, err := redis.ParseURL(*redisURL)
		if err != nil {
			log.Fatalf("-redis: %v", err)
		}
		opt.ContextTimeoutEnabled = true // lets the gate bound each request's wait (Config.StoreTimeout)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		cfg.Store, err = redisstore.New(rdb, redisstore.Options{Prefix: "captchagate-demo:"})
		if err != nil {
			log.Fatal(err)
		}
		// Instances sharing a store must share the secret that names its keys
		// and binds its tokens.
		cfg.Secret = []byte(os.Getenv("CAPTCHAGATE_SECRET"))
		if len(cfg.Secret) < 32 {
			log.Fatal("with -redis, set CAPTCHAGATE_SECRET to at least 32 bytes, the same on every instance: " +
				"export CAPTCHAGATE_SECRET=$(head -c 32 /dev/urandom | base64)")
		}
		logger.Info("store", "redis", opt.Addr, "db", opt.DB)
	}
	gate, err := captchagate.New(cfg)
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
