package main

import (
	"bytes"
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

	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// verifyLog notes the bodies posted to the slider gate's verify.
type verifyLog struct {
	mu     sync.Mutex
	bodies []map[string]string
}

func (v *verifyLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/slider/captcha/verify" {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<14))
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m map[string]string
			json.Unmarshal(body, &m)
			v.mu.Lock()
			v.bodies = append(v.bodies, m)
			v.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (v *verifyLog) all() []map[string]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]map[string]string(nil), v.bodies...)
}

// The slider's way through without sight, by keyboard alone: from the
// slider, Tab to "Use an audio or digits challenge instead", Enter; focus
// lands in the labelled digits field beside the digits' picture and Play
// audio; the digits of the same captcha (learned in-process, as a person
// hears them), Enter: the code is sent on the first attempt, with one
// verify of the puzzle's own id, through the seed's verify for the same
// sender as a dragged answer.
func TestSliderBlindPathInBrowser(t *testing.T) {
	log := &verifyLog{}
	d := newDemoWith(t, demoOptions{wrap: log.wrap})
	ctx := browsertest.New(t, 90*time.Second)
	shots := browsertest.NewShots(t, ctx, "slider-blind")
	b := func(actions ...chromedp.Action[chromedp.Void]) { browsertest.Do(t, ctx, actions...) }
	active := func(attr string) bool {
		return browsertest.Eval[bool](t, ctx, `document.activeElement.hasAttribute("`+attr+`")`)
	}

	b(chromedp.Navigate(d.srv.URL+"/slider"), chromedp.SendKeys("#phone", "152 0000 0001"))
	b(chromedp.Click("#go"))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Code sent to 152 0000 0001")
	browsertest.ClearState(t, ctx)
	b(chromedp.Click("#go"))
	browsertest.Wait(t, ctx, "the puzzle", `(function(){var i=document.querySelector(".captchagate-board img:first-child");
		return !!i && i.complete && i.naturalWidth === 320;})()`)
	src := browsertest.Eval[string](t, ctx, `document.querySelector(".captchagate-board img").getAttribute("src")`)
	id := strings.TrimSuffix(strings.TrimPrefix(src, "/slider/captcha/"), ".png")
	require.True(t, active("data-cg-range"), "focus starts on the slider")
	shots.Take("puzzle")

	// Tab past Check position to the way out; Enter.
	b(chromedp.KeyEvent(kb.Tab))
	require.True(t, active("data-cg-submit"), "Tab reaches Check position")
	b(chromedp.KeyEvent(kb.Tab))
	require.True(t, active("data-cg-use-digits"), "Tab reaches the way to the digits")
	assert.Equal(t, "Use an audio or digits challenge instead", browsertest.Eval[string](t, ctx, `document.activeElement.textContent`))
	b(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "the digits", `(function(){var i=document.querySelector("[data-cg-digits-image]");
		return !!i && i.complete && i.naturalWidth === 240;})()`)
	require.True(t, active("data-cg-digits"), "focus is in the digits field")
	assert.Equal(t, "Type the digits you see or hear", browsertest.Eval[string](t, ctx, `document.activeElement.labels[0].textContent`))
	assert.Equal(t, "/slider/captcha/"+id+".digits.png", browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-digits-image]").getAttribute("src")`),
		"the same captcha's digits")
	assert.Equal(t, "/slider/captcha/"+id+".wav", browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-audio]").getAttribute("src")`))
	assert.Contains(t, browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-message]").textContent`), "hear when you play the audio")
	assert.NotEmpty(t, browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-digits-image]").alt`))
	assert.Equal(t, "Play audio", browsertest.Eval[string](t, ctx, `document.querySelector("[data-cg-play]").textContent`))
	digits, ok := d.slider.Digits(id)
	require.True(t, ok, "the browser loaded the digits of %s", id)
	shots.Take("digits")

	b(chromedp.KeyEvent(digits), chromedp.KeyEvent(kb.Enter))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Code sent to 152 0000 0001")
	shots.Take("sent")
	assert.Equal(t, []map[string]string{{"point_json": digits, "token": id, "sender": "152 0000 0001"}}, log.all(),
		"one verify, the seed's, with the digits of the puzzle's id in point_json, for the same sender")
}
