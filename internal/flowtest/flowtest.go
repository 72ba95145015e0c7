// Package flowtest drives a gate's HTTP flow for the tests of several
// modules (the router adapters, the examples): a gate on an injected clock
// whose captchas tell the test their answers, a client that posts JSON and
// reads the gate's answers, solving a captcha as a client does, and the
// login flow every router example must pass. Everything runs over real HTTP
// on loopback.
package flowtest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

// Wrong and Right are alice's login bodies: a wrong password and hers.
const (
	Wrong = `{"username":"alice","password":"nope"}`
	Right = `{"username":"alice","password":"wonderland"}`
)

// LoginPolicy asks for a captcha after 5 wrong passwords for an account in
// 15 minutes, or 20 from one address in an hour.
var LoginPolicy = captchagate.Policy{
	Name:        "login",
	MaxFailures: 5,
	Window:      15 * time.Minute,
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
}

// Credentials is a login request's body.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Env is a gate and what a test reads of it.
type Env struct {
	Gate  *captchagate.Gate
	Spy   *gatetest.Spy    // the gate's Challenge: Digits that tell their answers once rendered
	Clock *storetest.Clock // the gate's Now: tests advance it instead of sleeping
	Log   *SyncBuffer      // the gate's Logger writes text here
}

// NewEnv returns a gate made from cfg with its Challenge, Now and Logger
// replaced by the Env's Spy, Clock and Log (cfg's zero value: the in-memory
// store). The gate is closed when the test ends.
func NewEnv(t *testing.T, cfg captchagate.Config) *Env {
	t.Helper()
	e := &Env{Spy: &gatetest.Spy{}, Clock: storetest.NewClock(), Log: &SyncBuffer{}}
	cfg.Challenge = e.Spy
	cfg.Now = e.Clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(e.Log, nil))
	gate, err := captchagate.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	e.Gate = gate
	return e
}

// Serve serves h on a free loopback port until the test ends, and returns
// its base URL.
func Serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Answer is a response as the tests read it.
type Answer struct {
	Status     int
	RetryAfter string // the Retry-After header
	Body       struct {
		Error   string `json:"error"`
		Code    int    `json:"error_code"`
		OK      bool   `json:"ok"`
		Token   string `json:"captcha_token"`
		Captcha *struct {
			ID        string `json:"id"`
			ImageURL  string `json:"image_url"`
			VerifyURL string `json:"verify_url"`
		} `json:"captcha"`
	}
	Raw  string // the body as sent
	JSON bool   // the body is a JSON object (decoded into Body)
}

// Post posts body as JSON to url with the header's name, value pairs, and
// reads the answer; a body that starts like a JSON object must be one.
func Post(t *testing.T, url, body string, header ...string) Answer {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	a := Answer{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), Raw: string(b)}
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		require.NoError(t, json.Unmarshal(b, &a.Body), "%s answered %d %q", url, res.StatusCode, b)
		a.JSON = true
	}
	return a
}

// Image loads the image of the captcha a names from base, as a client shows
// it, and requires a PNG.
func Image(t *testing.T, base string, a Answer) {
	t.Helper()
	require.NotNil(t, a.Body.Captcha, a.Raw)
	res, err := http.Get(base + a.Body.Captcha.ImageURL)
	require.NoError(t, err)
	img, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "the image URL %s is served", a.Body.Captcha.ImageURL)
	assert.Equal(t, "image/png", res.Header.Get("Content-Type"))
	require.True(t, bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
}

// Verify posts the answer the spy read off the captcha a names (which must
// have been rendered) to its verify URL on base, and returns the
// captcha_token.
func Verify(t *testing.T, base string, spy *gatetest.Spy, a Answer) string {
	t.Helper()
	require.NotNil(t, a.Body.Captcha, a.Raw)
	digits, ok := spy.Answer(a.Body.Captcha.ID)
	require.True(t, ok, "the image was rendered")
	v := Post(t, base+a.Body.Captcha.VerifyURL, `{"captcha_id":"`+a.Body.Captcha.ID+`","captcha_answer":"`+digits+`"}`)
	require.Equal(t, http.StatusOK, v.Status, "verify: %s", v.Raw)
	require.NotEmpty(t, v.Body.Token)
	return v.Body.Token
}

// Solve takes a, which must be 428 captcha_required, loads its captcha's
// image from base, as a client shows it, posts its answer to the verify
// URL, and returns the captcha_token.
func (e *Env) Solve(t *testing.T, base string, a Answer) string {
	t.Helper()
	require.Equal(t, http.StatusPreconditionRequired, a.Status, a.Raw)
	require.Equal(t, "captcha_required", a.Body.Error)
	Image(t, base, a)
	return Verify(t, base, e.Spy, a)
}

// Login serves the routes newApp mounts on a gate whose captchas tell the
// test their answers once rendered, and runs the flow: five wrong passwords
// answered 401 in JSON, the sixth 428 captcha_required; the captcha's image
// loaded (a PNG), its answer posted to the verify URL, the right password
// accepted with the captcha_token, and the same token refused the second
// time. The gate must log neither a mounting warning nor an unsettled guard.
func Login(t *testing.T, newApp func(*captchagate.Gate) http.Handler) {
	t.Helper()
	e := NewEnv(t, captchagate.Config{})
	base := Serve(t, newApp(e.Gate))

	for i := 1; i <= 5; i++ {
		a := Post(t, base+"/api/login", Wrong)
		require.Equal(t, http.StatusUnauthorized, a.Status, "wrong password %d: %s", i, a.Raw)
		require.True(t, a.JSON, "wrong password %d: %s", i, a.Raw)
	}
	a := Post(t, base+"/api/login", Wrong)
	require.Equal(t, http.StatusPreconditionRequired, a.Status, "the sixth wrong password: %s", a.Raw)
	tok := e.Solve(t, base, a)

	in := Post(t, base+"/api/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusOK, in.Status, "with the token: %s", in.Raw)
	assert.True(t, in.Body.OK)
	again := Post(t, base+"/api/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusForbidden, again.Status, "the token again: %s", again.Raw)
	assert.Equal(t, "captcha_invalid", again.Body.Error)

	assert.NotContains(t, e.Log.String(), "outside Config.Prefix", "Handler mounted at Config.Prefix")
	assert.NotContains(t, e.Log.String(), "saw no outcome", "the guard sees the handler's statuses")
}

// The scenarios below are the client's side of what every adapter of the
// guard to a router must pass; the adapter's test mounts the routes on its
// router, each as the scenario's doc comment says, and runs the scenario
// against the server's base URL.

// Loader is what a scenario reads of the routes the test mounted, such as
// an *atomic.Int32 counting a guarded handler's runs.
type Loader interface{ Load() int32 }

// LoginOnce is the whole login flow at base+"/login" (guarded by
// LoginPolicy, answering 200 to Right and 401 with wrongBody, trimmed, to
// anything else): wrong passwords trip the guard, the client gets a
// captcha, loads its image, answers it, and signs in with the token, which
// works once. calls counts the handler's runs: never for a request the
// guard answered. No token in the gate's log, and the guard saw every
// outcome.
func (e *Env) LoginOnce(t *testing.T, base, wrongBody string, calls Loader) {
	t.Helper()
	for i := 1; i <= 5; i++ {
		a := Post(t, base+"/login", Wrong)
		require.Equal(t, http.StatusUnauthorized, a.Status, "wrong password %d", i)
		require.Equal(t, wrongBody, strings.TrimSpace(a.Raw))
	}
	a := Post(t, base+"/login", Wrong)
	require.Equal(t, http.StatusPreconditionRequired, a.Status, "the sixth: %s", a.Raw)
	assert.Equal(t, 4001, a.Body.Code)
	assert.Equal(t, int32(5), calls.Load(), "the handler did not run for the guard's answer")
	assert.Equal(t, http.StatusPreconditionRequired, Post(t, base+"/login", Right).Status, "the right password needs the captcha too")

	tok := e.Solve(t, base, a)
	in := Post(t, base+"/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusOK, in.Status, in.Raw)
	assert.True(t, in.Body.OK)

	again := Post(t, base+"/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusForbidden, again.Status, "a token works once: %s", again.Raw)
	assert.Equal(t, "captcha_invalid", again.Body.Error)
	assert.Equal(t, int32(6), calls.Load())
	assert.NotContains(t, e.Log.String(), "saw no outcome", "the guard sees every outcome")
	assert.NotContains(t, e.Log.String(), tok, "no token in the log")
}

// SendCodePolicy counts an SMS send route by phone: 2 sends at once, then
// one a minute, and 3 an hour at the most.
var SendCodePolicy = captchagate.Policy{Name: "send-code", Keys: []captchagate.Key{{
	Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone,
	Rate: rate.Every(time.Minute), Burst: 2, Ceiling: 3, CeilingWindow: time.Hour,
}}}

// SendCode is the SMS flow at base+"/send-code" (guarded by SendCodePolicy,
// answering 200; sent counts its runs): past its send rate the client needs
// a captcha (a token lets it send), past the ceiling it gets 429 with
// Retry-After even with a token; after the ceiling's window it sends again.
func (e *Env) SendCode(t *testing.T, base string, sent Loader) {
	t.Helper()
	const phone = `{"phone":"+1 202 555 0143"}`
	for i := 1; i <= 2; i++ {
		require.Equal(t, http.StatusOK, Post(t, base+"/send-code", phone).Status, "send %d, within the burst", i)
	}
	first := Post(t, base+"/send-code", phone)
	second := Post(t, base+"/send-code", phone)
	tokA, tokB := e.Solve(t, base, first), e.Solve(t, base, second)
	assert.Equal(t, int32(2), sent.Load(), "nothing sent past the rate without a captcha")

	a := Post(t, base+"/send-code", phone, captchagate.TokenHeader, tokA)
	require.Equal(t, http.StatusOK, a.Status, "the third send, with a captcha: %s", a.Raw)
	c := Post(t, base+"/send-code", phone, captchagate.TokenHeader, tokB)
	assert.Equal(t, http.StatusTooManyRequests, c.Status, "past the ceiling, even with a token: %s", c.Raw)
	assert.Equal(t, "too_many_requests", c.Body.Error)
	assert.NotEmpty(t, c.RetryAfter)
	assert.Equal(t, int32(3), sent.Load())

	e.Clock.Advance(time.Hour + time.Minute)
	assert.Equal(t, http.StatusOK, Post(t, base+"/send-code", phone).Status, "a new ceiling window")
}

// ItemPolicy counts failures by the route's id parameter (r.PathValue),
// 3 before a captcha.
var ItemPolicy = captchagate.Policy{Name: "unlock", MaxFailures: 3, Keys: []captchagate.Key{{
	Source: captchagate.SourceFunc("item", func(r *http.Request) (string, bool) {
		v := r.PathValue("id")
		return v, v != ""
	}),
}}}

// PerItem is the flow at base+"/items/{id}/unlock" (guarded by ItemPolicy,
// answering 403): failures on one item trip that item only.
func PerItem(t *testing.T, base string) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		require.Equal(t, http.StatusForbidden, Post(t, base+"/items/1/unlock", `{}`).Status, "item 1, try %d", i)
	}
	assert.Equal(t, http.StatusPreconditionRequired, Post(t, base+"/items/1/unlock", `{}`).Status, "item 1 tripped")
	assert.Equal(t, http.StatusForbidden, Post(t, base+"/items/2/unlock", `{}`).Status, "item 2 counts on its own")
}

// InGroup is the login flow on a gate made with Config.Prefix
// "/auth/captcha/", its Handler and base+"/auth/login" (guarded by
// LoginPolicy, answering 200 to Right and 401 to anything else) mounted in
// a route group at /auth: the URLs sent to the client work, and the gate
// warns of nothing.
func (e *Env) InGroup(t *testing.T, base string) {
	t.Helper()
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, Post(t, base+"/auth/login", Wrong).Status)
	}
	a := Post(t, base+"/auth/login", Wrong)
	require.NotNil(t, a.Body.Captcha, a.Raw)
	assert.True(t, strings.HasPrefix(a.Body.Captcha.ImageURL, "/auth/captcha/"), a.Body.Captcha.ImageURL)
	tok := e.Solve(t, base, a)
	assert.Equal(t, http.StatusOK, Post(t, base+"/auth/login", Right, captchagate.TokenHeader, tok).Status)
	assert.NotContains(t, e.Log.String(), "outside Config.Prefix")
}

// FailuresTrip is the login flow at base+"/login" (guarded by LoginPolicy,
// answering 401 with body, trimmed, to a wrong password) behind a
// middleware that stores the status the client got in outer: the sixth
// wrong password needs a captcha, and the middleware before the guard sees
// every status the client gets.
func FailuresTrip(t *testing.T, base, body string, outer Loader) {
	t.Helper()
	for i := 1; i <= 5; i++ {
		a := Post(t, base+"/login", Wrong)
		require.Equal(t, http.StatusUnauthorized, a.Status, "wrong password %d", i)
		assert.Equal(t, body, strings.TrimSpace(a.Raw))
		assert.Equal(t, int32(http.StatusUnauthorized), outer.Load(), "the request and the writer restored for the middleware before")
	}
	a := Post(t, base+"/login", Wrong)
	assert.Equal(t, http.StatusPreconditionRequired, a.Status, "the sixth wrong password: %s", a.Raw)
	assert.Equal(t, "captcha_required", a.Body.Error)
	assert.Equal(t, int32(http.StatusPreconditionRequired), outer.Load())
}

// SyncBuffer is a log the server's goroutines write and the test reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
