package htmlform_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// TestWidgetAnnouncesAndFocuses: the page answering a refused form post
// says why in an alert (captcha_required too, not only errors), puts focus
// on the answer field and describes it by the message and for picture and
// sound; a plain visit takes no focus. Without JavaScript the sound is a
// plain link; once the refreshes are spent, the button is disabled and the
// widget says so in words.
func TestWidgetAnnouncesAndFocuses(t *testing.T) {
	a := newApp(t)
	alice := a.browser(t)
	bad := map[string][]string{"username": {"alice"}, "password": {"wrong"}}
	for range 2 {
		a.post(t, alice, bad)
	}
	code, page := a.post(t, alice, bad)
	require.Equal(t, http.StatusPreconditionRequired, code)
	assert.Regexp(t, `<p class="captchagate-message" id="captchagate-message" role="alert" data-cg-message>Please type the digits`, page)
	assert.Regexp(t, `<input id="captchagate-answer"[^>]* aria-describedby="captchagate-message captchagate-answer-help" autofocus>`, page)
	assert.Contains(t, page, `<span id="captchagate-answer-help" class="captchagate-hint">The picture and the audio have the same digits.</span>`)
	id := imgID.FindStringSubmatch(page)[1]
	assert.Contains(t, page, `<a data-cg-audio-link href="/captcha/`+id+`.wav?lang=en" target="_blank" rel="noopener">Open the audio in a new tab</a>`)
	assert.Contains(t, page, `<button type="button" data-cg-replay>Play from the start</button>`)
	assert.Contains(t, page, `<button type="button" data-cg-refresh>New picture</button>`, "refreshes left: enabled")

	_, home := do(t, alice, "GET", a.srv.URL+"/", "", "")
	assert.NotContains(t, home, "autofocus", "a plain visit takes no focus")
	assert.NotContains(t, home, "data-cg-message")

	code, page = a.post(t, alice, map[string][]string{"username": {"alice"}, "password": {"right"}, "captcha_answer": {"999999"}})
	require.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, `<p class="captchagate-message captchagate-error" id="captchagate-message" role="alert" data-cg-message>That answer was not right`)

	// Spend the refreshes (Config.MaxRefreshes, 5).
	left := -1
	for left != 0 {
		code, body := do(t, alice, "POST", a.srv.URL+"/captcha/refresh", "", "")
		require.Equal(t, http.StatusOK, code, body)
		var rb struct{ Captcha captchagate.Captcha }
		require.NoError(t, json.Unmarshal([]byte(body), &rb))
		left = rb.Captcha.RefreshesLeft
	}
	_, home = do(t, alice, "GET", a.srv.URL+"/", "", "")
	assert.Contains(t, home, `<button type="button" data-cg-refresh disabled>New picture</button>`)
	assert.Regexp(t, regexp.QuoteMeta(`<p class="captchagate-status" data-cg-status aria-live="polite">No more new pictures for this check.`), home)
}
