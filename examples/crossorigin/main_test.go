package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

// rig is the example's two servers on free loopback ports, and a third that
// serves the same page from an origin the gate's Config.CORS does not list
// but the login route's rs/cors does: only the gate's CORS sets it apart.
type rig struct {
	api, spa, foreign *httptest.Server
	spy               *gatetest.Spy
	log               *requestLog
}

func newRig(t *testing.T) *rig {
	t.Helper()
	api, spa, foreign := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
	apiURL := "http://" + api.Listener.Addr().String()
	spaOrigin := "http://" + spa.Listener.Addr().String()
	foreignOrigin := "http://" + foreign.Listener.Addr().String()

	spy := &gatetest.Spy{} // a test's stand-in: it tells the test each captcha's answer
	cfg := GateConfig(apiURL, []string{spaOrigin}, slog.New(slog.DiscardHandler))
	cfg.Challenge = spy
	cfg.Now = storetest.NewClock().Now // never advanced: nothing expires during the test
	gate, err := captchagate.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })

	r := &rig{api: api, spa: spa, foreign: foreign, spy: spy, log: &requestLog{}}
	api.Config.Handler = r.log.wrap(NewAPI(gate, []string{spaOrigin, foreignOrigin}))
	spa.Config.Handler = NewSPA(apiURL)
	foreign.Config.Handler = NewSPA(apiURL)
	for _, s := range []*httptest.Server{api, spa, foreign} {
		s.Start()
		t.Cleanup(s.Close)
	}
	require.Equal(t, apiURL, api.URL)
	return r
}

// requestLog records the API's requests as "METHOD /path status", with
// " token" when an X-Captcha-Token header came along (never its value).
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		line := r.Method + " " + r.URL.Path + " " + strconv.Itoa(sw.status)
		if r.Header.Get("X-Captcha-Token") != "" {
			line += " token"
		}
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
	})
}

// requests returns the lines of the requests to path, in order.
func (l *requestLog) requests(path string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Fields(line)[1] == path {
			out = append(out, line)
		}
	}
	return out
}

// page is the single-page app, open in a headless Chromium.
type page struct {
	t   *testing.T
	ctx context.Context
}

// open opens url in a fresh headless Chromium (the test skips without one).
func open(t *testing.T, url string) *page {
	p := &page{t: t, ctx: browsertest.New(t, 90*time.Second)}
	p.do(chromedp.Navigate(url))
	p.wait("the page's script", `document.readyState === "complete"`)
	return p
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	browsertest.Do(p.t, p.ctx, actions...)
}

func (p *page) wait(what, expr string) {
	p.t.Helper()
	browsertest.Wait(p.t, p.ctx, what, expr)
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	return browsertest.Eval[string](p.t, p.ctx, expr)
}

// click clicks sel and waits until the page has handled what the API
// answered (the form's data-done counter moved on).
func (p *page) click(sel string) {
	p.t.Helper()
	const done = `(document.getElementById("login").dataset.done || "0")`
	n := p.eval(done)
	p.do(chromedp.Click(sel))
	p.wait("the page to handle "+sel, done+` !== `+strconv.Quote(n))
}

// signIn types username and password (and answer, if any) and clicks Sign in.
func (p *page) signIn(user, pass, answer string) {
	p.t.Helper()
	p.do(chromedp.SetValue("#username", user), chromedp.SetValue("#password", pass))
	if answer != "" {
		p.do(chromedp.SendKeys("#captcha-answer", answer)) // the field is empty: each captcha shown clears it
	}
	p.click("#submit")
}

// status is the text of the page's status line.
func (p *page) status() string {
	p.t.Helper()
	return p.eval(`document.getElementById("status").textContent`)
}

// captchaShown reports whether the captcha's fieldset is visible.
func (p *page) captchaShown() bool {
	p.t.Helper()
	return browsertest.Eval[bool](p.t, p.ctx, `!document.getElementById("captcha").hidden`)
}

// image waits for a captcha image other than old to load, and returns its
// src and id.
func (p *page) image(old string) (src, id string) {
	p.t.Helper()
	p.wait("the captcha image", browsertest.ImageLoaded(old))
	return p.eval(`document.getElementById("captcha-image").getAttribute("src")`), browsertest.ImageID(p.t, p.ctx)
}

// trip signs in with a wrong password until the API asks for a captcha: five
// failures, then the sixth attempt is answered 428 and the page shows the
// captcha. It returns the captcha image's src and id.
func (p *page) trip(apiURL string) (src, id string) {
	p.t.Helper()
	for i := 0; i < 5; i++ {
		p.signIn("alice", "nope", "")
		require.Equal(p.t, "Wrong username or password.", p.status(), "attempt %d", i+1)
		require.False(p.t, p.captchaShown(), "no captcha below the threshold")
	}
	p.signIn("alice", "nope", "")
	assert.Equal(p.t, "Too many attempts: type the digits in the picture, then sign in again.", p.status())
	require.True(p.t, p.captchaShown())
	src, id = p.image("")
	assert.True(p.t, strings.HasPrefix(src, apiURL+"/captcha/"), "the image is on the API's origin (Config.BaseURL): %s", src)
	return src, id
}

// The whole round trip in a real browser, across origins: five wrong
// passwords, the captcha (its picture loaded from the API's origin), a new
// picture, a wrong answer and a fresh captcha, the right answer verified,
// and the login retried with the token. Each step passes on its first try.
func TestCrossOriginInBrowser(t *testing.T) {
	r := newRig(t)
	p := open(t, r.spa.URL+"/")
	src, first := p.trip(r.api.URL)

	// The guarded route's own CORS (rs/cors) exposes the RateLimit fields.
	exposed := p.eval(`fetch(` + strconv.Quote(r.api.URL+"/api/login") + `, {method: "POST",
		headers: {"Content-Type": "application/json"}, body: JSON.stringify({username: "alice", password: "nope"})})
		.then(function (res) { return res.status + " " + res.headers.get("RateLimit-Policy"); })`)
	assert.Regexp(t, `^428 .*login`, exposed)

	// A new picture: POST refresh_url, across origins.
	p.click("#captcha-refresh")
	assert.Equal(t, "New picture loaded.", p.status())
	src, second := p.image(src)
	assert.NotEqual(t, first, second)

	// A wrong answer: verify answers 403 with a fresh captcha, which the page
	// can read (the gate's CORS headers are on its errors too).
	answer, ok := r.spy.Answer(second)
	require.True(t, ok, "the browser loaded the image of %s", second)
	p.signIn("alice", "wonderland", wrong(answer))
	assert.Equal(t, "That answer was not right. Type the digits of the new picture.", p.status())
	_, third := p.image(src)
	assert.NotEqual(t, second, third)

	// The right answer: verify, then the login with X-Captcha-Token.
	answer, ok = r.spy.Answer(third)
	require.True(t, ok, "the browser loaded the image of %s", third)
	p.signIn("alice", "wonderland", answer)
	assert.Equal(t, "Welcome, alice. You are signed in.", p.status())
	assert.Equal(t, "ok", p.eval(`document.getElementById("status").dataset.kind`))

	verify := r.log.requests("/captcha/verify")
	assert.Contains(t, verify, "OPTIONS /captcha/verify 204", "the browser asked first")
	assert.Equal(t, []string{"POST /captcha/verify 403", "POST /captcha/verify 200"}, without(verify, "OPTIONS"))
	assert.Contains(t, r.log.requests("/api/login"), "OPTIONS /api/login 204")
	logins := without(r.log.requests("/api/login"), "OPTIONS")
	assert.Equal(t, "POST /api/login 200 token", logins[len(logins)-1], "the last login carried the token")
}

// The same page served from an origin that Config.CORS does not list (the
// login route's rs/cors allows it, so the logins go through and the captcha
// shows): the browser refuses the captcha endpoints' preflight answer, and
// fetch rejects at the verify step. Without the gate's CORS the test above
// fails the same way.
func TestCrossOriginUnlistedOriginFailsAtVerify(t *testing.T) {
	r := newRig(t)
	p := open(t, r.foreign.URL+"/")
	_, id := p.trip(r.api.URL)
	answer, ok := r.spy.Answer(id)
	require.True(t, ok, "the browser loaded the image of %s", id)

	p.signIn("alice", "wonderland", answer)
	assert.Equal(t, "verify", p.eval(`document.getElementById("status").dataset.failed || ""`))
	assert.Contains(t, p.status(), "Could not call the API (verify: ")
	assert.NotContains(t, p.status(), "Welcome")

	assert.Equal(t, []string{"OPTIONS /captcha/verify 405"}, r.log.requests("/captcha/verify"),
		"the preflight was refused and the answer never sent")
}

// wrong returns an answer other than answer, as long.
func wrong(answer string) string {
	b := []byte(answer)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// without returns the lines that do not start with method.
func without(lines []string, method string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, method+" ") {
			out = append(out, l)
		}
	}
	return out
}

// send sends method path to srv with the headers given in pairs, and returns
// the response, its body closed.
func send(t *testing.T, method, url, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	return res
}

// The CORS answers the browser tests rely on, over plain HTTP (these run
// without Chromium): the captcha endpoints answer the page's origin only,
// the login route its own list, and the gate's 428 is readable by the page.
func TestCORSHeaders(t *testing.T) {
	r := newRig(t)
	spa, foreign, evil := r.spa.URL, r.foreign.URL, "http://evil.example"
	preflight := func(path, origin string) *http.Response {
		return send(t, "OPTIONS", r.api.URL+path, "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,x-captcha-token")
	}

	res := preflight("/captcha/verify", spa)
	assert.Equal(t, http.StatusNoContent, res.StatusCode)
	assert.Equal(t, spa, res.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, []string{"content-type", "x-captcha-token"}, list(res.Header.Get("Access-Control-Allow-Headers")))
	for _, origin := range []string{foreign, evil} {
		res = preflight("/captcha/verify", origin)
		assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, origin)
		assert.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), origin)
	}

	for _, origin := range []string{spa, foreign} {
		res = preflight("/api/login", origin)
		assert.Equal(t, http.StatusNoContent, res.StatusCode, origin)
		assert.Equal(t, origin, res.Header.Get("Access-Control-Allow-Origin"), origin)
		assert.Equal(t, []string{"content-type", "x-captcha-token"}, list(res.Header.Get("Access-Control-Allow-Headers")), origin)
	}
	res = preflight("/api/login", evil)
	assert.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), "rs/cors allows the listed origins only")
	res = send(t, "OPTIONS", r.api.URL+"/api/login", "", "Origin", spa)
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, "an OPTIONS that is no preflight")
	assert.Equal(t, "POST", res.Header.Get("Allow"))

	// The gate's 428, through rs/cors: readable by the page, its RateLimit
	// fields too.
	var last *http.Response
	for i := 0; i < 6; i++ {
		last = send(t, "POST", r.api.URL+"/api/login", `{"username":"alice","password":"nope"}`,
			"Content-Type", "application/json", "Origin", spa)
	}
	require.Equal(t, http.StatusPreconditionRequired, last.StatusCode)
	assert.Equal(t, spa, last.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, []string{"retry-after", "ratelimit", "ratelimit-policy"}, list(last.Header.Get("Access-Control-Expose-Headers")))
	assert.NotEmpty(t, last.Header.Get("RateLimit-Policy"))
}

// The page is served with its API's URL and a Content-Security-Policy that
// lets it reach that API only.
func TestSPA(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewSPA("http://127.0.0.1:8091"))
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	res.Body.Close()
	assert.Contains(t, string(body), `<meta name="captchagate-api" content="http://127.0.0.1:8091">`)
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "connect-src http://127.0.0.1:8091;")
	for _, name := range []string{"/app.js", "/app.css"} {
		res = send(t, "GET", srv.URL+name, "")
		assert.Equal(t, http.StatusOK, res.StatusCode, name)
	}
	assert.Equal(t, http.StatusNotFound, send(t, "GET", srv.URL+"/index.html", "").StatusCode, "the template is not served raw")
}

// Origin is what a browser sends for the address a flag names.
func TestOrigin(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1:8090": "http://127.0.0.1:8090",
		":8091":          "http://localhost:8091",
		"0.0.0.0:8092":   "http://localhost:8092",
	} {
		got, err := Origin(addr)
		require.NoError(t, err, addr)
		assert.Equal(t, want, got, addr)
	}
	_, err := Origin("no port")
	assert.Error(t, err)
}

// list splits a header's comma-separated names, lowercased (rs/cors and the
// gate spell them differently; header names are case-insensitive).
func list(v string) []string {
	var out []string
	for name := range strings.SplitSeq(v, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(name)))
	}
	return out
}
