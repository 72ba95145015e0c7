// Command login is a runnable demo of captchagate protecting a login: an HTML
// login page at / (a classic form post, with the captcha widget and sessions)
// and a JSON API at /api/login (Content-Type: application/json), counted
// together. It runs on the in-memory store or, with -redis, on Redis shared
// by several instances.
//
//	go run ./examples/login            # http://localhost:8080/, in-memory store
//	curl -i -H 'Content-Type: application/json' -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
//	export CAPTCHAGATE_SECRET=$(head -c 32 /dev/urandom | base64)   # the same on every instance
//	go run ./examples/login -addr :8081 -redis redis://127.0.0.1:6379/0
//	go run ./examples/login -addr :8082 -redis redis://127.0.0.1:6379/0
//
// The demo account is alice / wonderland. After 5 wrong passwords for one
// username in 15 minutes (or 20 from one address in an hour) the page shows
// a captcha, and the API answers 428 captcha_required with the captcha's
// image, audio, refresh and verify URLs; POST the answer to /captcha/verify
// and retry the login with the returned captcha_token in the X-Captcha-Token
// header.
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"flag"
	"html/template"
	"log"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/demo"
	"github.com/captchagate/captchagate/htmlform"
	"github.com/captchagate/captchagate/store/redisstore"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	redisURL := flag.String("redis", os.Getenv("REDIS_URL"), "Redis URL (redis://host:port/db) to share state between instances; default $REDIS_URL, or in memory")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hook, metrics, err := Metrics() // the gate's events, counted, at GET /metrics (metrics.go)
	if err != nil {
		log.Fatal(err)
	}
	cfg := captchagate.Config{Logger: logger, OnEvent: hook}
	if *redisURL != "" {
		opt, err := redis.ParseURL(*redisURL)
		if err != nil {
			log.Fatalf("-redis: %v", err)
		}
		opt.ContextTimeoutEnabled = true // lets the gate bound each request's wait (Config.StoreTimeout)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		store, err := redisstore.New(rdb, redisstore.Options{Prefix: "captchagate-demo:"})
		if err != nil {
			log.Fatal(err)
		}
		defer func() {
			// The last give-backs and resets, written behind, before the
			// writer stops (Serve returned: no request is in flight).
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := store.Flush(ctx); err != nil {
				logger.Warn("store flush", "error", err)
			}
			store.Close()
		}()
		cfg.Store = store
		// Instances sharing a store must share the secret that names its keys
		// and binds its tokens (and, here, the one that signs sessions).
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
	h, err := NewApp(gate, SessionStore(cfg.Secret))
	if err != nil {
		log.Fatal(err)
	}
	// Ctrl-C or SIGTERM: finish the requests in flight, then close.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Serve(ctx, logger, *addr, WithMetrics(h, metrics)); err != nil {
		log.Fatal(err)
	}
}

// SessionStore is a cookie store whose keys derive from secret (random if
// empty). HttpOnly, SameSite Lax; not Secure, since the demo serves plain
// http on localhost: set Secure behind https.
func SessionStore(secret []byte) sessions.Store {
	key := secret
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key)
	}
	st := sessions.NewCookieStore(key)
	st.Options = &sessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return st
}

// LoginPolicy asks for a captcha after 5 failures per account in 15 minutes
// or 20 per client address in an hour, and refuses an account's guesses past
// 100 failures a day (the account key's default FailureCeiling), captcha or
// not. The owner's browsers keep budgets of their own (Devices: a device
// cookie set on each successful sign-in, which the handlers report with
// Succeed), so an attacker guessing alice's password spends none of hers.
// Field reads the username from the HTML form and from the JSON API alike,
// so both count together; a username the guard cannot read is refused.
var LoginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.Field("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
	MaxFailures: 5,
	Window:      15 * time.Minute,
	Devices:     &captchagate.Devices{}, // set Cookie.Secure behind https
}

// NewApp returns the demo's routes on gate.
func NewApp(gate *captchagate.Gate, store sessions.Store) (http.Handler, error) {
	page := &loginPage{}
	flow, err := htmlform.New(gate, htmlform.Options{Sessions: store, Render: page.refused})
	if err != nil {
		return nil, err
	}
	page.flow = flow
	guard := gate.Guard(LoginPolicy)

	mux := http.NewServeMux()
	mux.Handle("/captcha/", flow.Handler())
	mux.Handle("POST /api/login", guard(http.HandlerFunc(apiLogin)))
	mux.Handle("POST /login", flow.Middleware(guard(http.HandlerFunc(page.login))))
	mux.Handle("GET /{$}", flow.Middleware(http.HandlerFunc(page.show)))
	return mux, nil
}

func checkPassword(user, pass string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte("alice"))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte("wonderland"))
	return userOK&passOK == 1
}

// isJSON reports whether r's body is declared as JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// apiLogin is the JSON API. It refuses a body not declared as JSON before
// reading it: the guard's Field("username") reads a form body as a form, so
// a JSON body sent as a form counts no username, and decoding it as JSON
// here anyway would check passwords the guard never counted for the account.
func apiLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	w.Header().Set("Content-Type", "application/json")
	if !isJSON(r) {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		w.Write([]byte(`{"error":"unsupported_media_type","error_description":"send Content-Type: application/json"}` + "\n"))
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request"}` + "\n"))
		return
	}
	if !checkPassword(req.Username, req.Password) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_credentials"}` + "\n"))
		return
	}
	captchagate.Succeed(r) // before writing: it sets the device cookie
	w.Write([]byte(`{"ok":true,"user":"alice"}` + "\n"))
}

type loginPage struct{ flow *htmlform.Flow }

type pageData struct {
	Username string
	Error    string
	Captcha  template.HTML
	Welcome  string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .Captcha}}Security check — {{end}}Sign in — captchagate demo</title>
<style>body{font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:26em;padding:0 1em}
label{display:block;margin:.6em 0 .2em}input{font:inherit;padding:.25em .4em;width:14em}
.error{background:#fdecea;color:#611a15;padding:.4em .6em;border-radius:4px}
.welcome{background:#e6f4ea;color:#1e4620;padding:.6em;border-radius:4px}button[type=submit]{font:inherit;margin-top:1em;padding:.3em 1.2em}</style>
</head><body>
<main>
<h1>Sign in</h1>
{{if .Welcome}}<p class="welcome" id="welcome" role="status">{{.Welcome}}</p>{{end}}
{{if .Error}}<p class="error" id="login-error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{{.Username}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{{.Captcha}}
<button type="submit">Sign in</button>
</form>
<p><small>Demo account: alice / wonderland. Five wrong passwords bring up the captcha.</small></p>
</main>
</body></html>
`))

func (p *loginPage) write(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	pageTmpl.Execute(w, d)
}

func (p *loginPage) show(w http.ResponseWriter, r *http.Request) {
	p.write(w, http.StatusOK, pageData{Captcha: p.flow.Widget(r, nil)})
}

// refused renders the form again when the gate stopped the post.
func (p *loginPage) refused(w http.ResponseWriter, r *http.Request, err error) {
	p.write(w, htmlform.Status(err), pageData{Username: r.PostFormValue("username"), Captcha: p.flow.Widget(r, err)})
}

func (p *loginPage) login(w http.ResponseWriter, r *http.Request) {
	user, pass := r.PostFormValue("username"), r.PostFormValue("password")
	if !checkPassword(user, pass) {
		p.write(w, http.StatusUnauthorized, pageData{Username: user, Error: "Wrong username or password.", Captcha: p.flow.Widget(r, nil)})
		return
	}
	captchagate.Succeed(r)
	p.write(w, http.StatusOK, pageData{Welcome: "Welcome, " + user + ". You are signed in."})
}
