// Command crossorigin is a single-page app on one origin calling a JSON API
// guarded by captchagate on another, the way an SDK or a front end on
// https://app.example.com calls https://api.example.com: every call is a
// cross-origin fetch with Content-Type: application/json, so the browser
// sends a preflight (OPTIONS) before each one.
//
//	go run ./examples/crossorigin     # the page: http://127.0.0.1:8090/ (account alice / wonderland)
//	go run ./examples/crossorigin -spa 127.0.0.1:3000 -api 127.0.0.1:4000
//
// The API (-api, default 127.0.0.1:8091) serves POST /api/login, which asks
// for a captcha after 5 wrong passwords for one username, and the captcha
// endpoints at /captcha/. Its two halves get their CORS from different places:
//
//   - the captcha endpoints (gate.Handler) from captchagate.Config.CORS,
//     which lists the page's origin: they answer its preflights and let it
//     read their answers;
//   - the login route, the application's own, from github.com/rs/cors, which
//     allows the page's origin and the X-Captcha-Token header and exposes
//     Retry-After, RateLimit and RateLimit-Policy. It wraps the guard, so the
//     gate's 428 and 429 answers carry the CORS headers too and the page can
//     read the captcha they hold.
//
// Config.BaseURL makes the captcha's URLs (image_url, verify_url...)
// absolute on the API's origin, so the page, served from the other origin
// (-spa, default 127.0.0.1:8090), can use them as they come.
//
// The page (web/index.html and web/app.js, embedded) signs in with fetch; on
// 428 captcha_required it shows the captcha's picture and sound, posts the
// answer to verify_url, and retries the login with the token it gets in the
// X-Captcha-Token header. Its test also serves the page from an origin that
// the login route allows but Config.CORS does not list: there the verify
// step fails, because the browser refuses the captcha endpoint's answer to
// its preflight.
package main

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"html/template"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/cors"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/demo"
)

func main() {
	spaAddr := flag.String("spa", "127.0.0.1:8090", "listen address of the page (origin A)")
	apiAddr := flag.String("api", "127.0.0.1:8091", "listen address of the API and its captcha endpoints (origin B)")
	flag.Parse()

	spaOrigin, err := Origin(*spaAddr)
	if err != nil {
		log.Fatalf("-spa: %v", err)
	}
	apiURL, err := Origin(*apiAddr)
	if err != nil {
		log.Fatalf("-api: %v", err)
	}
	if spaOrigin == apiURL {
		log.Fatal("-spa and -api must differ: the point is two origins")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gate, err := captchagate.New(GateConfig(apiURL, []string{spaOrigin}, logger))
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("crossorigin: open the page", "url", spaOrigin+"/", "api", apiURL)
	errs := make(chan error, 2)
	go func() { errs <- demo.Serve(ctx, logger, *apiAddr, NewAPI(gate, []string{spaOrigin})) }()
	go func() { errs <- demo.Serve(ctx, logger, *spaAddr, NewSPA(apiURL)) }()
	// The first to return ends both (an error, or the signal for each).
	err = <-errs
	stop()
	err = errors.Join(err, <-errs)
	if err != nil {
		log.Fatal(err)
	}
}

// Origin is the origin a browser sees for a server listening on addr
// ("127.0.0.1:8090" → "http://127.0.0.1:8090"; an unspecified host is
// reached at localhost).
func Origin(addr string) (string, error) {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(demo.URL(a), "/"), nil
}

// GateConfig is the gate's configuration for an API served at apiURL
// ("http://127.0.0.1:8091") and called by pages of the origins spaOrigins:
// the captcha URLs it sends are absolute on apiURL, and its endpoints answer
// those origins' preflights. No credentials: the page sends no cookies.
func GateConfig(apiURL string, spaOrigins []string, logger *slog.Logger) captchagate.Config {
	return captchagate.Config{
		BaseURL: apiURL,
		CORS:    captchagate.CORS{Origins: spaOrigins},
		Logger:  logger,
	}
}

// LoginPolicy asks for a captcha after 5 failures per username in 15
// minutes, or 20 per client address in an hour.
var LoginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

// NewAPI returns the API's routes: the captcha endpoints, whose CORS is the
// gate's (GateConfig), and POST /api/login, guarded, whose CORS is rs/cors's
// for loginOrigins. The CORS handler wraps the guard, so that the gate's
// answers (428 with the captcha, 429) are readable by the page too.
func NewAPI(gate *captchagate.Gate, loginOrigins []string) http.Handler {
	c := cors.New(cors.Options{
		AllowedOrigins: loginOrigins,
		AllowedMethods: []string{http.MethodPost},
		AllowedHeaders: []string{"Content-Type", "X-Captcha-Token"},
		ExposedHeaders: []string{"Retry-After", "RateLimit", "RateLimit-Policy"},
		MaxAge:         600,
	})
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	mux.Handle("POST /api/login", c.Handler(gate.Guard(LoginPolicy)(http.HandlerFunc(apiLogin))))
	// rs/cors answers preflights itself; any other OPTIONS is refused
	// here, never passed to the guard.
	mux.Handle("OPTIONS /api/login", c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})))
	return mux
}

func checkPassword(user, pass string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte("alice"))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte("wonderland"))
	return userOK&passOK == 1
}

// apiLogin checks the password of a JSON body. It refuses a body not
// declared as JSON before reading it: the guard counts the username it reads
// with JSONField, which reads JSON bodies only.
func apiLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
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
	captchagate.Succeed(r)
	w.Write([]byte(`{"ok":true,"user":"alice"}` + "\n"))
}

//go:embed web
var web embed.FS

var pageTmpl = template.Must(template.ParseFS(web, "web/index.html"))

// NewSPA returns the single-page app's server: the page at /, which calls
// the API at apiURL, and its script and style. Its Content-Security-Policy
// lets the page load its own script and style only, and fetch, show and play
// from apiURL only.
func NewSPA(apiURL string) http.Handler {
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; connect-src " + apiURL +
		"; img-src " + apiURL + "; media-src " + apiURL + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Cache-Control", "no-store")
		pageTmpl.Execute(w, struct{ API string }{apiURL})
	})
	for _, name := range []string{"app.js", "app.css"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, web, "web/"+name)
		})
	}
	return mux
}
