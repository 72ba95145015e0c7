// Command cloudbase is a CloudBase-auth-shaped server whose captchas the
// unmodified CloudBase auth SDK (npm @cloudbase/oauth) solves through its
// own captcha handling, with package dialect/cloudbase:
//
//	POST /auth/v1/signin             {"username","password"}: 5 wrong passwords → captcha_required
//	POST /auth/v1/verification       {"phone_number",...}: "send me a code"; past the send rate → captcha_required
//	POST /auth/v1/captcha/data       the SDK's captcha request ({"state","redirect_uri"})
//	POST /auth/v1/captcha/data/verify {"token","key"} → {"captcha_token","expires_in"}
//
// The SDK's apiPath is "/auth" by default, so its apiOrigin is this server's
// address: new CloudbaseOAuth({apiOrigin: "http://127.0.0.1:8080", clientId, storage}).
// web/driver.js drives it (npm ci --prefix examples/cloudbase/web first); the
// test of this package runs it against this server.
//
//	go run ./examples/cloudbase      # http://127.0.0.1:8080 (-addr to change); account alice / wonderland
package main

import (
	"crypto/rand"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/cloudbase"
)

// SigninPolicy: five wrong passwords per username in 15 minutes, then a
// captcha; twenty per client address.
var SigninPolicy = captchagate.Policy{
	Name:   "signin",
	Window: 15 * time.Minute, MaxFailures: 5,
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20},
	},
}

// SMSPolicy: one code per phone number, then one every 20 minutes without a
// captcha (each past the rate needs one); at most ten a day whatever is
// solved.
var SMSPolicy = captchagate.Policy{
	Name: "sms",
	Keys: []captchagate.Key{func() captchagate.Key {
		k := captchagate.Phone(captchagate.JSONField("phone_number"))
		k.Rate, k.Burst, k.Ceiling, k.CeilingWindow, k.Required = rate.Every(20*time.Minute), 1, 10, 24*time.Hour, true
		return k
	}()},
}

// Users are the demo's accounts.
var Users = map[string]string{"alice": "wonderland"}

// NewDialect is the dialect this server speaks: the SDK's defaults.
func NewDialect() (*cloudbase.Dialect, error) { return cloudbase.New(cloudbase.Options{}) }

// NewApp mounts the sign-in, the code sender and the captcha endpoints of
// gate, which must have been made with d's Prefix, Challenge, Dialect and
// ErrorHandler (Config for d).
func NewApp(gate *captchagate.Gate, d *cloudbase.Dialect) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(d.Prefix(), gate.Handler())
	mux.Handle("POST /auth/v1/signin", gate.Guard(SigninPolicy)(http.HandlerFunc(signin)))
	mux.Handle("POST /auth/v1/verification", gate.Guard(SMSPolicy)(http.HandlerFunc(sendCode)))
	return mux
}

// Config is the gate's configuration for d, on top of c.
func Config(c captchagate.Config, d *cloudbase.Dialect) captchagate.Config {
	c.Prefix = d.Prefix()
	if c.Challenge == nil {
		c.Challenge = d.Challenge()
	}
	c.Dialects = append(c.Dialects, d)
	c.ErrorHandler = d.WriteError
	return c
}

// signin answers as CloudBase does: the SDK's credentials, or its
// invalid_password error. Its JSON arrives as text/plain.
func signin(w http.ResponseWriter, r *http.Request) {
	var b struct{ Username, Password string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&b); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_argument", "error_description": "the body is not JSON"})
		return
	}
	if want, ok := Users[b.Username]; !ok || want != b.Password {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_password", "error_description": "wrong username or password"})
		return
	}
	tok := rand.Text()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "access_token": tok, "refresh_token": rand.Text(),
		"expires_in": 3600, "scope": "user", "sub": b.Username})
}

// sendCode stands in for sending a code: it sends nothing.
func sendCode(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"verification_id": rand.Text(), "is_user": true})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	d, err := NewDialect()
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	gate, err := captchagate.New(Config(captchagate.Config{}, d))
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	log.Printf("CloudBase-shaped auth on http://%s (apiOrigin; apiPath /auth)", *addr)
	srv := &http.Server{Addr: *addr, Handler: NewApp(gate, d), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
