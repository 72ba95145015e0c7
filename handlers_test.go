package captchagate_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

func newCaptcha(t *testing.T, h http.Handler, policy string) *captchagate.Captcha {
	t.Helper()
	return captchaOf(t, serve(h, "POST", "/captcha/new", `{"policy":"`+policy+`"}`, "Content-Type", "application/json"))
}

// refresh refreshes captcha id, which must succeed, and returns the new one.
func refresh(t *testing.T, h http.Handler, id string) *captchagate.Captcha {
	t.Helper()
	return captchaOf(t, serve(h, "POST", "/captcha/refresh", `{"captcha_id":"`+id+`"}`, "Content-Type", "application/json"))
}

// captchaOf returns the captcha of a 200 {"captcha":{...}} answer.
func captchaOf(t *testing.T, w *httptest.ResponseRecorder) *captchagate.Captcha {
	t.Helper()
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var b struct{ Captcha *captchagate.Captcha }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &b))
	require.NotNil(t, b.Captcha)
	return b.Captcha
}

func TestImageAndAudio(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.Challenge = nil }) // real random digits
	c := a.trip(t, "alice")

	w := serve(a.mux, "GET", c.ImageURL, "")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "image/png", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	img, err := png.Decode(bytes.NewReader(w.Body.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, 240, img.Bounds().Dx(), "the server's size, never the request's")
	assert.Equal(t, 80, img.Bounds().Dy())
	again := serve(a.mux, "GET", c.ImageURL+"?width=10000&height=10000", "")
	assert.Equal(t, w.Body.Bytes(), again.Body.Bytes(), "GET changes nothing: the same captcha renders the same")

	for _, lang := range []string{"", "en", "ru", "zh", "ja", "pt"} {
		w = serve(a.mux, "GET", c.AudioURL+"?lang="+lang, "")
		require.Equal(t, http.StatusOK, w.Code, lang)
		assert.Equal(t, "audio/wav", w.Header().Get("Content-Type"))
		b := w.Body.Bytes()
		require.Greater(t, len(b), 44)
		assert.Equal(t, "RIFF", string(b[:4]))
		assert.Equal(t, "WAVE", string(b[8:12]))
		assert.Equal(t, uint32(len(b)-8), binary.LittleEndian.Uint32(b[4:8]), "RIFF size matches the body")
		assert.Equal(t, "bytes", w.Header().Get("Accept-Ranges"), "browsers' <audio> may ask for ranges")
	}
	w = serve(a.mux, "GET", c.AudioURL, "", "Range", "bytes=0-99")
	assert.Equal(t, http.StatusPartialContent, w.Code)
	assert.Equal(t, 100, w.Body.Len())

	w = serve(a.mux, "GET", c.AudioURL+"?lang=xx", "")
	require.Equal(t, http.StatusBadRequest, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, 4105, e.ErrorCode)
	assert.Equal(t, "lang", e.Param)

	// The captcha is still answerable after all these GETs.
	assert.Equal(t, http.StatusForbidden, verify(a.mux, c.ID, "000000").Code)
}

func TestMediaErrors(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	for _, tc := range []struct {
		path   string
		method string
		status int
		code   int
	}{
		{"/captcha/" + forgedID + ".png", "GET", 404, 4004},
		{"/captcha/AAAAAAAAAAAAAAAAAAAAAA.png", "GET", 404, 4004},
		{"/captcha/" + strings.Repeat("A", 40) + ".png", "GET", 400, 4102},
		{"/captcha/short.png", "GET", 400, 4102},
		{"/captcha/" + strings.Repeat("A", 5000) + ".png", "GET", 400, 4102},
		{"/captcha/" + forgedID + ".exe", "GET", 404, 4004},
		{"/captcha/" + forgedID + ".png", "POST", 405, 4005},
		{"/captcha/verify", "GET", 405, 4005},
		{"/captcha/nothing", "GET", 404, 4004},
		{"/captcha/%00.png", "GET", 400, 4102},
	} {
		w := serve(a.mux, tc.method, tc.path, "")
		require.Equal(t, tc.status, w.Code, tc.path)
		assert.Equal(t, tc.code, decodeError(t, w).ErrorCode, tc.path)
	}
	w := serve(a.mux, "GET", "/captcha/verify", "")
	assert.Equal(t, "POST", w.Header().Get("Allow"))
}

func TestVerifyParameters(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	j := "application/json"
	for _, tc := range []struct {
		name, body, ctype string
		status, code      int
		param             string
	}{
		{"no id", `{"captcha_answer":"1"}`, j, 400, 4101, "captcha_id"},
		{"empty id", `{"captcha_id":"  ","captcha_answer":"1"}`, j, 400, 4101, "captcha_id"},
		{"bad id", `{"captcha_id":"../../etc","captcha_answer":"1"}`, j, 400, 4102, "captcha_id"},
		{"no answer", `{"captcha_id":"` + c.ID + `"}`, j, 400, 4103, "captcha_answer"},
		{"blank answer", `{"captcha_id":"` + c.ID + `","captcha_answer":"   "}`, j, 400, 4103, "captcha_answer"},
		{"long answer", `{"captcha_id":"` + c.ID + `","captcha_answer":"` + strings.Repeat("1", 100) + `"}`, j, 400, 4104, "captcha_answer"},
		{"wrong type", `{"captcha_id":12,"captcha_answer":"1"}`, j, 400, 4100, "captcha_id"},
		{"not json", `{"captcha_id":`, j, 400, 4100, ""},
		{"invalid utf8", "{\"captcha_id\":\"\xff\xfe\",\"captcha_answer\":\"1\"}", j, 400, 4100, ""},
		{"deep", strings.Repeat("[", 100000), j, 413, 4013, ""},
		{"huge number", `{"captcha_id":1e999999}`, j, 400, 4100, "captcha_id"},
		{"xml", `<a/>`, "text/xml", 400, 4110, ""},
		{"form no answer", "captcha_id=" + c.ID, "application/x-www-form-urlencoded", 400, 4103, "captcha_answer"},
		{"unknown id", `{"captcha_id":"` + forgedID + `","captcha_answer":"123456"}`, j, 403, 4002, ""},
	} {
		w := serve(a.mux, "POST", "/captcha/verify", tc.body, "Content-Type", tc.ctype)
		require.Equal(t, tc.status, w.Code, "%s: %s", tc.name, w.Body.String())
		e := decodeError(t, w)
		assert.Equal(t, tc.code, e.ErrorCode, tc.name)
		assert.Equal(t, tc.param, e.Param, tc.name)
	}
	// None of that burnt the captcha.
	solve(t, a.mux, c.ID)
}

func TestVerifyWrongAnswerBurnsCaptcha(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	w := verify(a.mux, c.ID, "654321")
	require.Equal(t, http.StatusForbidden, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.Equal(t, "wrong answer", a.events.reason(captchagate.EventCaptchaRejected))
	require.NotNil(t, e.Captcha)

	w = verify(a.mux, c.ID, answer)
	require.Equal(t, http.StatusForbidden, w.Code, "one answer per captcha")
	assert.Nil(t, decodeError(t, w).Captcha, "an unknown id gets no fresh captcha")
	assert.Equal(t, http.StatusNotFound, serve(a.mux, "GET", c.ImageURL, "").Code)

	// The fresh captcha is bound like the burnt one: its token opens alice's login.
	tok := solve(t, a.mux, e.Captcha.ID)
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", tok).Code)
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.MaxRefreshes = 2 })
	c := a.trip(t, "alice")
	assert.Equal(t, 2, c.RefreshesLeft)

	refresh := func(url string) *httptest.ResponseRecorder { return serve(a.mux, "POST", url, "") }
	w := refresh(c.RefreshURL)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var b struct{ Captcha *captchagate.Captcha }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &b))
	c2 := b.Captcha
	assert.NotEqual(t, c.ID, c2.ID)
	assert.Equal(t, 1, c2.RefreshesLeft)
	assert.Equal(t, http.StatusNotFound, serve(a.mux, "GET", c.ImageURL, "").Code, "the old captcha is gone")
	assert.Equal(t, http.StatusNotFound, refresh(c.RefreshURL).Code)

	w = serve(a.mux, "POST", "/captcha/refresh", `{"captcha_id":"`+c2.ID+`"}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, w.Code)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &b))
	c3 := b.Captcha
	w = refresh(c3.RefreshURL)
	require.Equal(t, http.StatusTooManyRequests, w.Code, "refresh is bounded")
	assert.Equal(t, 4029, decodeError(t, w).ErrorCode)
	assert.Empty(t, w.Header().Get("Retry-After"), "the refresh limit, not the creation limit: waiting does not help")

	// The refreshed captcha keeps the flow's binding.
	tok := solve(t, a.mux, c3.ID)
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", tok).Code)

	assert.Equal(t, 4101, decodeError(t, refresh("/captcha/refresh")).ErrorCode)
	assert.Equal(t, http.StatusMethodNotAllowed, serve(a.mux, "GET", c3.RefreshURL, "").Code, "no state change on GET")
}

func TestNew(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := newCaptcha(t, a.mux, "login")
	assert.Equal(t, http.StatusOK, serve(a.mux, "GET", c.ImageURL, "").Code)

	w := serve(a.mux, "POST", "/captcha/new", "policy=nope", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusBadRequest, w.Code)
	assert.Equal(t, 4107, decodeError(t, w).ErrorCode)
	w = serve(a.mux, "POST", "/captcha/new", "")
	require.Equal(t, http.StatusBadRequest, w.Code)
	assert.Equal(t, 4106, decodeError(t, w).ErrorCode)
	w = serve(a.mux, "POST", "/captcha/new?policy=login", "")
	require.Equal(t, http.StatusOK, w.Code)
}

func TestHandlerUnderStripPrefix(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/captcha/", http.StripPrefix("/captcha", a.gate.Handler()))
	c := newCaptcha(t, mux, "login")
	assert.Equal(t, http.StatusOK, serve(mux, "GET", c.ImageURL, "").Code)
}

// countingDigits counts renders.
type countingDigits struct {
	knownDigits
	renders *atomic.Int64
}

func (c countingDigits) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	c.renders.Add(1)
	return c.knownDigits.Render(w, id, secret, format, lang)
}

func TestMediaIsCachedAndLimitedPerClient(t *testing.T) {
	t.Parallel()
	var renders atomic.Int64
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.Challenge = countingDigits{renders: &renders}
		c.MediaBurst = 6
	})
	c := a.trip(t, "media")
	first := serve(a.mux, "GET", c.ImageURL, "")
	require.Equal(t, http.StatusOK, first.Code)
	for range 3 {
		w := serve(a.mux, "GET", c.ImageURL, "")
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, first.Body.Bytes(), w.Body.Bytes(), "the same bytes")
	}
	assert.Equal(t, int64(1), renders.Load(), "rendered once, served from the cache after")
	require.Equal(t, http.StatusOK, serve(a.mux, "GET", c.AudioURL+"?lang=ru", "").Code)
	assert.Equal(t, int64(2), renders.Load(), "each format and language renders once")

	// The sixth fetch from this client used its burst; another client is
	// served.
	w := serve(a.mux, "GET", c.ImageURL, "")
	assert.Equal(t, http.StatusOK, w.Code)
	w = serve(a.mux, "GET", c.ImageURL, "")
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "too_many_requests", decodeError(t, w).Error)
	assert.NotEmpty(t, w.Header().Get("Retry-After"))
	assert.Equal(t, http.StatusOK, serve(a.mux, "GET", c.ImageURL, "", "RemoteAddr", "203.0.113.9:1").Code)

	// A used captcha's media is gone, cache or not.
	solve(t, a.mux, c.ID)
	assert.Equal(t, http.StatusNotFound, serve(a.mux, "GET", c.ImageURL, "", "RemoteAddr", "203.0.113.9:1").Code)
}

// Sounds fetched from many goroutines while a small cache evicts them and
// reuses their buffers: every response is the captcha's own sound, whole.
func TestMediaBuffersReusedOnlyWhenUnread(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.MediaCacheBytes = 1 << 20 // about six sounds
		c.MediaRate, c.MediaBurst = rate.Inf, 1
	})
	var urls []string
	want := map[string][]byte{}
	for i := range 16 {
		c := newCaptcha(t, a.mux, "login")
		u := c.AudioURL
		if i%4 == 0 {
			u = c.ImageURL
		}
		urls = append(urls, u)
		w := serve(a.mux, "GET", u, "")
		require.Equal(t, http.StatusOK, w.Code)
		want[u] = w.Body.Bytes()
	}
	var bad atomic.Int64
	var n atomic.Int64
	together(8, func() {
		for range 40 {
			u := urls[n.Add(1)%int64(len(urls))]
			if w := serve(a.mux, "GET", u, ""); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), want[u]) {
				bad.Add(1)
			}
		}
	})
	assert.Zero(t, bad.Load(), "responses that were not their captcha's media")
}
