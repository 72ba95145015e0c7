package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// keyboardTurnstile stands in for an interactive Turnstile: a labelled
// button the visitor presses (the real one is in Cloudflare's frame, which
// the gate does not test); pressed, it fetches a token from the fake
// service and calls back with it.
const keyboardTurnstile = `window.turnstile = { render: function (el, o) {
  var b = document.createElement("button");
  b.type = "button";
  b.textContent = "Verify you are human (stand-in)";
  b.addEventListener("click", function () {
    fetch("/fake/token").then(function (r) { return r.text(); }).then(o.callback);
  });
  el.appendChild(b);
} };`

// The frame widget.js puts around a hosted service's widget, for a keyboard
// and screen-reader user, in Chromium (the service's widget is a local
// stand-in with one button): the request for the check is in a live
// region; Tab past Sign in reaches the service's widget, Enter presses it;
// "Verifying…" is said in a polite live region while the gate checks the
// service's token; the first token is accepted; the solved widget goes
// and focus returns to the field it came from, not to the page body.
// axe-core (WCAG 2.1 A/AA) over each state finds no violation in the
// gate's markup.
func TestHostedFrameWithoutSight(t *testing.T) {
	h := newHolder("/hosted/captcha/")
	d := newDemoWith(t, demoOptions{wrap: func(next http.Handler) http.Handler {
		return h.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/fake/turnstile.js" {
				w.Header().Set("Content-Type", "text/javascript")
				io.WriteString(w, keyboardTurnstile)
				return
			}
			next.ServeHTTP(w, r)
		}))
	}})
	t.Cleanup(h.ReleaseAll) // before the server closes
	ctx := browsertest.New(t, 90*time.Second)
	axe.Script(t)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	js := func(expr string) string { return browsertest.Eval[string](t, ctx, expr) }
	active := func() string {
		return js(`(function(){ var e = document.activeElement; return e === document.body ? "BODY" : e.id || e.textContent || e.tagName; })()`)
	}
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(d.srv.URL + "/hosted"))
	browsertest.TripByKeyboard(t, ctx, "bob", "demo", 3)
	clear()
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "the service's widget", `!!document.querySelector("#captcha [data-cg-hosted] button")`)
	tree := axe.Tree(t, ctx)
	assert.Equal(t, "assertive", axe.Live(tree, "Please complete the security check."), "the frame says what is asked")
	axe.Run(t, ctx, "hosted: check asked for")

	require.Equal(t, "password", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "go", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "Verify you are human (stand-in)", active(), "Tab reaches the service's widget")
	h.Next("verify")
	b(chromedp.KeyEvent(kb.Enter))
	h.Held(t, "verify")
	browsertest.Wait(t, ctx, "the gate's status", `document.querySelector("#captcha [data-cg-status]").textContent !== ""`)
	assert.Equal(t, "polite", axe.Live(axe.Tree(t, ctx), "Verifying…"), "the gate's check is said in a live region")
	axe.Run(t, ctx, "hosted: gate verifying")
	h.Release("verify")
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as bob")
	assert.Len(t, h.answers(), 1, "the first token was accepted")
	assert.Equal(t, "password", active(), "the solved widget is gone: focus goes back where it was, not to the page body")
	axe.Run(t, ctx, "hosted: signed in")
}
