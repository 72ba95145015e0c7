package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/capwidget"
	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
	"github.com/captchagate/captchagate/store/memstore"
)

// holds keeps the next request of a kind ("challenge": the widget's POST
// {id}/challenge; "login": the page's POST /api/login) waiting until the
// test lets it go, so that a passing state (the widget working, the widget
// solved) stays while the test reads it; no sleeps.
type holds struct{ *browsertest.Holds }

func (h holds) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := ""
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, Prefix) && strings.HasSuffix(r.URL.Path, "/challenge"):
			what = "challenge"
		case r.Method == http.MethodPost && r.URL.Path == "/api/login":
			what = "login"
		}
		h.Wait(what)
		next.ServeHTTP(w, r)
	})
}

// The Cap page for a keyboard and screen-reader user, in Chromium, with the
// unmodified @cap.js/widget: one main landmark; the request for the check
// said in the page's live status; by keyboard alone (type, Enter in the
// password field, Tab past Sign in to the widget's button, Space) the
// widget solves and the first proof is accepted; the widget's button names
// what it is doing ("Verifying you're a human, please wait", then "We have
// verified you're a human…") in a live region; once signed in, the widget
// is gone and focus is on Sign in, not lost to the page body. axe-core
// (WCAG 2.1 A/AA) over every state: before, verifying, solved, signed in.
func TestCapWithoutSight(t *testing.T) {
	needWidget(t)
	s := &spy{events: map[captchagate.EventKind]int{}, ids: map[string]bool{}}
	h := holds{browsertest.NewHolds()}
	store := memstore.New(memstore.Options{})
	t.Cleanup(func() { store.Close() })
	gate, err := NewGate(store, capwidget.ProofOfWork{Count: 12, TargetLen: 3}, captchagate.Config{
		OnEvent: s.record,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	srv := httptest.NewServer(h.wrap(s.wrap(NewApp(gate, widgetScript()))))
	t.Cleanup(srv.Close)
	t.Cleanup(h.ReleaseAll) // runs first

	ctx := browsertest.New(t, 150*time.Second)
	axe.Script(t)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	js := func(expr string) string { return browsertest.Eval[string](t, ctx, expr) }
	active := func() string {
		return js(`(function(){ var e = document.activeElement; return e.id || e.tagName; })()`)
	}
	inTrigger := `(function(){ var w = document.querySelector("#captcha cap-widget");
		return !!w && document.activeElement === w && w.shadowRoot.activeElement === w.shadowRoot.querySelector(".captcha-trigger"); })()`
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(srv.URL + "/"))
	browsertest.Wait(t, ctx, "the cap-widget element", `!!customElements.get("cap-widget")`)
	assert.Len(t, axe.Find(axe.Tree(t, ctx), "main", ""), 1, "one main landmark")
	axe.Run(t, ctx, "sign-in page")

	// Keyboard only: the username, Tab, the password, Enter (focus stays
	// in the field); three wrong passwords trip alice's account.
	browsertest.TripByKeyboard(t, ctx, "alice", "demo", 3)
	clear()
	b(chromedp.KeyEvent(kb.Enter))
	assert.Contains(t, browsertest.State(t, ctx, "info"), "Tab to it and press Space or Enter")
	browsertest.Wait(t, ctx, "the widget's button", `(function(){var w=document.querySelector("#captcha cap-widget");
		return !!(w && w.shadowRoot && w.shadowRoot.querySelector(".captcha-trigger"));})()`)
	tree := axe.Tree(t, ctx)
	assert.Equal(t, "polite", axe.Live(tree, "confirm you are human"), "the request for the check is said")
	buttons := axe.Find(tree, "button", "verify you're a human")
	require.Len(t, buttons, 1, "the widget's button is named")
	assert.Equal(t, "polite", buttons[0].Live)
	t.Logf("the widget's button before: %q", buttons[0].Name)
	axe.Run(t, ctx, "check asked for")

	// Tab past Sign in to the widget's button; Space. Its challenge is
	// held: the widget is working.
	require.Equal(t, "password", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "go", active())
	b(chromedp.KeyEvent(kb.Tab))
	require.True(t, browsertest.Eval[bool](t, ctx, inTrigger), "Tab reaches the widget's button (focus on %s)", active())
	h.Next("challenge")
	h.Next("login")
	b(chromedp.KeyEvent(" "))
	h.Held(t, "challenge")
	browsertest.Wait(t, ctx, "the widget verifying", `(function(){var w=document.querySelector("#captcha cap-widget");
		return w.shadowRoot.querySelector(".captcha-trigger").getAttribute("aria-label").indexOf("Verifying") === 0;})()`)
	tree = axe.Tree(t, ctx)
	working := axe.Focused(tree)
	assert.Equal(t, "button", working.Role)
	assert.Contains(t, working.Name, "Verifying", "the focused button says it is working")
	assert.Equal(t, "polite", working.Live)
	t.Logf("the widget's button while it works: %q", working.Name)
	axe.Run(t, ctx, "verifying")

	// Solved: the page's sign-in with the token is held.
	h.Release("challenge")
	h.Held(t, "login")
	tree = axe.Tree(t, ctx)
	done := axe.Focused(tree)
	assert.Equal(t, "button", done.Role)
	assert.Contains(t, done.Name, "verified you're a human", "the focused button says it is done")
	t.Logf("the widget's button when solved: %q", done.Name)
	axe.Run(t, ctx, "solved")
	h.Release("login")

	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Signed in as alice")
	tree = axe.Tree(t, ctx)
	assert.Equal(t, "polite", axe.Live(tree, "Signed in as alice"), "the outcome is said")
	assert.Equal(t, "go", active(), "the widget is gone: focus is on Sign in, not lost to the page body")
	ev, challenges, redeems, ids := s.snapshot()
	assert.Equal(t, 1, ids, "one captcha")
	assert.Equal(t, []int{http.StatusOK}, challenges, "one challenge")
	assert.Equal(t, []int{http.StatusOK}, redeems, "the first redeem accepted")
	assert.Zero(t, ev[captchagate.EventCaptchaRejected], "no refusal")
	assert.Equal(t, 1, ev[captchagate.EventTokenAccepted], "its token let the sign-in through")
	axe.Run(t, ctx, "signed in")
}
