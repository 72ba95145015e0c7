package captchagate_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

func TestMatchLanguage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"en-US", "en"},
		{"pt-BR", "pt"},
		{"pt-PT", "pt"},
		{"zh-CN", "zh"},
		{"zh-Hans", "zh"},
		{"ja-JP", "ja"},
		{"ru-RU", "ru"},
		{"es-419", "es"},
		{"de-CH, en;q=0.5", "de"},
		{"fr;q=0.1, ja;q=0.9", "ja"},      // q-values, not order
		{"en;q=0, de", "de"},              // q=0: not acceptable
		{"ko, ru;q=0.5", "ru"},            // the first the gate speaks
		{"*;q=0.5, fr", "fr"},             // * matches nothing of its own
		{"zh-TW", "zh"},                   // x/text: traditional readers read simplified
		{"be", "ru"},                      // x/text judges Russian readable
		{"*", ""},                         // anything: the default
		{"ko", ""},                        // unsupported
		{"garbage!!", ""},                 // unparsable
		{"x-klingon", ""},                 // private use
		{"", ""},                          // none
		{strings.Repeat("de, ", 200), ""}, // too long to parse
	} {
		got, ok := captchagate.MatchLanguage(c.in)
		assert.Equal(t, c.want, got, "%q", c.in)
		assert.Equal(t, c.want != "", ok, "%q", c.in)
	}
	assert.Equal(t, []string{"en", "ru", "zh", "ja", "pt", "es", "de", "fr"}, captchagate.Languages())
}

func TestGateLanguage(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	gde, _ := newGate(t, func(c *captchagate.Config) { c.DefaultLanguage = "de" })
	r := func(hdr ...string) *http.Request { return request("GET", "/", "", hdr...) }
	assert.Equal(t, "en", g.Language(r()), "default default")
	assert.Equal(t, "de", gde.Language(r()), "Config.DefaultLanguage")
	assert.Equal(t, "de", gde.Language(r("Accept-Language", "*")))
	assert.Equal(t, "de", gde.Language(r("Accept-Language", ";;garbage")))
	assert.Equal(t, "pt", gde.Language(r("Accept-Language", "pt-BR,pt;q=0.9")))
	assert.Equal(t, "ja", g.Language(r("Accept-Language", "ko", "Accept-Language", "ja;q=0.5")), "every Accept-Language line")
	// The app's choice wins over the header; one the gate cannot say
	// leaves the choice to the header.
	assert.Equal(t, "fr", g.Language(captchagate.WithLanguage(r("Accept-Language", "ru"), "fr-CA")))
	assert.Equal(t, "ru", g.Language(captchagate.WithLanguage(r("Accept-Language", "ru"), "klingon")))

	_, err := captchagate.New(captchagate.Config{DefaultLanguage: "it"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DefaultLanguage")
}

// TestErrorInGerman: over real HTTP, a tripped login asked in German gets
// the German description, the wire code and name unchanged, and Vary.
func TestErrorInGerman(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	srv := httptest.NewServer(a.mux)
	t.Cleanup(srv.Close)
	post := func(lang string) (*http.Response, apiError) {
		req, err := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(`{"username":"alice","password":"wrong"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var e apiError
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusUnauthorized {
			require.NoError(t, json.Unmarshal(b, &e), string(b))
		}
		return res, e
	}
	for range 5 {
		res, _ := post("de-DE")
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		assert.Empty(t, res.Header.Values("Vary"), "below the thresholds nothing is said")
	}
	res, e := post("de-DE,de;q=0.9,en;q=0.8")
	require.Equal(t, http.StatusPreconditionRequired, res.StatusCode)
	assert.Equal(t, "captcha_required", e.Error)
	assert.Equal(t, 4001, e.ErrorCode)
	assert.Equal(t, "captcha_token erforderlich; bitte das Captcha lösen und erneut versuchen", e.Description)
	assert.Contains(t, res.Header.Values("Vary"), "Accept-Language")
	require.NotNil(t, e.Captcha)
	assert.NotContains(t, e.Captcha.AudioURL, "?lang=", "the audio speaks no German: its default")

	res, e = post("")
	require.Equal(t, http.StatusPreconditionRequired, res.StatusCode)
	assert.Equal(t, "captcha_token required; solve the captcha and retry", e.Description, "English unchanged")
	assert.Contains(t, res.Header.Values("Vary"), "Accept-Language", "the English answer depends on the header too")
}

// TestErrorsTranslated: descriptions with parameters and reasons, in
// several languages, at the endpoints and the guard.
func TestErrorsTranslated(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.MaxBodyBytes = 100 })
	c := a.trip(t, "bob")

	w := serve(a.mux, "POST", "/captcha/verify", `{"captcha_id":"`+c.ID+`","captcha_answer":"000000"}`,
		"Content-Type", "application/json", "Accept-Language", "ru")
	e := decodeError(t, w)
	assert.Equal(t, "captcha_invalid", e.Error)
	assert.Equal(t, "капча не принята: неверный ответ; решите новую капчу", e.Description)

	w = a.login(t, "bob", "wrong", "Accept-Language", "ja", captchagate.TokenHeader, "not-a-token")
	e = decodeError(t, w)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.Equal(t, "captcha_token が無効です: 不明または使用済み。新しいキャプチャを解いてください", e.Description)

	w = serve(a.mux, "POST", "/login", `{"username":"`+strings.Repeat("x", 200)+`"}`,
		"Content-Type", "application/json", "Accept-Language", "fr")
	e = decodeError(t, w)
	assert.Equal(t, "request_too_large", e.Error)
	assert.Equal(t, "corps de plus de 100 octets", e.Description)

	w = serve(a.mux, "POST", "/login", `{"password":"x"}`, "Content-Type", "application/json", "Accept-Language", "es")
	e = decodeError(t, w)
	assert.Equal(t, "invalid_request", e.Error)
	assert.Equal(t, "json:username", e.Param)
	assert.Equal(t, "falta json:username", e.Description)

	w = serve(a.mux, "GET", "/captcha/"+c.ID+".wav?lang=de", "", "Accept-Language", "zh-CN")
	e = decodeError(t, w)
	assert.Equal(t, "lang 必须是以下之一：en, ru, zh, ja, pt", e.Description)

	w = serve(a.mux, "PUT", "/captcha/verify", "", "Accept-Language", "pt-BR")
	e = decodeError(t, w)
	assert.Equal(t, "method_not_allowed", e.Error)
	assert.Equal(t, "use POST", e.Description)
	assert.Equal(t, "POST", w.Header().Get("Allow"))
}

// TestAppLanguageWins: the language an app sets reaches its ErrorHandler,
// over the header, and the answer does not vary with Accept-Language.
func TestAppLanguageWins(t *testing.T) {
	t.Parallel()
	var got *captchagate.Error
	g, _ := newGate(t, func(c *captchagate.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			require.True(t, errors.As(err, &got))
			captchagate.WriteError(w, r, err)
		}
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Handler().ServeHTTP(w, captchagate.WithLanguage(r, "ja"))
	})
	w := serve(h, "POST", "/captcha/verify", `{"captcha_answer":"1"}`, "Content-Type", "application/json", "Accept-Language", "de")
	e := decodeError(t, w)
	assert.Equal(t, "captcha_id が必要です", e.Description)
	require.NotNil(t, got)
	assert.Equal(t, "captcha_id が必要です", got.Description, "the ErrorHandler gets the translation")
	assert.Equal(t, captchagate.CodeMissingCaptchaID, got.Code)
	assert.Empty(t, w.Header().Values("Vary"))
}

// TestAudioFollowsLanguage: the captcha's audio URL asks for the
// request's language where the audio speaks it, and the URL serves it.
func TestAudioFollowsLanguage(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.MaxRefreshes = 20 })
	c := a.trip(t, "carol")
	srv := httptest.NewServer(a.mux)
	t.Cleanup(srv.Close)
	refresh := func(id, lang string) (*captchagate.Captcha, http.Header) {
		req, err := http.NewRequest("POST", srv.URL+"/captcha/refresh", strings.NewReader(`{"captcha_id":"`+id+`"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Language", lang)
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var body struct{ Captcha *captchagate.Captcha }
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return body.Captcha, res.Header
	}
	for _, lc := range []struct{ accept, query string }{
		{"ru-RU", "?lang=ru"}, {"ja", "?lang=ja"}, {"zh-Hans", "?lang=zh"}, {"pt-BR", "?lang=pt"},
		{"en-GB", ""}, {"fr", ""}, {"ko", ""},
	} {
		next, hdr := refresh(c.ID, lc.accept)
		assert.Equal(t, "/captcha/"+next.ID+".wav"+lc.query, next.AudioURL, lc.accept)
		assert.Contains(t, hdr.Values("Vary"), "Accept-Language")
		c = next
	}
	c, _ = refresh(c.ID, "ja")
	res, err := srv.Client().Get(srv.URL + c.AudioURL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "audio/wav", res.Header.Get("Content-Type"))
}

// TestUnderThresholdsNoLanguage: a request the guard lets through pays
// nothing for languages: no more allocations with an Accept-Language than
// without.
func TestUnderThresholdsNoLanguage(t *testing.T) {
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "p", MaxFailures: 1 << 30, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	allocs := func(hdr ...string) float64 {
		r := request("GET", "/", "", hdr...)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r) // warm
		assert.False(t, slices.Contains(w.Header().Values("Vary"), "Accept-Language"))
		return testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) })
	}
	plain := allocs()
	with := allocs("Accept-Language", "de-CH, de;q=0.9, fr;q=0.8, en;q=0.7, "+strings.Repeat("x", 100))
	assert.LessOrEqual(t, with, plain)
}
