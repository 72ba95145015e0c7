package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
	"github.com/captchagate/captchagate/dialect/idaas"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
	"github.com/captchagate/captchagate/hosted"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

// fakeTurnstile stands in for Cloudflare: a script defining the turnstile
// global (render calls back with a response token it fetched) and a
// siteverify that accepts each token once.
type fakeTurnstile struct {
	mu     sync.Mutex
	tokens map[string]bool
	n      int
}

func (f *fakeTurnstile) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /fake/turnstile.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `window.turnstile = { render: function (el, o) {
  el.textContent = "turnstile for " + o.sitekey;
  fetch("/fake/token").then(function (r) { return r.text(); }).then(o.callback);
} };`)
	})
	mux.HandleFunc("GET /fake/token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.n++
		tok := "XXXX.DUMMY.TOKEN." + strconv.Itoa(f.n)
		f.tokens[tok] = false
		f.mu.Unlock()
		io.WriteString(w, tok)
	})
	mux.HandleFunc("POST /fake/siteverify", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		used, ok := f.tokens[r.PostForm.Get("response")]
		good := ok && !used && r.PostForm.Get("secret") == "test-secret"
		if good {
			f.tokens[r.PostForm.Get("response")] = true
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if good {
			io.WriteString(w, `{"success":true,"hostname":"127.0.0.1","error-codes":[],"action":""}`)
			return
		}
		io.WriteString(w, `{"success":false,"error-codes":["invalid-input-response"]}`)
	})
}

// gateEvents counts the events a gate reports, by kind, and keeps the
// reasons of refused captchas and tokens and the ids of issued captchas.
type gateEvents struct {
	mu      sync.Mutex
	n       map[captchagate.EventKind]int
	refused []string
	issued  []string
}

func (e *gateEvents) record(ev captchagate.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[ev.Kind]++
	if ev.Kind == captchagate.EventCaptchaRejected || ev.Kind == captchagate.EventTokenRefused {
		e.refused = append(e.refused, ev.Kind.String()+": "+ev.Reason)
	}
	if ev.Kind == captchagate.EventCaptchaIssued {
		e.issued = append(e.issued, ev.CaptchaID)
	}
}

// issuedIDs returns the ids of the captchas issued so far, in order.
func (e *gateEvents) issuedIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.issued)
}

// counts returns a copy of the counts and of the refusals so far.
func (e *gateEvents) counts() (map[captchagate.EventKind]int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.n), slices.Clone(e.refused)
}

// payloadSpy wraps the demo and notes the took of every ALTCHA payload
// posted to verify, as the widget wrote it (decoded here, not by the
// decoder under test); it changes nothing.
type payloadSpy struct {
	mu   sync.Mutex
	took []string
	v2   []v2Seen // the payloads posted to the v2 gate's verify
	next http.Handler
}

// v2Seen is what payloadSpy notes of a v2 payload: its members' names and
// the solution's time, as the widget wrote them.
type v2Seen struct {
	Members, Parameters, Solution []string
	Time                          string
}

func (p *payloadSpy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/altcha2/captcha/verify" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<14))
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		var v struct {
			Answer string `json:"captcha_answer"`
		}
		var payload struct {
			Challenge struct {
				Parameters map[string]json.RawMessage `json:"parameters"`
			} `json:"challenge"`
			Solution map[string]json.RawMessage `json:"solution"`
		}
		var members map[string]json.RawMessage
		if err == nil && json.Unmarshal(body, &v) == nil {
			raw, err := base64.StdEncoding.DecodeString(v.Answer)
			if err == nil && json.Unmarshal(raw, &payload) == nil && json.Unmarshal(raw, &members) == nil {
				p.mu.Lock()
				p.v2 = append(p.v2, v2Seen{Members: slices.Sorted(maps.Keys(members)), Parameters: slices.Sorted(maps.Keys(payload.Challenge.Parameters)),
					Solution: slices.Sorted(maps.Keys(payload.Solution)), Time: string(payload.Solution["time"])})
				p.mu.Unlock()
			}
		}
	}
	if r.Method == http.MethodPost && r.URL.Path == "/altcha/captcha/verify" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<14))
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		var v struct {
			Answer string `json:"captcha_answer"`
		}
		var payload struct {
			Took json.RawMessage `json:"took"`
		}
		if err == nil && json.Unmarshal(body, &v) == nil {
			raw, err := base64.StdEncoding.DecodeString(v.Answer)
			if err == nil && json.Unmarshal(raw, &payload) == nil {
				p.mu.Lock()
				p.took = append(p.took, string(payload.Took))
				p.mu.Unlock()
			}
		}
	}
	p.next.ServeHTTP(w, r)
}

func (p *payloadSpy) v2Payloads() []v2Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.v2)
}

func (p *payloadSpy) tooks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.took)
}

type demo struct {
	srv     *httptest.Server
	slider  *gatetest.SliderSpy
	altcha  *gateEvents // what the ALTCHA gate answered
	altcha2 *gateEvents // what the ALTCHA v2 gate answered
	spy     *payloadSpy
}

// demoOptions adjust the demo for one test.
type demoOptions struct {
	altcha func(*captchagate.Config)       // changes the ALTCHA gate's Config
	wrap   func(http.Handler) http.Handler // wraps everything the server serves
}

func newDemo(t *testing.T) *demo {
	t.Helper()
	return newDemoWith(t, demoOptions{})
}

func newDemoWith(t *testing.T, o demoOptions) *demo {
	t.Helper()
	d := &demo{
		slider:  &gatetest.SliderSpy{},
		altcha:  &gateEvents{n: map[captchagate.EventKind]int{}},
		altcha2: &gateEvents{n: map[captchagate.EventKind]int{}},
	}
	fake := &fakeTurnstile{tokens: map[string]bool{}}
	mux := http.NewServeMux()
	fake.routes(mux)
	d.spy = &payloadSpy{next: mux}
	var h http.Handler = d.spy
	if o.wrap != nil {
		h = o.wrap(h)
	}
	d.srv = httptest.NewServer(h)
	t.Cleanup(d.srv.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	newGate := func(prefix string, c captchagate.Challenge, ds ...captchagate.Dialect) *captchagate.Gate {
		cfg := captchagate.Config{Prefix: prefix, Challenge: c, Dialects: ds, Logger: quiet}
		if prefix == "/altcha/captcha/" {
			cfg.OnEvent = d.altcha.record
			if o.altcha != nil {
				o.altcha(&cfg)
			}
		}
		if prefix == "/altcha2/captcha/" {
			cfg.OnEvent = d.altcha2.record
		}
		g, err := captchagate.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { g.Close() })
		return g
	}
	ts := hosted.Turnstile("1x00000000000000000000AA", "test-secret")
	ts.VerifyURL = d.srv.URL + "/fake/siteverify"
	store := sessions.NewCookieStore(gatetest.Secret)
	app, err := NewApp(Gates{
		Slider: newGate("/slider/captcha/", d.slider, idaas.Dialect{ClientIDs: []string{ClientID}}),
		Altcha: newGate("/altcha/captcha/", altcha.ProofOfWork{MaxNumber: 20_000}),
		// ALTCHA v2 at its defaults (PBKDF2/SHA-256, cost 1,000, counter up
		// to 1,000), as the demo serves it.
		Altcha2: newGate("/altcha2/captcha/", altcha.ProofOfWorkV2{}),
		Hosted:  newGate("/hosted/captcha/", ts),
	}, store, Options{AltchaScript: altchaScript(), HostedScriptURL: "/fake/turnstile.js"})
	require.NoError(t, err)
	mux.Handle("/", app)
	return d
}

// The slider puzzle in a real browser: a wrong position set with the
// keyboard, then the piece dragged with the mouse to the gap; the seed's
// verify with device headers gives the token the page retries with.
func TestSliderPageInBrowser(t *testing.T) {
	d := newDemo(t)
	ctx := browsertest.New(t, 90*time.Second)
	shots := browsertest.NewShots(t, ctx, "slider")
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(d.srv.URL+"/slider"), chromedp.SendKeys("#phone", "152 0000 0000"))
	b(chromedp.Click("#go"))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Code sent to 152 0000 0000")
	clear()
	b(chromedp.Click("#go"))
	loaded := `(function(){var i=document.querySelector(".captchagate-board img:first-child"),p=document.querySelector("[data-cg-piece]");
		return !!i && !!p && i.complete && i.naturalWidth === 320 && p.complete && p.naturalWidth === 48;})()`
	browsertest.Wait(t, ctx, "the puzzle", loaded)
	puzzleID := func() string {
		src := browsertest.Eval[string](t, ctx, `document.querySelector(".captchagate-board img").getAttribute("src")`)
		return strings.TrimSuffix(strings.TrimPrefix(src, "/slider/captcha/"), ".png")
	}
	id := puzzleID()
	x, ok := d.slider.Gap(id)
	require.True(t, ok, "the browser loaded puzzle %s", id)
	// The keyboard step below answers 10, which must be wrong.
	require.Greater(t, x, 10+5, "the gap is past 10 and the slider's tolerance")
	assert.Equal(t, "INPUT", browsertest.Eval[string](t, ctx, `document.activeElement.tagName`), "focus is on the slider")
	shots.Take("puzzle")

	// Keyboard: Page Up (a tenth of the range in Chromium, about 27
	// picture pixels), Enter. The gap is never that close to the start, so
	// this is wrong: a new puzzle comes.
	b(chromedp.KeyEvent(kb.PageUp), chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "a new puzzle", `document.querySelector("[data-cg-message][role=alert]") !== null && `+loaded+
		` && document.querySelector(".captchagate-board img").getAttribute("src") !== "/slider/captcha/`+id+`.png"`)
	assert.Contains(t, browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-message]").textContent`), "not right")
	shots.Take("wrong")
	id = puzzleID()
	x, ok = d.slider.Gap(id)
	require.True(t, ok)

	// Mouse: press on the piece, move in steps, release over the gap.
	type rect struct{ X, Y, W, H float64 }
	r := browsertest.Eval[rect](t, ctx, `(function(){var b=document.querySelector("[data-cg-piece]").getBoundingClientRect();
		var img=document.querySelector(".captchagate-board img").getBoundingClientRect();return {X:img.left,Y:b.top,W:b.width,H:b.height};})()`)
	held := func(p *input.DispatchMouseEventParams) { p.Button, p.Buttons = input.MouseButtonLeft, 1 }
	sx, sy := r.X+r.W/2, r.Y+r.H/2
	b(chromedp.MouseEvent(chromedp.MouseMoved, sx, sy), chromedp.MouseEvent(chromedp.MousePressed, sx, sy, held, chromedp.ClickCount(1)))
	for i := 1; i <= 10; i++ {
		b(chromedp.MouseEvent(chromedp.MouseMoved, sx+float64(x)*float64(i)/10, sy, held))
	}
	shots.Take("dragged")
	clear()
	b(chromedp.MouseEvent(chromedp.MouseReleased, sx+float64(x), sy, held, chromedp.ClickCount(1)))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Code sent to 152 0000 0000")
	shots.Take("sent")
	assert.False(t, browsertest.Eval[bool](t, ctx, `!!document.querySelector("[data-cg-range]")`), "the puzzle is gone")
}

// altchaPage opens the ALTCHA page of d in a browser and fails alice's
// login three times, then hands over the browser, its screenshots, and
// helpers to run actions and clear the page's state.
func altchaPage(t *testing.T, d *demo, shotsName string) (context.Context, *browsertest.Shots, func(...chromedp.Action[chromedp.Void]), func()) {
	t.Helper()
	ctx := browsertest.New(t, 90*time.Second)
	shots := browsertest.NewShots(t, ctx, shotsName)
	b, clear := openAltcha(t, ctx, d, "/altcha", "alice")
	return ctx, shots, b, clear
}

// openAltcha opens the ALTCHA page at path of d in the browser ctx and
// fails user's login three times, then returns helpers to run actions and
// clear the page's state.
func openAltcha(t *testing.T, ctx context.Context, d *demo, path, user string) (func(...chromedp.Action[chromedp.Void]), func()) {
	t.Helper()
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	clear := func() { browsertest.ClearState(t, ctx) }
	b(chromedp.Navigate(d.srv.URL+path), chromedp.SendKeys("#username", user), chromedp.SendKeys("#password", "nope"))
	browsertest.Wait(t, ctx, "the altcha element", `!!customElements.get("altcha-widget")`)
	for i := range 3 {
		clear()
		b(chromedp.Click("#go"))
		assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "attempt %d", i+1)
	}
	return b, clear
}

// ALTCHA's own widget, installed from npm and unmodified, solves the
// challenge our gate serves; the sign-in then passes with the token.
//
// The gate must accept the first payload the widget sends, every time:
// widget.js shows a new challenge after a refusal, so the page alone might
// hide a payload the gate misreads. The gate's own events are counted
// instead: each solve is one verification and no refusal, over several
// solves, since a payload the gate misreads may be only one in ten (took
// without a fraction).
func TestAltchaPageInBrowser(t *testing.T) {
	needAltcha(t)
	d := newDemo(t)
	ctx, shots, b, clear := altchaPage(t, d, "altcha")
	n, _ := d.altcha.counts()
	require.Zero(t, n[captchagate.EventCaptchaVerified], "no captcha before the threshold")

	// Past the threshold every sign-in needs a captcha: the widget fetches
	// the challenge, solves it in workers, and the page retries with the
	// token; nothing for the visitor to do. The wrong password keeps the
	// account tripped for the next solve; the last one signs in.
	const solves = 5
	for i := range solves {
		if i == solves-1 {
			b(chromedp.SetValue("#password", "demo"))
		}
		clear()
		b(chromedp.Click("#go"))
		if i == solves-1 {
			assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as alice")
		} else {
			assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "solve %d", i+1)
		}
		n, refused := d.altcha.counts()
		require.Empty(t, refused, "solve %d: the gate refused what the widget sent (payloads' took: %v)", i+1, d.spy.tooks())
		require.Equal(t, i+1, n[captchagate.EventCaptchaVerified], "solve %d: one verification a solve", i+1)
		require.Equal(t, i+1, n[captchagate.EventTokenAccepted], "solve %d: its token let the sign-in through", i+1)
	}
	shots.Take("signed-in")
	tooks := d.spy.tooks()
	assert.Len(t, tooks, solves, "one payload a solve")
	t.Logf("the widget's payloads said took %v", tooks)
}

// The unmodified ALTCHA widget solves the gate's v2 challenges
// (ProofOfWorkV2 at its defaults: PBKDF2/SHA-256 in the widget's workers):
// three accounts, each tripped, then two solves each (the first with the
// wrong password, the second signing in). The gate's own events show that
// every solve is one verification and that nothing was refused: the
// widget's first payload passed every time.
func TestAltchaV2PageInBrowser(t *testing.T) {
	needAltcha(t)
	d := newDemo(t)
	ctx := browsertest.New(t, 150*time.Second)
	shots := browsertest.NewShots(t, ctx, "altcha2")
	solves := 0
	for run, user := range []string{"alice", "bob", "carol"} {
		b, clear := openAltcha(t, ctx, d, "/altcha2", user)
		for i := range 2 {
			if i == 1 {
				b(chromedp.SetValue("#password", "demo"))
			}
			clear()
			start := time.Now()
			b(chromedp.Click("#go"))
			if i == 1 {
				assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as "+user)
			} else {
				assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "run %d", run+1)
			}
			solves++
			n, refused := d.altcha2.counts()
			require.Empty(t, refused, "run %d solve %d: the gate refused what the widget sent (%+v)", run+1, i+1, d.spy.v2Payloads())
			require.Equal(t, solves, n[captchagate.EventCaptchaVerified], "run %d solve %d: one verification a solve", run+1, i+1)
			require.Equal(t, solves, n[captchagate.EventTokenAccepted], "run %d solve %d: its token let the sign-in through", run+1, i+1)
			t.Logf("run %d solve %d took %v", run+1, i+1, time.Since(start).Round(time.Millisecond))
		}
	}
	shots.Take("signed-in")
	seen := d.spy.v2Payloads()
	require.Len(t, seen, solves, "one payload a solve")
	for _, s := range seen {
		// The widget answered in the v2 format, not v1.
		assert.Equal(t, []string{"challenge", "solution"}, s.Members)
		assert.Equal(t, []string{"algorithm", "cost", "expiresAt", "keyLength", "keyPrefix", "nonce", "salt"}, s.Parameters)
		assert.Equal(t, []string{"counter", "derivedKey", "time"}, s.Solution)
	}
	n, _ := d.altcha.counts()
	assert.Zero(t, n[captchagate.EventCaptchaIssued], "the v1 gate was not involved")
}

// needAltcha skips t without the npm-installed ALTCHA widget, or fails it
// with CAPTCHAGATE_REQUIRE_BROWSER=1.
func needAltcha(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(altchaScript()); err != nil {
		msg := "the ALTCHA widget is not installed; run: npm ci --prefix examples/challenges/web"
		if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// After the gate refuses a payload, widget.js puts the fresh captcha's
// ALTCHA widget up without auto: it waits for the visitor's click instead
// of solving by itself again, so a server that refuses every payload sets
// off no loop. Only the first widget of a solve starts on its own.
//
// The refusal is the gate's own, made certain by its clock: the ALTCHA gate
// of this test reads an injected clock, which jumps past CaptchaTTL once the
// first challenge JSON has been served, so the unmodified widget's first
// payload, right as it is, is answered captcha_invalid (expired) with a
// fresh captcha.
func TestAltchaRetryWaitsForClick(t *testing.T) {
	needAltcha(t)
	const ttl = 5 * time.Minute
	clk := storetest.NewClock()
	// The widget compares the expiry written in the salt with the browser's
	// clock: the gate's clock starts at the real time.
	clk.Advance(time.Since(clk.Now()))
	var (
		mu       sync.Mutex
		served   = map[string]int{} // GET /altcha/captcha/{id}.json, by id
		jumped   bool
		jumpCode int // the status of the challenge served before the jump
	)
	d := newDemoWith(t, demoOptions{
		altcha: func(c *captchagate.Config) { c.Now, c.CaptchaTTL = clk.Now, ttl },
		wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, isJSON := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/altcha/captcha/"), ".json")
				if r.Method != http.MethodGet || !isJSON || !strings.HasPrefix(r.URL.Path, "/altcha/captcha/") {
					next.ServeHTTP(w, r)
					return
				}
				mu.Lock()
				served[id]++
				jump := !jumped
				jumped = true
				mu.Unlock()
				if !jump {
					next.ServeHTTP(w, r)
					return
				}
				// The first challenge is rendered in full, then the clock
				// moves, then the browser gets it: whatever the widget
				// sends for it comes past its TTL (and within the minute an
				// expired captcha still says "expired").
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				clk.Advance(ttl + time.Second)
				mu.Lock()
				jumpCode = rec.Code
				mu.Unlock()
				maps.Copy(w.Header(), rec.Header())
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
			})
		},
	})
	servedNow := func() (map[string]int, int) {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(served), jumpCode
	}
	ctx, shots, b, clear := altchaPage(t, d, "altcha-retry")
	b(chromedp.SetValue("#password", "demo"))
	clear()
	b(chromedp.Click("#go"))

	// The first widget solves by itself; the gate refuses its payload. The
	// refusal's message and the next widget are put up together, in the
	// same callback.
	browsertest.Wait(t, ctx, "the refusal and the next widget",
		`!!document.querySelector("#captcha [data-cg-message][role=alert]") && !!document.querySelector("#captcha altcha-widget")`)
	// The gate reports its events before it answers: these are the counts
	// at the moment the new widget is up.
	n, refused := d.altcha.counts()
	issued := d.altcha.issuedIDs()
	jsons, code := servedNow()
	payloads := d.spy.tooks()
	type widget struct {
		Count     int
		Challenge string
		HasAuto   bool
		Auto      string
		State     string
		Message   string
	}
	w := browsertest.Eval[widget](t, ctx, `(function(){var ws=document.querySelectorAll("altcha-widget"),w=ws[ws.length-1];
		return {Count: ws.length, Challenge: w.getAttribute("challenge"), HasAuto: w.hasAttribute("auto"), Auto: w.getAttribute("auto") || "", State: w.getState(),
			Message: document.querySelector("#captcha [data-cg-message]").textContent};})()`)
	shots.Take("refused")
	require.False(t, w.HasAuto, "the widget after a refusal has auto=%q: it solves by itself instead of waiting for a click", w.Auto)
	require.Equal(t, []string{"captcha_rejected: expired"}, refused, "one refusal, of the first payload, as expired (payloads' took: %v)", payloads)
	require.Zero(t, n[captchagate.EventCaptchaVerified], "no verification")
	require.Len(t, payloads, 1, "one payload posted")
	require.Equal(t, http.StatusOK, code, "the first challenge was served")
	require.Len(t, issued, 2, "the guard's captcha and the refusal's fresh one")
	assert.Equal(t, map[string]int{issued[0]: 1}, jsons, "the first challenge fetched once, the fresh one not yet")
	assert.Equal(t, 1, w.Count, "one widget")
	assert.Equal(t, "/altcha/captcha/"+issued[1]+".json", w.Challenge, "the new widget is the fresh captcha's")
	assert.Equal(t, "unverified", w.State, "the new widget waits")
	assert.Contains(t, w.Message, "expired", "the visitor is told why")
	assert.Equal(t, "info", browsertest.Eval[string](t, ctx, `document.getElementById("state").className`), "the sign-in waits for the captcha")

	// The visitor clicks the widget's checkbox (the altcha widget renders
	// it in light DOM): it fetches the fresh challenge, solves it, and the
	// page retries the sign-in with the token.
	b(chromedp.Click("#captcha altcha-widget input[type=checkbox]"))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as alice")
	shots.Take("signed-in")
	n, refused = d.altcha.counts()
	jsons, _ = servedNow()
	assert.Equal(t, []string{"captcha_rejected: expired"}, refused, "no other refusal")
	assert.Equal(t, 1, n[captchagate.EventCaptchaVerified], "one verification, after the click")
	assert.Equal(t, 1, n[captchagate.EventTokenAccepted], "its token let the sign-in through")
	assert.Equal(t, map[string]int{issued[0]: 1, issued[1]: 1}, jsons, "each challenge fetched once")
	assert.Len(t, d.spy.tooks(), 2, "two payloads in all")
	assert.Len(t, d.altcha.issuedIDs(), 2, "no other captcha issued")
}

// A hosted widget (a local stand-in for Turnstile's script and siteverify):
// the widget piece loads the script, renders it with the site key and
// verifies its response token.
func TestHostedPageInBrowser(t *testing.T) {
	d := newDemo(t)
	ctx := browsertest.New(t, 60*time.Second)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	b(chromedp.Navigate(d.srv.URL+"/hosted"), chromedp.SendKeys("#username", "bob"), chromedp.SendKeys("#password", "x"))
	for range 3 {
		browsertest.ClearState(t, ctx)
		b(chromedp.Click("#go"))
		browsertest.State(t, ctx, "problem")
	}
	b(chromedp.SetValue("#password", "demo"))
	browsertest.ClearState(t, ctx)
	b(chromedp.Click("#go"))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as bob")
}
