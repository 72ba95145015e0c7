// Command sms is a runnable demo of captchagate protecting a "send me a code"
// endpoint, on the in-memory store:
//
//	go run ./examples/sms      # http://localhost:8080/
//
// Each phone number gets 2 codes at once and then one a minute; past that
// rate the page asks for a captcha (captcha_required) before sending; past 3
// codes an hour for a number, or 30 from one address, nothing is sent, captcha
// or not (too_many_requests). The page is a fetch() client: it reacts to the
// gate's JSON with the widget's captchagate.solve. Codes are not really sent:
// the demo logs them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/sessions"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/demo"
	"github.com/captchagate/captchagate/htmlform"
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
	key := make([]byte, 32)
	rand.Read(key)
	store := sessions.NewCookieStore(key)
	store.Options = &sessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	h, err := NewApp(gate, store, func(phone, code string) { logger.Info("demo: would send", "code", code) })
	if err != nil {
		log.Fatal(err)
	}
	// Ctrl-C or SIGTERM: finish the requests in flight, then close.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Serve(ctx, logger, *addr, h); err != nil {
		log.Fatal(err)
	}
}

// SendPolicy: per phone, 2 codes at once then one a minute, at most 3 an
// hour; per client address, 10 at once then one every 10 seconds, at most
// 30 an hour; site-wide (Everyone), 50 at once then one a second before
// every sender needs a captcha ("under attack": SMS pumping across many
// numbers from many addresses), and at most 2,000 a day in all.
var SendPolicy = captchagate.Policy{
	Name: "send-code",
	Keys: []captchagate.Key{
		{Source: captchagate.Field("phone"), Identity: captchagate.IdentityPhone, Rate: rate.Every(time.Minute), Burst: 2,
			Ceiling: 3, CeilingWindow: time.Hour},
		{Source: captchagate.ClientIP(), Rate: rate.Every(10 * time.Second), Burst: 10, Ceiling: 30, CeilingWindow: time.Hour},
		{Source: captchagate.Everyone(), Rate: rate.Every(time.Second), Burst: 50, Ceiling: 2000, CeilingWindow: 24 * time.Hour},
	},
}

// NewApp returns the demo's routes; send delivers a code.
func NewApp(gate *captchagate.Gate, store sessions.Store, send func(phone, code string)) (http.Handler, error) {
	flow, err := htmlform.New(gate, htmlform.Options{Sessions: store,
		// The page posts JSON, so the gate answers it with JSON; a form post
		// (without JavaScript) gets the page back with the widget.
		Render: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(htmlform.Status(err))
			io.WriteString(w, page)
		}})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", flow.Handler())
	mux.Handle("POST /api/send-code", flow.Middleware(gate.Guard(SendPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Phone string `json:"phone"`
		}
		w.Header().Set("Content-Type", "application/json")
		// The body is read the way the guard's Field("phone") reads it, so
		// the code goes to the number the guard counted: a form (the page
		// without JavaScript) as a form, JSON as JSON, anything else not at
		// all.
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt {
		case "application/x-www-form-urlencoded":
			req.Phone = r.PostFormValue("phone")
		case "application/json":
			if json.NewDecoder(r.Body).Decode(&req) != nil {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"invalid_request"}`+"\n")
				return
			}
		default:
			w.WriteHeader(http.StatusUnsupportedMediaType)
			io.WriteString(w, `{"error":"unsupported_media_type","error_description":"send Content-Type: application/json"}`+"\n")
			return
		}
		if strings.TrimSpace(req.Phone) == "" {
			// The guard counted a phone this reading does not see (a JSON
			// body sent as a form): send nothing.
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_request","error_description":"phone is required"}`+"\n")
			return
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
		send(req.Phone, fmt.Sprintf("%06d", n))
		json.NewEncoder(w).Encode(map[string]any{"sent": true})
	}))))
	mux.Handle("GET /{$}", flow.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, page)
	})))
	return mux, nil
}

const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Get a sign-in code — captchagate demo</title>
<link rel="stylesheet" href="/captcha/widget.css">
<style>body{font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:26em;padding:0 1em}
label{display:block;margin:.6em 0 .2em}input{font:inherit;padding:.25em .4em;width:14em}
#state{padding:.5em .7em;border-radius:4px;margin:1em 0}#state:empty{display:none}
#state.sent{background:#e6f4ea;color:#1e4620}#state.limit{background:#fdecea;color:#611a15}#state.info{background:#fff4e5;color:#663c00}
button{font:inherit;padding:.3em 1.2em;margin-top:.8em}</style>
</head><body>
<main>
<h1>Get a sign-in code</h1>
<form id="send" method="post" action="/api/send-code">
<label for="phone">Phone number</label>
<input id="phone" name="phone" type="tel" autocomplete="tel" required placeholder="+1 555 0100">
<button type="submit" id="send-button">Send me a code</button>
</form>
<p id="state" role="status" aria-live="polite"></p>
<div id="captcha"></div>
</main>
<script src="/captcha/widget.js"></script>
<script>
(function () {
  var form = document.getElementById("send"), state = document.getElementById("state"),
      box = document.getElementById("captcha"), button = document.getElementById("send-button");
  function show(cls, text) { state.className = cls; state.textContent = text; }
  function send(phone, token) {
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (token) { headers["X-Captcha-Token"] = token; }
    return fetch("/api/send-code", { method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify({ phone: phone }) }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.ok) { show("sent", "Code sent to " + phone + ". It is valid for 10 minutes."); return; }
        if (body.captcha) {
          show("info", "Too many codes for this number just now: solve the security check to get another.");
          return captchagate.solve(box, body, { submitLabel: "Verify and send" }).then(function (tok) {
            return send(phone, tok);
          });
        }
        if (body.error === "too_many_requests") {
          var mins = Math.max(1, Math.ceil((+res.headers.get("Retry-After") || 60) / 60));
          show("limit", "No more codes for this number for now. Try again in " + mins + " minute" + (mins > 1 ? "s" : "") + ".");
          return;
        }
        show("limit", body.error_description || "Something went wrong.");
      });
    });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    button.disabled = true;
    box.textContent = "";
    send(document.getElementById("phone").value.trim()).catch(function () {
      show("limit", "The connection failed. Please try again.");
    }).then(function () { button.disabled = false; });
  });
})();
</script>
</body></html>
`
