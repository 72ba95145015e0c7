// Command stdlib is captchagate on the standard library's http.ServeMux:
// the captcha endpoints mounted at Config.Prefix, a guarded JSON login.
// (examples/login is the full demo on ServeMux: an HTML form with the
// widget beside the JSON API.)
//
//	go run ./examples/routers/stdlib
//	curl -i -H 'Content-Type: application/json' -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
// The sixth wrong password answers 428 captcha_required; see the README's
// walkthrough for the rest of the flow.
package main

import (
	"net/http"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/routers/internal/app"
)

func main() { app.Main(NewApp) }

// NewApp returns the routes on gate.
func NewApp(gate *captchagate.Gate) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler()) // Config.Prefix, "/captcha/" by default
	mux.Handle("POST /api/login", gate.Guard(app.LoginPolicy)(http.HandlerFunc(app.Login)))
	return mux
}
