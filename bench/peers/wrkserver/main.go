// Command wrkserver serves the routes bench/compare.sh loads with wrk: a bare
// handler, the same behind a guard (allowed: client IP key far under its
// threshold), and the captcha endpoints; it prints one captcha id on stdout
// for the media load.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "listen address")
	flag.Parse()
	gate, err := captchagate.New(captchagate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	guard := gate.Guard(captchagate.Policy{Name: "login", MaxFailures: 1 << 23, Window: time.Hour,
		Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	mux := http.NewServeMux()
	mux.Handle("/bare", ok)
	mux.Handle("/guarded", guard(ok))
	mux.Handle("/captcha/", gate.Handler())

	// One captcha for the media load.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/captcha/new", strings.NewReader(`{"policy":"login"}`)))
	var body struct{ Captcha captchagate.Captcha }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		log.Fatal(rec.Body.String())
	}
	fmt.Println(body.Captcha.ID)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
