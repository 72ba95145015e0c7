// Command challenges shows the other kinds of challenge behind the same flow,
// one gate each:
//
//	/slider  "send me a code" guarded per phone number, answered with the
//	         slider puzzle through the identity-service seed's verify
//	         (point_json, token, sender and device headers)
//	/altcha  a sign-in form guarded per username, answered invisibly by the
//	         unmodified ALTCHA widget's proof of work (ALTCHA's v1 format)
//	/altcha2 the same with ALTCHA's v2 format (PBKDF2 key derivation with a
//	         cost), which the same widget solves
//	/hosted  the same sign-in form answered with Cloudflare Turnstile
//
// Whichever runs, the guard answers captcha_required naming the kind, a
// solved challenge gives the same single-use captcha_token, and the page
// retries with it.
//
//	npm ci --prefix examples/challenges/web     # the ALTCHA widget, once
//	go run ./examples/challenges                # http://127.0.0.1:8080/
//
// The hosted page uses Cloudflare's documented test keys unless
// TURNSTILE_SITEKEY and TURNSTILE_SECRET are set; their siteverify is on the
// internet, so that page needs a connection (the tests use a local one).
package main

import (
	"crypto/rand"
	"encoding/json"
	"flag"
	"html/template"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gorilla/sessions"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
	"github.com/captchagate/captchagate/dialect/idaas"
	"github.com/captchagate/captchagate/hosted"
	"github.com/captchagate/captchagate/htmlform"
	"github.com/captchagate/captchagate/slider"
)

// SendPolicy: one code per phone number, then one a minute with a captcha;
// at most five an hour whatever is solved.
var SendPolicy = captchagate.Policy{
	Name: "send-code",
	Keys: []captchagate.Key{func() captchagate.Key {
		k := captchagate.Phone(captchagate.JSONField("phone"))
		k.Rate, k.Burst, k.Ceiling, k.Required = rate.Every(time.Minute), 1, 5, true
		return k
	}()},
}

// LoginPolicy: three wrong passwords per username, then a challenge.
var LoginPolicy = captchagate.Policy{
	Name:        "login",
	Keys:        []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
	MaxFailures: 3,
}

// ClientID is the X-client-id the slider page sends and the gate accepts.
const ClientID = "captchagate-demo"

// Gates are the demo's gates, one per kind; their Prefix must be
// /slider/captcha/, /altcha/captcha/, /altcha2/captcha/ and
// /hosted/captcha/. Altcha2 (ALTCHA v2) may be nil: its page is then left
// out.
type Gates struct{ Slider, Altcha, Altcha2, Hosted *captchagate.Gate }

// Options: where the ALTCHA widget's file is and, for tests, where the
// hosted service's script is loaded from.
type Options struct {
	AltchaScript    string // path of altcha's dist/main/altcha.min.js
	HostedScriptURL string // "" for the service's own
}

// NewApp returns the demo's routes.
func NewApp(g Gates, store sessions.Store, o Options) (http.Handler, error) {
	mux := http.NewServeMux()
	gates := map[string]*captchagate.Gate{"slider": g.Slider, "altcha": g.Altcha, "hosted": g.Hosted}
	if g.Altcha2 != nil {
		gates["altcha2"] = g.Altcha2
	}
	for name, gate := range gates {
		// htmlform's Handler serves the gate's endpoints and widget.js.
		flow, err := htmlform.New(gate, htmlform.Options{Sessions: store, Render: captchagate.WriteError})
		if err != nil {
			return nil, err
		}
		mux.Handle("/"+name+"/captcha/", flow.Handler())
	}
	mux.Handle("POST /slider/api/send-code", g.Slider.Guard(SendPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Phone string }
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req)
		// A real app sends the code here.
		writeJSON(w, http.StatusOK, map[string]any{"sent": true, "phone": req.Phone})
	})))
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req)
		if req.Password != "demo" {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "wrong username or password"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"signed_in": req.Username})
	})
	mux.Handle("POST /altcha/api/login", g.Altcha.Guard(LoginPolicy)(login))
	mux.Handle("POST /hosted/api/login", g.Hosted.Guard(LoginPolicy)(login))
	if g.Altcha2 != nil {
		mux.Handle("POST /altcha2/api/login", g.Altcha2.Guard(LoginPolicy)(login))
	}
	mux.HandleFunc("GET /vendor/altcha.js", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(o.AltchaScript); err != nil {
			http.Error(w, "run: npm ci --prefix examples/challenges/web", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, o.AltchaScript)
	})
	pages := []pageData{
		{Kind: "slider", Title: "Get a sign-in code", Field: "phone", Label: "Phone number", Action: "/slider/api/send-code", Button: "Send me a code"},
		{Kind: "altcha", Title: "Sign in (proof of work)", Field: "username", Label: "Username", Action: "/altcha/api/login", Button: "Sign in", Password: true, Module: "/vendor/altcha.js"},
		{Kind: "hosted", Title: "Sign in (Turnstile)", Field: "username", Label: "Username", Action: "/hosted/api/login", Button: "Sign in", Password: true, ScriptURL: o.HostedScriptURL},
	}
	if g.Altcha2 != nil {
		pages = append(pages, pageData{Kind: "altcha2", Title: "Sign in (proof of work, ALTCHA v2)", Field: "username", Label: "Username", Action: "/altcha2/api/login", Button: "Sign in", Password: true, Module: "/vendor/altcha.js"})
	}
	for _, p := range pages {
		p.ClientID = ClientID
		mux.HandleFunc("GET /"+p.Kind, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			pageTmpl.Execute(w, p)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>captchagate challenges</title></head>
<body style="font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:30em"><main><h1>Kinds of challenge</h1><ul>
<li><a href="/slider">Slider puzzle</a>: get a code for a phone number (twice in a minute trips it)</li>
<li><a href="/altcha">Proof of work (ALTCHA)</a>: sign in (three wrong passwords trip it; the password is "demo")</li>
<li><a href="/altcha2">Proof of work (ALTCHA v2, PBKDF2)</a>: the same sign-in</li>
<li><a href="/hosted">Cloudflare Turnstile</a>: the same sign-in</li></ul></main></body></html>`)
	})
	return mux, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type pageData struct {
	Kind, Title, Field, Label, Action, Button string
	Password                                  bool
	Module, ScriptURL, ClientID               string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — captchagate demo</title>
<link rel="stylesheet" href="/{{.Kind}}/captcha/widget.css">
<style>body{font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:26em;padding:0 1em}
label{display:block;margin:.6em 0 .2em}input{font:inherit;padding:.25em .4em;width:14em}
#state{padding:.5em .7em;border-radius:4px;margin:1em 0}#state:empty{display:none}
#state.ok{background:#e6f4ea;color:#1e4620}#state.problem{background:#fdecea;color:#611a15}#state.info{background:#fff4e5;color:#663c00}
button{font:inherit;padding:.3em 1.2em;margin-top:.8em}</style>
{{with .Module}}<script type="module" src="{{.}}"></script>{{end}}
</head><body>
<main>
<h1>{{.Title}}</h1>
<form id="main" data-kind="{{.Kind}}" data-action="{{.Action}}" data-field="{{.Field}}" data-script="{{.ScriptURL}}" data-client="{{.ClientID}}">
<label for="{{.Field}}">{{.Label}}</label>
<input id="{{.Field}}" name="{{.Field}}" required autocomplete="{{if .Password}}username{{else}}tel{{end}}">
{{if .Password}}<label for="password">Password</label><input id="password" name="password" type="password" required autocomplete="current-password">{{end}}
<button type="submit" id="go">{{.Button}}</button>
</form>
<p id="state" role="status" aria-live="polite"></p>
<div id="captcha"></div>
</main>
<script src="/{{.Kind}}/captcha/widget.js"></script>
<script>
(function () {
  var form = document.getElementById("main"), state = document.getElementById("state"), box = document.getElementById("captcha");
  var field = form.dataset.field, go = document.getElementById("go");
  function show(cls, text) { state.className = cls; state.textContent = text; }
  // The slider seed's device headers.
  var fp = localStorage.getItem("cg-device") || (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
  localStorage.setItem("cg-device", fp);
  var device = { "X-operating-sys-version": navigator.platform || "unknown", "X-device-fingerprint": fp,
    "X-agent": navigator.userAgent, "X-client-id": form.dataset.client };
  // While a request is sent, the button says it is unavailable
  // (aria-disabled) instead of being disabled: a disabled button would drop
  // a keyboard user's focus to the page body.
  var busy = false;
  function idle() { busy = false; go.removeAttribute("aria-disabled"); }
  function submit(token) {
    if (busy) { return Promise.resolve(); }
    var body = {};
    body[field] = document.getElementById(field).value;
    var pw = document.getElementById("password");
    if (pw) { body.password = pw.value; }
    if (token) { body.captcha_token = token; }
    busy = true;
    go.setAttribute("aria-disabled", "true");
    return fetch(form.dataset.action, { method: "POST", headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body) }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        idle();
        if (res.ok) { show("ok", data.signed_in ? "Signed in as " + data.signed_in + "." : "Code sent to " + data.phone + "."); return; }
        if (data.captcha) {
          show("info", "Please complete the security check (" + data.captcha.kind + ").");
          var opts = { scriptURL: form.dataset.script || undefined };
          if (data.captcha.kind === "slider") { opts.sender = body[field]; opts.headers = device; }
          return captchagate.solve(box, data, opts).then(function (tok) { return submit(tok); });
        }
        show("problem", data.error_description || data.error || "Something went wrong.");
      });
    }, function () { idle(); show("problem", "The connection failed."); });
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); show("", ""); submit(null); });
})();
</script>
</body></html>`))

// altchaScript finds the npm-installed widget from the repository root or
// from this directory.
func altchaScript() string {
	for _, dir := range []string{"examples/challenges/web", "web"} {
		p := filepath.Join(dir, "node_modules", "altcha", "dist", "main", "altcha.min.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("examples/challenges/web", "node_modules", "altcha", "dist", "main", "altcha.min.js")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	newGate := func(prefix string, c captchagate.Challenge, d ...captchagate.Dialect) *captchagate.Gate {
		g, err := captchagate.New(captchagate.Config{Prefix: prefix, Challenge: c, Dialects: d})
		if err != nil {
			log.Fatal(err)
		}
		return g
	}
	siteKey, secret := os.Getenv("TURNSTILE_SITEKEY"), os.Getenv("TURNSTILE_SECRET")
	if siteKey == "" || secret == "" {
		// Cloudflare's documented test keys: every answer passes.
		siteKey, secret = "1x00000000000000000000AA", "1x0000000000000000000000000000000AA"
	}
	gates := Gates{
		Slider: newGate("/slider/captcha/", slider.Puzzle{}, idaas.Dialect{ClientIDs: []string{ClientID}}),
		Altcha: newGate("/altcha/captcha/", altcha.ProofOfWork{}),
		// ALTCHA's v2 format: the widget fetches {"parameters":…,"signature":…}
		// and derives keys with PBKDF2/SHA-256 (altcha.ProofOfWorkV2's defaults).
		Altcha2: newGate("/altcha2/captcha/", altcha.ProofOfWorkV2{}),
		Hosted:  newGate("/hosted/captcha/", hosted.Turnstile(siteKey, secret)),
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		log.Fatal(err)
	}
	store := sessions.NewCookieStore(key)
	h, err := NewApp(gates, store, Options{AltchaScript: altchaScript()})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("captchagate challenges demo on http://%s/", *addr)
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
