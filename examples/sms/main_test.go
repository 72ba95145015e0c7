package main

import (
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// The send-code page in a real browser: two codes, then the captcha (refresh,
// audio, a wrong answer, the right one) for the third, then the ceiling.
func TestSendCodePageInBrowser(t *testing.T) {
	gate, spy, store := browsertest.SpyGate(t)
	var sent atomic.Int64
	h, err := NewApp(gate, store, func(phone, code string) {
		assert.Equal(t, "+1 555 0100", phone)
		sent.Add(1)
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t, 90*time.Second)
	shots := browsertest.NewShots(t, ctx, "sms")
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	state := func(class string) string {
		browsertest.Wait(t, ctx, "state "+class, `document.getElementById("state").className === "`+class+`" && !document.getElementById("send-button").disabled`)
		s, err := chromedp.Run(ctx, chromedp.Text("#state"))
		require.NoError(t, err)
		return s
	}
	imageID := func() string { return browsertest.ImageID(t, ctx) }
	clear := func() { browsertest.ClearState(t, ctx) }

	b(chromedp.Navigate(srv.URL+"/"), chromedp.SendKeys("#phone", "+1 555 0100"))
	for i := 1; i <= 2; i++ {
		clear()
		b(chromedp.Click("#send-button"))
		assert.Contains(t, state("sent"), "Code sent to +1 555 0100")
	}
	shots.Take("sent")
	assert.Equal(t, int64(2), sent.Load())

	// Past the send rate: the widget appears in place.
	clear()
	b(chromedp.Click("#send-button"))
	browsertest.Wait(t, ctx, "the captcha", browsertest.ImageLoaded(""))
	assert.Contains(t, browsertest.Eval[string](t, ctx, `document.getElementById("state").textContent`), "solve the security check")
	assert.Equal(t, int64(2), sent.Load(), "nothing sent without the captcha")
	shots.Take("captcha")

	assert.Equal(t, "FIELDSET", browsertest.Eval[string](t, ctx, `document.activeElement.tagName`), "focus is on the widget's start")
	// Keyboard only: Tab from the start reaches Play audio, Play from the
	// start, New picture; Shift+Tab goes back, Tab forth, Enter presses it.
	first := imageID()
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "Play audio", browsertest.Eval[string](t, ctx, `document.activeElement.textContent`))
	b(chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "New picture", browsertest.Eval[string](t, ctx, `document.activeElement.textContent`))
	b(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	assert.Equal(t, "Play from the start", browsertest.Eval[string](t, ctx, `document.activeElement.textContent`))
	b(chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "New picture", browsertest.Eval[string](t, ctx, `document.activeElement.textContent`))
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "a new image", browsertest.ImageLoaded("/captcha/"+first+".png"))
	second := imageID()
	assert.NotEqual(t, first, second)
	assert.Greater(t, browsertest.Eval[float64](t, ctx, browsertest.PlayableAudio), 1.0, "a playable WAV")

	b(chromedp.SendKeys("[name=captcha_answer]", "000000"), chromedp.Click("[data-cg-submit]"))
	browsertest.Wait(t, ctx, "a new captcha after the wrong answer", browsertest.ImageLoaded("/captcha/"+second+".png"))
	msg, err := chromedp.Run(ctx, chromedp.Text("[data-cg-message][role=alert]"))
	require.NoError(t, err)
	assert.Contains(t, msg, "not right")
	assert.Equal(t, int64(2), sent.Load())
	shots.Take("wrong")

	third := imageID()
	answer, ok := spy.Answer(third)
	require.True(t, ok)
	b(chromedp.SendKeys("[name=captcha_answer]", answer), chromedp.Click("[data-cg-submit]"))
	assert.Contains(t, state("sent"), "Code sent")
	assert.Zero(t, browsertest.Eval[int](t, ctx, `document.querySelectorAll("#captcha *").length`), "the widget is gone")
	assert.Equal(t, int64(3), sent.Load())
	shots.Take("sent-after-captcha")

	// The ceiling: 3 an hour for one number, captcha or not.
	clear()
	b(chromedp.Click("#send-button"))
	assert.Contains(t, state("limit"), "No more codes for this number for now. Try again in 60 minutes.")
	assert.Equal(t, int64(3), sent.Load())
	shots.Take("limit")
}
