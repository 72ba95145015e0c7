// Command cap shows the Cap widget (@cap.js/widget, unmodified) answering
// the gate's captcha: a sign-in form guarded per username, three wrong
// passwords and then a Cap proof of work. The guard's captcha_required
// carries a captcha of kind "cap"; the page puts a <cap-widget> up whose
// API endpoint is that captcha's ({prefix}{id}/); the widget fetches the
// challenge, solves it in workers when the visitor clicks it, redeems it
// for the gate's single-use captcha_token and the page retries the sign-in
// with it in the widget's cap-token member.
//
//	npm ci --prefix examples/cap/web    # the Cap widget, once
//	go run ./examples/cap               # http://127.0.0.1:8080/
package main

import (
	"encoding/json"
	"flag"
	"html/template"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/capwidget"
	"github.com/captchagate/captchagate/store/memstore"
)

// Prefix is where the gate's endpoints are mounted.
const Prefix = "/captcha/"

// LoginPolicy: three wrong passwords per username, then a challenge.
var LoginPolicy = captchagate.Policy{
	Name:        "login",
	Keys:        []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
	MaxFailures: 3,
}

// NewGate returns the demo's gate (on its own in-process store): Cap's
// proof of work, its dialect counting wrong proofs in store. A gate on a
// shared Store (Redis) would pass that store to both.
func NewGate(store captchagate.Store, pow capwidget.ProofOfWork, c captchagate.Config) (*captchagate.Gate, error) {
	c.Prefix, c.Challenge = Prefix, pow
	c.Dialects = append(c.Dialects, capwidget.Dialect{Store: store})
	return captchagate.New(c)
}

// NewApp returns the demo's routes; widgetScript is the path of
// @cap.js/widget's cap.min.js.
func NewApp(gate *captchagate.Gate, widgetScript string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix, gate.Handler())
	mux.Handle("POST /api/login", gate.Guard(LoginPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&req)
		if req.Password != "demo" {
			captchagate.Fail(r)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "wrong username or password"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"signed_in": req.Username})
	})))
	mux.HandleFunc("GET /vendor/cap.js", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(widgetScript); err != nil {
			http.Error(w, "run: npm ci --prefix examples/cap/web", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, widgetScript)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		page.Execute(w, nil)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// The page. The widget would fetch its WebAssembly solver from a CDN;
// CAP_CUSTOM_WASM_URL points it at this server, which has none (404), so
// it runs its own JavaScript solver and nothing leaves the site.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in (Cap) — captchagate demo</title>
<style>body{font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:26em;padding:0 1em}
label{display:block;margin:.6em 0 .2em}input{font:inherit;padding:.25em .4em;width:14em}
#state{padding:.5em .7em;border-radius:4px;margin:1em 0}#state:empty{display:none}
#state.ok{background:#e6f4ea;color:#1e4620}#state.problem{background:#fdecea;color:#611a15}#state.info{background:#fff4e5;color:#663c00}
button{font:inherit;padding:.3em 1.2em;margin-top:.8em}</style>
<script>window.CAP_CUSTOM_WASM_URL = "/vendor/no-wasm.wasm";</script>
<script src="/vendor/cap.js"></script>
</head><body>
<main>
<h1>Sign in (Cap)</h1>
<form id="main">
<label for="username">Username</label><input id="username" name="username" required autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password" required autocomplete="current-password">
<button type="submit" id="go">Sign in</button>
</form>
<p id="state" role="status" aria-live="polite"></p>
<div id="captcha"></div>
</main>
<script>
(function () {
  var form = document.getElementById("main"), state = document.getElementById("state"), box = document.getElementById("captcha");
  var go = document.getElementById("go"), busy = false;
  function show(cls, text) { state.className = cls; state.textContent = text; }
  // clearBox removes the widget; if it held focus (a keyboard user who
  // pressed its button), focus goes to Sign in, not to the page body.
  function clearBox() {
    var had = box.contains(document.activeElement) || (document.activeElement && document.activeElement.tagName === "CAP-WIDGET");
    box.textContent = "";
    if (had) { go.focus(); }
  }
  // A captcha of kind "cap": the widget's API endpoint is the captcha's
  // challenge_url without ".json". Its token goes back as cap-token. The
  // widget's button (role=button in its shadow root, Tab reaches it, Space
  // or Enter presses it) names itself by its state, in a live region.
  function widget(c) {
    clearBox();
    var w = document.createElement("cap-widget");
    w.setAttribute("data-cap-api-endpoint", c.challenge_url.replace(/\.json$/, "/"));
    w.addEventListener("solve", function (ev) { submit(ev.detail.token); }, { once: true });
    w.addEventListener("error", function (ev) {
      if (ev.detail && ev.detail.isCap) { show("problem", "The security check failed: " + ev.detail.message); }
    });
    box.appendChild(w);
  }
  // While a sign-in is sent, Sign in says it is unavailable (aria-disabled)
  // instead of being disabled: a disabled button would drop its focus to
  // the page body.
  function submit(token) {
    if (busy) { return; }
    var body = { username: document.getElementById("username").value, password: document.getElementById("password").value };
    if (token) { body["cap-token"] = token; }
    busy = true;
    go.setAttribute("aria-disabled", "true");
    function idle() { busy = false; go.removeAttribute("aria-disabled"); }
    fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body) }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        idle();
        if (res.ok) { clearBox(); show("ok", "Signed in as " + data.signed_in + "."); return; }
        if (data.captcha && data.captcha.kind === "cap") {
          show("info", "Please confirm you are human with the check below: Tab to it and press Space or Enter, or click it.");
          widget(data.captcha);
          return;
        }
        show("problem", data.error_description || data.error || "Something went wrong.");
      });
    }, function () { idle(); show("problem", "The connection failed."); });
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); show("", ""); submit(null); });
})();
</script>
</body></html>`))

// widgetScript finds the npm-installed widget from the repository root or
// from this directory.
func widgetScript() string {
	for _, dir := range []string{"examples/cap/web", "web"} {
		p := filepath.Join(dir, "node_modules", "@cap.js", "widget", "cap.min.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("examples/cap/web", "node_modules", "@cap.js", "widget", "cap.min.js")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	store := memstore.New(memstore.Options{})
	defer store.Close()
	gate, err := NewGate(store, capwidget.ProofOfWork{}, captchagate.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer gate.Close()
	log.Printf("captchagate Cap demo on http://%s/ (the password is \"demo\")", *addr)
	srv := &http.Server{Addr: *addr, Handler: NewApp(gate, widgetScript()), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
