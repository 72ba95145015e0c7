package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// The login page's captcha for a keyboard and screen-reader user, in
// Chromium: axe-core finds no WCAG 2.1 A/AA violation in any state
// (sign-in page, the captcha asked for, after a refresh, after a wrong
// answer, at the refresh limit, signed in); the form post that asks for the
// captcha is an alert, retitles the page and puts focus on the answer field,
// described for picture and sound; the refresh limit is said in words; and
// the digits are solved with the keyboard alone, the audio player included.
func TestLoginAccessibility(t *testing.T) {
	srv, spy := newServer(t)
	ctx := browsertest.New(t, 120*time.Second)
	axe.Script(t) // skips (or fails under CAPTCHAGATE_REQUIRE_BROWSER=1) without axe-core
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	js := func(expr string) string { return browsertest.Eval[string](t, ctx, expr) }
	active := func() string {
		return js(`(function(){ var e = document.activeElement; return e.id || e.textContent.trim() || e.tagName; })()`)
	}

	b(chromedp.Navigate(srv.URL + "/"))
	assert.Len(t, axe.Find(axe.Tree(t, ctx), "main", ""), 1, "one main landmark")
	axe.Run(t, ctx, "sign-in page")
	for range 5 {
		signIn(t, ctx, "alice", "nope", "")
	}
	axe.Run(t, ctx, "wrong password")

	// The post the gate refuses: the answer asking for the captcha.
	signIn(t, ctx, "alice", "nope", "")
	browsertest.Wait(t, ctx, "the captcha image", browsertest.ImageLoaded(""))
	assert.True(t, strings.HasPrefix(js(`document.title`), "Security check — "), "the title says what the page asks: %q", js(`document.title`))
	tree := axe.Tree(t, ctx)
	alerts := axe.Find(tree, "alert", "type the digits in the picture")
	require.Len(t, alerts, 1, "the request for the captcha is an alert")
	assert.Equal(t, "assertive", alerts[0].Live)
	focused := axe.Focused(tree)
	assert.Equal(t, "textbox", focused.Role, "focus is on the answer field")
	assert.Equal(t, "Type the digits you see or hear", focused.Name)
	assert.Contains(t, focused.Description, "type the digits in the picture", "the field is described by the message")
	assert.Contains(t, focused.Description, "The picture and the audio have the same digits.", "and for picture and sound")
	assert.Len(t, axe.Find(tree, "link", "Open the audio"), 1, "a plain link to the sound")
	assert.Equal(t, "/captcha/"+browsertest.ImageID(t, ctx)+".wav?lang=en", js(`document.querySelector("[data-cg-audio-link]").getAttribute("href")`))
	info := forced(t, ctx)
	assert.Contains(t, info, "ℹ", "in forced colours the request has its icon")
	axe.Run(t, ctx, "captcha asked for")

	// Refreshes, up to the limit (Config.MaxRefreshes, 5): the last one
	// says in words that the button is spent.
	for i := 1; i <= 5; i++ {
		old := browsertest.ImageID(t, ctx)
		b(chromedp.Click("[data-cg-refresh]"))
		browsertest.Wait(t, ctx, "a new image", browsertest.ImageLoaded("/captcha/"+old+".png"))
		browsertest.Wait(t, ctx, "the status", `document.querySelector("[data-cg-status]").textContent !== ""`)
		assert.Equal(t, "/captcha/"+browsertest.ImageID(t, ctx)+".wav?lang=en", js(`document.querySelector("[data-cg-audio-link]").getAttribute("href")`), "the link follows the refresh")
		if i == 1 {
			assert.Equal(t, "New picture loaded.", js(`document.querySelector("[data-cg-status]").textContent`))
			axe.Run(t, ctx, "after a refresh")
		}
	}
	assert.True(t, browsertest.Eval[bool](t, ctx, `document.querySelector("[data-cg-refresh]").disabled`))
	assert.Equal(t, "polite", axe.Live(axe.Tree(t, ctx), "No more new pictures"), "the spent refresh is said in a live region")
	axe.Run(t, ctx, "refresh limit reached")

	// A wrong answer: the next page says so in an alert and focuses the field.
	signIn(t, ctx, "alice", "wonderland", "000000")
	browsertest.Wait(t, ctx, "the new captcha", browsertest.ImageLoaded(""))
	tree = axe.Tree(t, ctx)
	assert.Len(t, axe.Find(tree, "alert", "not right"), 1)
	assert.Equal(t, "textbox", axe.Focused(tree).Role)
	problem := forced(t, ctx)
	assert.Contains(t, problem, "⚠", "in forced colours an error has its own icon")
	assert.NotEqual(t, info, problem, "info and error differ without colour")
	// The refresh limit holds for the wrong answer's captcha too, and is said.
	assert.True(t, browsertest.Eval[bool](t, ctx, `document.querySelector("[data-cg-refresh]").disabled`))
	assert.Contains(t, js(`document.querySelector("[data-cg-status]").textContent`), "No more new pictures")
	axe.Run(t, ctx, "wrong answer")

	// Keyboard only, from the username field: Tab to the password, type
	// it, Tab to Play audio, play and pause it, Tab past Play from the
	// start and the link to the answer, type it, Enter.
	b(chromedp.Focus("#username"))
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "password", active())
	b(chromedp.KeyEvent("wonderland"), chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "Play audio", active())
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "the audio playing", `(function(){ const a = document.querySelector("[data-cg-audio]"); return !a.paused && a.currentTime > 0; })()`)
	assert.Equal(t, "Playing the digits.", js(`document.querySelector("[data-cg-status]").textContent`))
	assert.Equal(t, "Pause audio", active(), "Play turns into Pause")
	b(chromedp.KeyEvent(" "))
	browsertest.Wait(t, ctx, "the audio paused", `document.querySelector("[data-cg-audio]").paused`)
	assert.Equal(t, "Audio paused.", js(`document.querySelector("[data-cg-status]").textContent`))
	assert.Equal(t, "Play audio", active())
	at := browsertest.Eval[float64](t, ctx, `document.querySelector("[data-cg-audio]").currentTime`)
	assert.Greater(t, at, 0.0, "a pause keeps the place")
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "Play from the start", active())
	b(chromedp.KeyEvent(kb.Tab)) // New picture is spent (disabled): Tab skips it
	assert.Equal(t, "Open the audio in a new tab", active())
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "captchagate-answer", active())
	answer, ok := spy.Answer(browsertest.ImageID(t, ctx))
	require.True(t, ok)
	b(chromedp.KeyEvent(answer))
	browsertest.Eval[bool](t, ctx, `window.__before = true`)
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "the next page", `!window.__before && document.readyState === "complete"`)
	assert.Equal(t, "Welcome, alice. You are signed in.", js(`document.getElementById("welcome").textContent`))
	axe.Run(t, ctx, "signed in")
}

// forced returns, in forced-colours mode, what tells the message apart
// without colour: its icon (the ::before content) and its border width.
func forced(t *testing.T, ctx context.Context) string {
	t.Helper()
	set := func(v string) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "forced-colors", Value: v}}})
		require.NoError(t, err)
	}
	set("active")
	defer set("")
	require.True(t, browsertest.Eval[bool](t, ctx, `matchMedia("(forced-colors: active)").matches`))
	return browsertest.Eval[string](t, ctx, `(function(){ var m = document.querySelector("[data-cg-message]");
		return getComputedStyle(m, "::before").content + " " + getComputedStyle(m).borderTopWidth; })()`)
}

// The login page's captcha on a phone, 320 CSS pixels wide: the page does
// not scroll sideways, axe-core finds no WCAG 2.1 A/AA violation with the
// captcha asked for, and the digits typed there sign alice in.
func TestLoginNarrowAccessibility(t *testing.T) {
	srv, spy := newServer(t)
	ctx := browsertest.New(t, 120*time.Second)
	axe.Script(t)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	b(chromedp.EmulateViewport(320, 640), chromedp.Navigate(srv.URL+"/"))
	for range 6 {
		signIn(t, ctx, "alice", "nope", "")
	}
	browsertest.Wait(t, ctx, "the captcha image", browsertest.ImageLoaded(""))
	assert.LessOrEqual(t, browsertest.Eval[float64](t, ctx, `document.documentElement.scrollWidth`), 320.0, "no sideways scrolling")
	axe.Run(t, ctx, "320 px: captcha asked for")
	answer, ok := spy.Answer(browsertest.ImageID(t, ctx))
	require.True(t, ok)
	signIn(t, ctx, "alice", "wonderland", answer)
	assert.Equal(t, "Welcome, alice. You are signed in.", browsertest.Eval[string](t, ctx, `document.getElementById("welcome").textContent`))
}
