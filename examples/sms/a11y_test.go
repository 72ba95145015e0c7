package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// logText records, synchronously, every text widget.js puts in a message
// ([data-cg-message]) with the element's state at that moment: whether it
// was in the page and a live region (role=alert or aria-live) already.
const logText = `(function () {
	window.__said = [];
	var d = Object.getOwnPropertyDescriptor(Node.prototype, "textContent");
	Object.defineProperty(Node.prototype, "textContent", { configurable: true, get: d.get, set: function (v) {
		if (this.nodeType === 1 && this.hasAttribute("data-cg-message") && v) {
			window.__said.push({ Text: v, Role: this.getAttribute("role") || "", Live: this.getAttribute("aria-live") || "", InPage: this.isConnected });
		}
		d.set.call(this, v);
	} });
	return true;
})()`

type said struct {
	Text, Role, Live string
	InPage           bool
}

// captchagate.solve for a keyboard and screen-reader user, in Chromium:
// each message is put in an element that is already in the page and an
// alert; focus goes to the widget's start, and after success to the next
// sensible control rather than the page's body; the field is described for
// picture and sound; the refresh limit is said in words; the digits are
// solved by keyboard alone; axe-core finds no WCAG 2.1 A/AA violation in
// any state (captcha asked for, after a refresh, at the refresh limit,
// after a wrong answer, solved).
func TestSolveAccessibility(t *testing.T) {
	gate, spy, store := browsertest.SpyGate(t)
	h, err := NewApp(gate, store, func(phone, code string) {})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx := browsertest.New(t, 120*time.Second)
	axe.Script(t)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	js := func(expr string) string { return browsertest.Eval[string](t, ctx, expr) }
	active := func() string {
		return js(`(function(){ var e = document.activeElement; return e.id || e.textContent.trim() || e.tagName; })()`)
	}
	state := func(class string) {
		browsertest.Wait(t, ctx, "state "+class, `document.getElementById("state").className === "`+class+`" && !document.getElementById("send-button").disabled`)
	}
	clear := func() { browsertest.ClearState(t, ctx) }
	log := func() []said { return browsertest.Eval[[]said](t, ctx, `window.__said`) }

	b(chromedp.Navigate(srv.URL+"/"), chromedp.SendKeys("#phone", "+1 555 0100"))
	assert.Len(t, axe.Find(axe.Tree(t, ctx), "main", ""), 1, "one main landmark")
	for range 2 {
		clear()
		b(chromedp.Click("#send-button"))
		state("sent")
	}
	axe.Run(t, ctx, "codes sent")

	browsertest.Eval[bool](t, ctx, logText)
	clear()
	b(chromedp.Click("#send-button"))
	browsertest.Wait(t, ctx, "the captcha", browsertest.ImageLoaded(""))
	require.Equal(t, []said{{Text: "Please type the digits in the picture to continue.", Role: "alert", InPage: true}}, log(),
		"the message is an alert in the page before its text is set")
	tree := axe.Tree(t, ctx)
	assert.Len(t, axe.Find(tree, "alert", "Please type the digits"), 1)
	focused := axe.Focused(tree)
	assert.Equal(t, "group", focused.Role, "focus is on the widget's start")
	assert.Equal(t, "Security check", focused.Name)
	desc := js(`document.querySelector("[name=captcha_answer]").getAttribute("aria-describedby")`)
	assert.Contains(t, js(`Array.from(document.querySelector("[name=captcha_answer]").getAttribute("aria-describedby").split(" "), function (id) { return document.getElementById(id).textContent; }).join(" ")`),
		"The picture and the audio have the same digits.", "the field is described for picture and sound (%s)", desc)
	axe.Run(t, ctx, "captcha asked for")

	// Keyboard: Tab from the start reaches Play audio, Play from the start,
	// New picture; Enter on it refreshes, up to the limit (5).
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "Play audio", active())
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "Play from the start", active())
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "New picture", active())
	for i := 1; i <= 5; i++ {
		old := browsertest.ImageID(t, ctx)
		b(chromedp.Focus("[data-cg-refresh]"), chromedp.KeyEvent(kb.Enter))
		browsertest.Wait(t, ctx, "a new image", browsertest.ImageLoaded("/captcha/"+old+".png"))
		browsertest.Wait(t, ctx, "the status", `document.querySelector("[data-cg-status]").textContent !== ""`)
		assert.Equal(t, "/captcha/"+browsertest.ImageID(t, ctx)+".wav?lang=en", js(`document.querySelector("[data-cg-audio-link]").getAttribute("href")`))
		if i == 1 {
			axe.Run(t, ctx, "after a refresh")
		}
	}
	assert.True(t, browsertest.Eval[bool](t, ctx, `document.querySelector("[data-cg-refresh]").disabled`))
	assert.Equal(t, "polite", axe.Live(axe.Tree(t, ctx), "No more new pictures"), "the spent refresh is said in a live region")
	axe.Run(t, ctx, "refresh limit reached")

	// A wrong answer, typed and sent with Enter.
	browsertest.Eval[bool](t, ctx, `(window.__said = [], true)`)
	old := browsertest.ImageID(t, ctx)
	b(chromedp.Focus("[name=captcha_answer]"), chromedp.KeyEvent("000000"), chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "a new captcha after the wrong answer", browsertest.ImageLoaded("/captcha/"+old+".png"))
	require.Len(t, log(), 1)
	assert.Equal(t, said{Text: "That answer was not right, or it expired. Please try this new picture.", Role: "alert", InPage: true}, log()[0])
	tree = axe.Tree(t, ctx)
	assert.Len(t, axe.Find(tree, "alert", "not right"), 1)
	assert.Equal(t, "textbox", axe.Focused(tree).Role, "focus back on the answer")
	assert.True(t, browsertest.Eval[bool](t, ctx, `document.querySelector("[data-cg-refresh]").disabled`), "the limit holds")
	axe.Run(t, ctx, "wrong answer")

	// The right answer, by keyboard: the widget goes, and focus with it
	// to the phone field (the send button is busy), not the page's body.
	answer, ok := spy.Answer(browsertest.ImageID(t, ctx))
	require.True(t, ok)
	b(chromedp.KeyEvent(answer), chromedp.KeyEvent(kb.Enter))
	state("sent")
	assert.Zero(t, browsertest.Eval[int](t, ctx, `document.querySelectorAll("#captcha *").length`), "the widget is gone")
	assert.Equal(t, "phone", active(), "focus lands on a control")
	axe.Run(t, ctx, "solved")
}
