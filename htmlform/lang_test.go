package htmlform_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/htmlform"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// postLang posts a form as a visitor whose browser asks for lang, and
// returns the status, the page and the headers.
func (a *app) postLang(t *testing.T, c *http.Client, lang string, values url.Values) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", a.srv.URL+"/login", strings.NewReader(values.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", form)
	req.Header.Set("Accept-Language", lang)
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode, readAll(res.Body), res.Header
}

var (
	audioSrc   = regexp.MustCompile(`<audio data-cg-audio preload="none" src="([^"]+)"`)
	widgetText = regexp.MustCompile(`data-cg-text="([^"]+)"`)
)

// textOf returns the text the page hands widget.js.
func textOf(t *testing.T, page string) map[string]string {
	t.Helper()
	m := widgetText.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	var text map[string]string
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(m[1])), &text))
	return text
}

// TestWidgetInRussian: a visitor whose browser asks for Russian gets the
// widget, its script's text and its audio in Russian.
func TestWidgetInRussian(t *testing.T) {
	a := newApp(t)
	ivan := a.browser(t)
	bad := url.Values{"username": {"ivan"}, "password": {"wrong"}}
	for range 2 {
		code, _, _ := a.postLang(t, ivan, "ru-RU,ru;q=0.9,en;q=0.5", bad)
		require.Equal(t, http.StatusUnauthorized, code)
	}
	code, page, hdr := a.postLang(t, ivan, "ru-RU,ru;q=0.9,en;q=0.5", bad)
	require.Equal(t, http.StatusPreconditionRequired, code, page)
	assert.Contains(t, hdr.Values("Vary"), "Accept-Language")
	assert.Contains(t, page, `lang="ru"`)
	assert.Contains(t, page, `<legend>Проверка безопасности</legend>`)
	assert.Contains(t, page, `>Введите цифры с картинки, чтобы продолжить.</p>`)
	assert.Contains(t, page, `<label for="captchagate-answer">Введите цифры, которые видите или слышите</label>`)
	assert.Contains(t, page, `alt="Картинка с цифрами для проверки.`)
	assert.Contains(t, page, `data-cg-play aria-describedby="captchagate-audio-help">Прослушать</button>`)
	assert.Contains(t, page, `data-cg-lang="ru"`)
	assert.NotContains(t, page, "Play audio")
	m := audioSrc.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	assert.True(t, strings.HasSuffix(m[1], ".wav?lang=ru"), m[1])
	text := textOf(t, page)
	assert.Equal(t, "Новая картинка загружена.", text["loaded"])
	assert.Equal(t, "Проверить", text["verify"])

	// The audio it names plays.
	code, _ = do(t, ivan, "GET", a.srv.URL+html.UnescapeString(m[1]), "", "")
	assert.Equal(t, http.StatusOK, code)

	// A wrong answer, said in Russian.
	code, page, _ = a.postLang(t, ivan, "ru", url.Values{"username": {"ivan"}, "password": {"right"}, "captcha_answer": {"999999"}})
	require.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, `role="alert" data-cg-message>Ответ неверный или устарел. Попробуйте эту новую картинку.</p>`)

	// The session's refresh (the widget's button) keeps the language.
	req, err := http.NewRequest("POST", a.srv.URL+"/captcha/refresh", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Language", "ru")
	res, err := ivan.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var rb struct{ Captcha captchagate.Captcha }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&rb))
	assert.True(t, strings.HasSuffix(rb.Captcha.AudioURL, ".wav?lang=ru"), rb.Captcha.AudioURL)
	assert.Contains(t, res.Header.Values("Vary"), "Accept-Language")

	// A fetch() client gets the gate's JSON with a Russian description.
	code, body := do(t, ivan, "POST", a.srv.URL+"/login", "application/json", `{"username":"ivan","password":"x"}`, "Accept-Language", "ru")
	require.Equal(t, http.StatusPreconditionRequired, code)
	assert.Contains(t, body, `"error":"captcha_required"`)
	assert.Contains(t, body, "нужен captcha_token; решите капчу и повторите запрос")
}

// TestWidgetInJapanese: Options.Lang sets the language whatever the
// browser asks for, on the form's page and on the plain visit.
func TestWidgetInJapanese(t *testing.T) {
	a := newAppWith(t, gatetest.KnownDigits{}, func(o *htmlform.Options) { o.Lang = "ja" })
	ken := a.browser(t)
	bad := url.Values{"username": {"ken"}, "password": {"wrong"}}
	for range 2 {
		a.postLang(t, ken, "de", bad)
	}
	code, page, hdr := a.postLang(t, ken, "de", bad)
	require.Equal(t, http.StatusPreconditionRequired, code, page)
	assert.NotContains(t, hdr.Values("Vary"), "Accept-Language", "the app chose")
	assert.Contains(t, page, `lang="ja"`)
	assert.Contains(t, page, `<legend>セキュリティチェック</legend>`)
	assert.Contains(t, page, `>続けるには、画像の数字を入力してください。</p>`)
	assert.Contains(t, page, `<label for="captchagate-answer">見えた、または聞こえた数字を入力してください</label>`)
	assert.Contains(t, page, `>音声を再生</button>`)
	assert.Contains(t, page, `>新しい画像</button>`)
	m := audioSrc.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	assert.True(t, strings.HasSuffix(m[1], ".wav?lang=ja"), m[1])
	assert.Equal(t, "数字を再生しています。", textOf(t, page)["playing"])

	_, home := do(t, ken, "GET", a.srv.URL+"/", "", "", "Accept-Language", "fr")
	assert.Contains(t, home, `<legend>セキュリティチェック</legend>`)
	assert.Contains(t, home, ".wav?lang=ja")

	// Options.Lang takes every language of the gate.
	gate, err := captchagate.New(captchagate.Config{})
	require.NoError(t, err)
	defer gate.Close()
	for _, l := range captchagate.Languages() {
		_, err = htmlform.New(gate, htmlform.Options{Sessions: sessions.NewCookieStore([]byte("k")), Render: func(http.ResponseWriter, *http.Request, error) {}, Lang: l})
		assert.NoError(t, err, l)
	}
}

// TestWidgetLanguageWithoutAudio: German text, with the audio's default
// (the audio speaks no German), and a limit in German words.
func TestWidgetLanguageWithoutAudio(t *testing.T) {
	a := newApp(t)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "de-AT")
	assert.Equal(t, "de", a.flow.Language(r))
	w := string(a.flow.Widget(r, &captchagate.Error{Code: captchagate.CodeTooManyRequests, RetryAfter: 30 * time.Minute}))
	assert.Contains(t, w, "Zu viele Versuche. Bitte versuchen Sie es in 30 Minuten erneut.")
	assert.Contains(t, w, `lang="de"`)
	assert.Contains(t, w, `data-cg-lang="en"`)
	assert.Equal(t, "Audio abspielen", textOf(t, w)["play"])
	var text map[string]string
	require.NoError(t, json.Unmarshal([]byte(a.flow.WidgetText(r)), &text))
	assert.Equal(t, "Neues Bild geladen.", text["loaded"])
}
