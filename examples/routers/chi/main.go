// Command chi is captchagate on a chi router: the captcha endpoints mounted
// at Config.Prefix, a guarded JSON login.
//
//	go run ./examples/routers/chi
//	curl -i -H 'Content-Type: application/json' -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
// The sixth wrong password answers 428 captcha_required; see the README's
// walkthrough for the rest of the flow.
package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/routers/internal/app"
)

func main() { app.Main(NewApp) }

// NewApp returns the routes on gate.
func NewApp(gate *captchagate.Gate) http.Handler {
	r := chi.NewRouter()
	r.Handle("/captcha/*", gate.Handler()) // Config.Prefix, "/captcha/" by default; every method
	r.With(gate.Guard(app.LoginPolicy)).Post("/api/login", app.Login)
	return r
}
