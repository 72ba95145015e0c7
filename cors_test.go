package captchagate_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

const appOrigin = "https://app.example.com"

// The captcha endpoints answer a preflight of a configured origin, and only
// of one; their answers to it say which headers a client may read.
func TestCORS(t *testing.T) {
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.CORS = captchagate.CORS{Origins: []string{appOrigin, "http://localhost:3000"}, Credentials: true}
	})
	preflight := func(origin string) *http.Response {
		return serve(a.mux, "OPTIONS", "/captcha/verify", "", "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type,x-captcha-token, x-evil").Result()
	}
	r := preflight(appOrigin)
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	assert.Equal(t, appOrigin, r.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", r.Header.Get("Access-Control-Allow-Credentials"))
	assert.Equal(t, "GET, HEAD, POST", r.Header.Get("Access-Control-Allow-Methods"))
	assert.Equal(t, "content-type, x-captcha-token", r.Header.Get("Access-Control-Allow-Headers"), "not x-evil")
	assert.Equal(t, "600", r.Header.Get("Access-Control-Max-Age"))
	assert.Contains(t, r.Header.Values("Vary"), "Origin")

	r = preflight("https://evil.example")
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, "another origin's preflight is an OPTIONS like any other")
	assert.Empty(t, r.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, r.Header.Values("Vary"), "Origin", "caches keep the answers apart")

	// The call itself, after the preflight.
	c := a.trip(t, "alice")
	w := serve(a.mux, "POST", "/captcha/verify", `{"captcha_id":"`+c.ID+`","captcha_answer":"`+answer+`"}`,
		"Content-Type", "application/json", "Origin", "http://localhost:3000")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "http://localhost:3000", w.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "Retry-After, RateLimit, RateLimit-Policy", w.Header().Get("Access-Control-Expose-Headers"))
	w = serve(a.mux, "GET", c.ImageURL, "", "Origin", "https://evil.example")
	assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"), "an image fetched by another origin's script stays unreadable")

	// Without Config.CORS: no header, preflights refused as before.
	b := newLoginApp(t, nil)
	r = serve(b.mux, "OPTIONS", "/captcha/verify", "", "Origin", appOrigin, "Access-Control-Request-Method", "POST").Result()
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	assert.Empty(t, r.Header.Get("Access-Control-Allow-Origin"))

	// Any origin, without credentials.
	any := newLoginApp(t, func(c *captchagate.Config) { c.CORS.Origins = []string{"*"} })
	r = serve(any.mux, "OPTIONS", "/captcha/refresh", "", "Origin", "https://x.example", "Access-Control-Request-Method", "POST").Result()
	assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, r.Header.Get("Access-Control-Allow-Credentials"))

	for _, bad := range []captchagate.CORS{
		{Origins: []string{"*"}, Credentials: true},
		{Origins: []string{"https://app.example.com/"}},
		{Origins: []string{"app.example.com"}},
		{Origins: []string{"https://user@app.example.com"}},
		{Credentials: true},
	} {
		_, err := captchagate.New(captchagate.Config{CORS: bad})
		assert.ErrorContains(t, err, "CORS", "%+v", bad)
	}
}
