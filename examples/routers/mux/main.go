// Command mux is captchagate on a gorilla/mux router: the captcha endpoints
// mounted at Config.Prefix with PathPrefix, a guarded JSON login.
//
//	go run ./examples/routers/mux
//	curl -i -H 'Content-Type: application/json' -d '{"username":"alice","password":"nope"}' localhost:8080/api/login
//
// The sixth wrong password answers 428 captcha_required; see the README's
// walkthrough for the rest of the flow.
package main

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/routers/internal/app"
)

func main() { app.Main(NewApp) }

// NewApp returns the routes on gate.
func NewApp(gate *captchagate.Gate) http.Handler {
	r := mux.NewRouter()
	r.PathPrefix("/captcha/").Handler(gate.Handler()) // Config.Prefix, "/captcha/" by default
	r.Handle("/api/login", gate.Guard(app.LoginPolicy)(http.HandlerFunc(app.Login))).Methods(http.MethodPost)
	return r
}
