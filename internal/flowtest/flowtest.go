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
