package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// holder holds chosen requests of the demo until the test lets them go,
// so that a state that lasts a moment in real use (the widget fetching
// its challenge, the gate verifying a payload) stays put while the test
// reads the accessibility tree and runs axe-core; no sleeps. It can also
// spoil the first payload posted to verify, for a refusal by the gate.
type holder struct {
	*browsertest.Holds // "json" or "verify"
	mu                 sync.Mutex
	prefix             string   // the gate's, e.g. "/altcha/captcha/"
	spoil              bool     // spoil the next verify's answer
	garble             bool     // replace the next verify's answer with one the gate cannot read
	verifies           []string // the answers posted to verify, as sent
}

func newHolder(prefix string) *holder { return &holder{Holds: browsertest.NewHolds(), prefix: prefix} }

func (h *holder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := ""
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, h.prefix) && strings.HasSuffix(r.URL.Path, ".json"):
			what = "json"
		case r.Method == http.MethodPost && r.URL.Path == h.prefix+"verify":
			what = "verify"
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<14))
			var m map[string]string
			json.Unmarshal(body, &m)
			h.mu.Lock()
			h.verifies = append(h.verifies, m["captcha_answer"])
			if h.spoil {
				h.spoil = false
				m["captcha_answer"] = spoil(m["captcha_answer"])
				body, _ = json.Marshal(m)
			}
			if h.garble {
				h.garble = false
				m["captcha_answer"] = "not a payload"
				body, _ = json.Marshal(m)
			}
			h.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.Wait(what)
		next.ServeHTTP(w, r)
	})
}

// spoil returns an ALTCHA payload (base64 JSON) with its solution's
// number (v1) or counter (v2) one higher: well formed, and wrong.
func spoil(payload string) string {
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return payload
	}
	var p map[string]any
	if json.Unmarshal(raw, &p) != nil {
		return payload
	}
	if n, ok := p["number"].(float64); ok {
		p["number"] = n + 1
	}
	if s, ok := p["solution"].(map[string]any); ok {
		if n, ok := s["counter"].(float64); ok {
			s["counter"] = n + 1
		}
	}
	raw, _ = json.Marshal(p)
	return base64.StdEncoding.EncodeToString(raw)
}

func (h *holder) answers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.verifies...)
}

// The proof-of-work pages (ALTCHA v1 and v2, the unmodified widget) for a
// keyboard and screen-reader user, in Chromium. By keyboard alone: Tab
// from the username to the password and Sign in, Enter; past the
// threshold the widget solves by itself, and what it is doing is said in
// words in the accessibility tree: the widget names its checkbox
// "Verifying..." while it fetches and solves, then "Verified", and the
// gate's frame says "Verifying…" in a polite live region from the widget's
// start of work to the gate's answer (focus being elsewhere, the
// checkbox's name alone would not be heard); the first payload is accepted and
// the page says "Signed in". After a refusal (the gate's own, of a payload
// this test spoils on its way), the message is an alert, the next widget
// waits: Tab reaches its checkbox, Space solves it, that payload is
// accepted, and focus goes back to the field it came from rather than to the
// page body.
// axe-core (WCAG 2.1 A/AA) finds no violation in any of these states.
func TestProofOfWorkWithoutSight(t *testing.T) {
	needAltcha(t)
	for _, kind := range []string{"altcha", "altcha2"} {
		t.Run(kind, func(t *testing.T) { powWithoutSight(t, kind) })
	}
}

func powWithoutSight(t *testing.T, kind string) {
	h := newHolder("/" + kind + "/captcha/")
	d := newDemoWith(t, demoOptions{wrap: h.wrap})
	t.Cleanup(h.ReleaseAll) // before the server closes
	ctx := browsertest.New(t, 150*time.Second)
	axe.Script(t)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	js := func(expr string) string { return browsertest.Eval[string](t, ctx, expr) }
	active := func() string {
		return js(`(function(){ var e = document.activeElement; return e.id || e.getAttribute("type") || e.tagName; })()`)
	}
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(d.srv.URL + "/" + kind))
	browsertest.Wait(t, ctx, "the altcha element", `!!customElements.get("altcha-widget")`)
	assert.Len(t, axe.Find(axe.Tree(t, ctx), "main", ""), 1, "one main landmark")
	axe.Run(t, ctx, kind+": sign-in page")

	// Keyboard only: the username field, Tab, the password, Enter (the
	// form's own submission; focus stays in the field). Sign in is a Tab
	// further: the page disables it while it posts, and a disabled button
	// loses focus to the page body, so a keyboard user sends from the field.
	browsertest.TripByKeyboard(t, ctx, "alice", "demo", 3)

	// The widget fetching its challenge: held, so the state stays.
	h.Next("json")
	clear()
	b(chromedp.KeyEvent(kb.Enter))
	h.Held(t, "json")
	browsertest.Wait(t, ctx, "the widget verifying", `(function(){var w=document.querySelector("#captcha altcha-widget");
		return !!w && w.getState && w.getState() === "verifying";})()`)
	tree := axe.Tree(t, ctx)
	assert.NotEmpty(t, axe.Find(tree, "checkbox", "Verifying..."), "the widget's checkbox is named by what it is doing")
	assert.Equal(t, "polite", axe.Live(tree, "Verifying…"), "and a live region says it, focus being elsewhere")
	assert.NotEmpty(t, axe.Find(tree, "paragraph", "Checking that you are not a robot"), "and the gate's hint says what it is")
	assert.Equal(t, "info", js(`document.getElementById("state").className`))
	axe.Run(t, ctx, kind+": widget verifying")

	// The gate checking the widget's payload: held too.
	h.Next("verify")
	h.Release("json")
	h.Held(t, "verify")
	browsertest.Wait(t, ctx, "the gate's status", `document.querySelector("#captcha [data-cg-status]").textContent !== ""`)
	tree = axe.Tree(t, ctx)
	assert.Equal(t, "polite", axe.Live(tree, "Verifying…"), "the gate's check is said in a live region")
	assert.NotEmpty(t, axe.Find(tree, "checkbox", "Verified"), "the widget says it is done")
	axe.Run(t, ctx, kind+": widget verified, gate verifying")
	h.Release("verify")
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as alice")
	assert.Equal(t, "polite", axe.Live(axe.Tree(t, ctx), "Signed in as alice"), "the outcome is said")
	assert.Equal(t, "password", active(), "focus stays where the visitor was")
	assert.Len(t, h.answers(), 1, "the first payload was accepted")
	axe.Run(t, ctx, kind+": signed in")

	// A refusal: bob trips his account, and the gate refuses the first
	// payload (spoilt on its way).
	b(chromedp.Navigate(d.srv.URL + "/" + kind))
	browsertest.TripByKeyboard(t, ctx, "bob", "demo", 3)
	h.mu.Lock()
	h.spoil = true
	h.mu.Unlock()
	clear()
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "the refusal and the next widget", `!!document.querySelector("#captcha [data-cg-message][role=alert]") &&
		!!document.querySelector("#captcha altcha-widget input[type=checkbox]") && document.querySelector("#captcha altcha-widget").getState() === "unverified"`)
	tree = axe.Tree(t, ctx)
	require.Len(t, axe.Find(tree, "alert", "not right"), 1, "the refusal is an alert")
	axe.Run(t, ctx, kind+": after a refusal")

	// Keyboard: from the password, Tab past Sign in reaches the widget's
	// checkbox; Space.
	require.Equal(t, "password", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "go", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.True(t, browsertest.Eval[bool](t, ctx, `document.activeElement.matches("#captcha altcha-widget input[type=checkbox]")`),
		"Tab reaches the widget's checkbox (focus on %s)", active())
	checkbox := axe.Focused(axe.Tree(t, ctx))
	assert.Equal(t, "checkbox", checkbox.Role)
	assert.NotEmpty(t, checkbox.Name, "the checkbox has a name")
	t.Logf("%s: the widget's checkbox is named %q", kind, checkbox.Name)
	h.Next("verify")
	b(chromedp.KeyEvent(" "))
	h.Held(t, "verify")
	browsertest.Wait(t, ctx, "the gate's status", `document.querySelector("#captcha [data-cg-status]").textContent !== ""`)
	assert.Equal(t, "polite", axe.Live(axe.Tree(t, ctx), "Verifying…"))
	axe.Run(t, ctx, kind+": after a refusal, verifying")
	h.Release("verify")
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as bob")
	assert.Len(t, h.answers(), 3, "alice's payload, the spoilt one, and the one after Space, accepted")
	assert.NotEqual(t, "BODY", active(), "the solved widget is gone: focus is not lost to the page body")
	assert.Equal(t, "password", active(), "focus goes back where it was before the widget came")
	axe.Run(t, ctx, kind+": signed in after a refusal")
}

// A payload the gate cannot read (garbled on its way) is refused with
// invalid_request and no new captcha, leaving the captcha unspent: the
// widget says so in an alert and puts up a new ALTCHA widget for the same
// captcha, waiting (not stuck at "Verified"); its checkbox, clicked, solves
// it, and that first payload of the new widget is accepted.
func TestAltchaUnreadablePayloadRecovers(t *testing.T) {
	needAltcha(t)
	h := newHolder("/altcha/captcha/")
	d := newDemoWith(t, demoOptions{wrap: h.wrap})
	t.Cleanup(h.ReleaseAll)
	ctx := browsertest.New(t, 90*time.Second)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(d.srv.URL+"/altcha"), chromedp.SetValue("#username", "carol"), chromedp.SetValue("#password", "nope"))
	for i := range 3 {
		clear()
		b(chromedp.Click("#go"))
		assert.Contains(t, browsertest.State(t, ctx, "problem"), "wrong username or password", "attempt %d", i+1)
	}
	b(chromedp.SetValue("#password", "demo"))
	h.mu.Lock()
	h.garble = true
	h.mu.Unlock()
	clear()
	b(chromedp.Click("#go"))
	browsertest.Wait(t, ctx, "the refusal and a new widget", `!!document.querySelector("#captcha [data-cg-message][role=alert]") &&
		!!document.querySelector("#captcha altcha-widget input[type=checkbox]") && document.querySelector("#captcha altcha-widget").getState() === "unverified"`)
	require.Len(t, h.answers(), 1, "one payload, garbled")
	b(chromedp.Click("#captcha altcha-widget input[type=checkbox]"))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as carol")
	assert.Len(t, h.answers(), 2, "the new widget's first payload was accepted")
}
