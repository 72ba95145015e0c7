package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/browsertest"
	"github.com/captchagate/captchagate/internal/gatetest"
)

func newServer(t *testing.T) (*httptest.Server, *gatetest.Spy) {
	gate, spy, store := browsertest.SpyGate(t)
	h, err := NewApp(gate, store)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, spy
}

// The HTML login in a real browser: fail past the threshold, see the
// captcha, refresh it, load its audio, answer wrong, answer right, sign in.
func TestLoginPageInBrowser(t *testing.T) {
	srv, spy := newServer(t)
	ctx := browsertest.New(t, 90*time.Second)
	shots := browsertest.NewShots(t, ctx, "login")
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err, sel)
		return s
	}
	imageID := func() string { return browsertest.ImageID(t, ctx) }

	b(chromedp.Navigate(srv.URL + "/"))
	shots.Take("page")
	for i := 0; i < 5; i++ {
		signIn(t, ctx, "alice", "nope", "")
		assert.Equal(t, "Wrong username or password.", text("#login-error"))
	}
	assert.Zero(t, browsertest.Eval[int](t, ctx, `document.querySelectorAll("[data-cg-image]").length`), "no captcha below the threshold")

	// The sixth attempt: the gate shows the captcha instead of checking.
	signIn(t, ctx, "alice", "nope", "")
	browsertest.Wait(t, ctx, "the captcha image", browsertest.ImageLoaded(""))
	assert.Contains(t, text("[data-cg-message]"), "type the digits in the picture")
	alt := browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-image]").alt`)
	assert.Contains(t, alt, "Play audio", "the image says how to get the audio")
	label := browsertest.Eval[string](t, ctx, `document.querySelector("label[for=captchagate-answer]").textContent`)
	assert.Equal(t, "Type the digits you see or hear", label)
	shots.Take("captcha")
	first := imageID()

	// Refresh swaps image (and audio) without reloading the page.
	browsertest.Eval[bool](t, ctx, `window.__samePage = true`)
	b(chromedp.Click("[data-cg-refresh]"))
	browsertest.Wait(t, ctx, "a new image", browsertest.ImageLoaded("/captcha/"+first+".png"))
	assert.True(t, browsertest.Eval[bool](t, ctx, `window.__samePage === true`), "no page load")
	second := imageID()
	assert.NotEqual(t, first, second)
	assert.Equal(t, "/captcha/"+second+".wav?lang=en", browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-audio]").getAttribute("src")`))
	assert.Equal(t, "New picture loaded.", text("[data-cg-status]"))
	assert.Equal(t, "captchagate-answer", browsertest.Eval[string](t, ctx, `document.activeElement.id`), "focus goes back to the answer")
	shots.Take("refreshed")

	// The audio is a WAV the browser can play.
	d := browsertest.Eval[float64](t, ctx, browsertest.PlayableAudio)
	assert.Greater(t, d, 1.0, "audio duration in seconds")
	// The Play audio button plays it.
	b(chromedp.Click("[data-cg-play]"))
	browsertest.Wait(t, ctx, "the audio playing", `(function(){ const a = document.querySelector("[data-cg-audio]"); return a.currentTime > 0 || a.ended; })()`)
	assert.Equal(t, "Playing the digits.", text("[data-cg-status]"))

	// A wrong answer: the error in words and a new captcha.
	signIn(t, ctx, "alice", "wonderland", "000000")
	browsertest.Wait(t, ctx, "the new captcha", browsertest.ImageLoaded(""))
	assert.Contains(t, text("[role=alert][data-cg-message]"), "not right")
	third := imageID()
	assert.NotEqual(t, second, third)
	shots.Take("wrong")

	// The right answer signs alice in.
	answer, ok := spy.Answer(third)
	require.True(t, ok, "the browser loaded the image of %s", third)
	signIn(t, ctx, "alice", "wonderland", answer)
	assert.Equal(t, "Welcome, alice. You are signed in.", text("#welcome"))
	shots.Take("welcome")
}

// The same page in a browser that asks for Russian: the widget's server
// text, the text widget.js says after a refresh and while playing (which
// it reads from data-cg-text), the error after a wrong answer and the audio
// all speak Russian, and the flow still signs alice in.
func TestLoginPageInRussian(t *testing.T) {
	srv, spy := newServer(t)
	ctx := browsertest.New(t, 90*time.Second)
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err, sel)
		return s
	}
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}})
	require.NoError(t, err)
	b(chromedp.Navigate(srv.URL + "/"))
	for range 6 {
		signIn(t, ctx, "alice", "nope", "")
	}
	browsertest.Wait(t, ctx, "the captcha image", browsertest.ImageLoaded(""))
	assert.Equal(t, "Введите цифры с картинки, чтобы продолжить.", text("[data-cg-message]"))
	assert.Equal(t, "Введите цифры, которые видите или слышите",
		browsertest.Eval[string](t, ctx, `document.querySelector("label[for=captchagate-answer]").textContent`))
	first := browsertest.ImageID(t, ctx)

	b(chromedp.Click("[data-cg-refresh]"))
	browsertest.Wait(t, ctx, "a new image", browsertest.ImageLoaded("/captcha/"+first+".png"))
	assert.Equal(t, "Новая картинка загружена.", text("[data-cg-status]"), "widget.js speaks the page's language")
	second := browsertest.ImageID(t, ctx)
	assert.Equal(t, "/captcha/"+second+".wav?lang=ru", browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-audio]").getAttribute("src")`))
	assert.Greater(t, browsertest.Eval[float64](t, ctx, browsertest.PlayableAudio), 1.0, "the Russian audio plays")
	b(chromedp.Click("[data-cg-play]"))
	browsertest.Wait(t, ctx, "the audio playing", `(function(){ const a = document.querySelector("[data-cg-audio]"); return a.currentTime > 0 || a.ended; })()`)
	assert.Equal(t, "Воспроизводятся цифры.", text("[data-cg-status]"))

	signIn(t, ctx, "alice", "wonderland", "000000")
	browsertest.Wait(t, ctx, "the new captcha", browsertest.ImageLoaded("/captcha/"+second+".png"))
	assert.Equal(t, "Ответ неверный или устарел. Попробуйте эту новую картинку.", text("[role=alert][data-cg-message]"))
	answer, ok := spy.Answer(browsertest.ImageID(t, ctx))
	require.True(t, ok)
	signIn(t, ctx, "alice", "wonderland", answer)
	assert.Equal(t, "Welcome, alice. You are signed in.", text("#welcome"))
}

// signIn posts the login page's form (username, password and, if answer
// is set, the captcha's answer typed in) with its own submit button, and
// waits for the next page.
func signIn(t *testing.T, ctx context.Context, user, pass, answer string) {
	t.Helper()
	browsertest.Do(t, ctx, chromedp.SetValue("#username", user), chromedp.SetValue("#password", pass))
	if answer != "" {
		browsertest.Do(t, ctx, chromedp.SendKeys("#captchagate-answer", answer))
	}
	browsertest.Submit(t, ctx, `button[type=submit]:not([data-cg-submit])`)
}
