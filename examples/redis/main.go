// Command redis runs two instances of one guarded login API, A and B, on one
// Redis, as two processes behind a load balancer would run: a wrong password
// on either counts for both, a captcha issued by one renders and verifies on
// the other, and its token is accepted once, on either.
//
//	redis-server --port 6379 --save '' &
//	export CAPTCHAGATE_SECRET=$(head -c 32 /dev/urandom | base64)   # the same on every instance
//	go run ./examples/redis -redis redis://127.0.0.1:6379/0        # A on :8081, B on :8082
//	for p in 8081 8082 8081 8082 8081 8082; do curl -s -H 'Content-Type: application/json' -d '{"username":"alice","password":"nope"}' localhost:$p/api/login; echo; done
//
// The sixth answers 428 captcha_required; examples/curl/roundtrip.sh walks
// the rest against either instance. The account is alice / wonderland.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/demo"
	"github.com/captchagate/captchagate/store/redisstore"
)

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (redis://host:port/db) the instances share")
	addrA := flag.String("a", ":8081", "instance A's listen address")
	addrB := flag.String("b", ":8082", "instance B's listen address")
	flag.Parse()

	// Instances sharing a store must share the secret that names its keys
	// and seals its captchas and tokens.
	secret := []byte(os.Getenv("CAPTCHAGATE_SECRET"))
	if len(secret) < 32 {
		log.Fatal("set CAPTCHAGATE_SECRET to at least 32 bytes, the same on every instance: " +
			"export CAPTCHAGATE_SECRET=$(head -c 32 /dev/urandom | base64)")
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatalf("-redis: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	served := make(chan error, 2)
	for name, addr := range map[string]string{"A": *addrA, "B": *addrB} {
		logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("instance", name)
		in, err := NewInstance(opt, captchagate.Config{Secret: secret, Logger: logger})
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			err := demo.Serve(ctx, logger, addr, in)
			stop() // one instance down: stop both
			served <- errors.Join(err, in.Close())
		}()
	}
	if err := errors.Join(<-served, <-served); err != nil {
		log.Fatal(err)
	}
}

// Instance is one instance of the app, with its own Redis client, store and
// gate, as a process of its own would have.
type Instance struct {
	http.Handler
	rdb   *redis.Client
	store *redisstore.Store
	gate  *captchagate.Gate
}

// NewInstance connects to Redis with opt and returns the app on a gate
// configured by cfg (its Store set to Redis).
func NewInstance(opt *redis.Options, cfg captchagate.Config) (*Instance, error) {
	o := *opt
	o.ContextTimeoutEnabled = true // lets the gate bound each request's wait (Config.StoreTimeout)
	rdb := redis.NewClient(&o)
	store, err := redisstore.New(rdb, redisstore.Options{Prefix: "captchagate-example:"})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	cfg.Store = store
	gate, err := captchagate.New(cfg)
	if err != nil {
		store.Close()
		rdb.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /api/login", gate.Guard(LoginPolicy)(http.HandlerFunc(login)))
	return &Instance{Handler: mux, rdb: rdb, store: store, gate: gate}, nil
}

// Close stops the instance once its server no longer serves: the counter
// writes still behind are flushed to Redis first.
func (in *Instance) Close() error {
	in.gate.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := in.store.Flush(ctx)
	in.store.Close()
	return errors.Join(err, in.rdb.Close())
}

// LoginPolicy asks for a captcha after 5 wrong passwords for one username
// in 15 minutes, counted across every instance.
var LoginPolicy = captchagate.Policy{
	Name:        "login",
	Keys:        []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

// login is the JSON API behind the guard: alice / wonderland.
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
