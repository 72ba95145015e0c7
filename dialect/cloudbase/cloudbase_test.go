package cloudbase_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/cloudbase"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// server is a CloudBase-shaped app: /auth/v1/signin guarded by failures,
// /auth/v1/verification by a send rate, the dialect on the captcha
// endpoints.
type server struct {
	t   *testing.T
	srv *httptest.Server
	spy *gatetest.Spy
}

func newServer(t *testing.T, o cloudbase.Options, tokenTTL time.Duration) *server {
	t.Helper()
	d, err := cloudbase.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	spy := &gatetest.Spy{Digits: d.Challenge()}
	gate, err := captchagate.New(captchagate.Config{
		Secret:       gatetest.Secret,
		Prefix:       d.Prefix(),
		Challenge:    spy,
		Dialects:     []captchagate.Dialect{d},
		ErrorHandler: d.WriteError,
		TokenTTL:     tokenTTL,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	mux := http.NewServeMux()
	mux.Handle(d.Prefix(), gate.Handler())
	mux.Handle("POST /auth/v1/signin", gate.Guard(captchagate.Policy{Name: "signin", MaxFailures: 5, Window: time.Hour,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			var b struct{ Username, Password string }
			json.NewDecoder(r.Body).Decode(&b)
			if b.Password != "wonderland" {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"error":"invalid_password","error_description":"wrong password"}`)
				return
			}
			io.WriteString(w, `{"token_type":"Bearer","access_token":"at","expires_in":3600}`)
		})))
	mux.Handle("POST /auth/v1/verification", gate.Guard(captchagate.Policy{Name: "sms",
		Keys: []captchagate.Key{{Source: captchagate.JSONField("phone_number"), Identity: captchagate.IdentityPhone,
			Rate: rate.Every(time.Hour), Burst: 1}}})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"verification_id":"v1","is_user":true}`)
		})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{t: t, srv: srv, spy: spy}
}

// post sends body as the SDK does: JSON with Content-Type text/plain,
// client_id in the query, the device id header.
func (s *server) post(device, path, body string) (int, map[string]any) {
	s.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest("POST", s.srv.URL+path+sep+"client_id=demo", strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	if device != "" {
		req.Header.Set("x-device-id", device)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m
}

const deviceA = "5f0c8a52-8d0e-4d8e-9a59-3c1f7f0e8a11"

func signin(password string) string {
	return `{"username":"alice","password":"` + password + `"}`
}

// trip makes 5 wrong sign-ins and returns the sixth's answer.
func (s *server) trip(device string) map[string]any {
	s.t.Helper()
	for i := range 5 {
		_, m := s.post(device, "/auth/v1/signin", signin("nope"))
		require.Equal(s.t, "invalid_password", m["error"], "attempt %d", i+1)
	}
	_, m := s.post(device, "/auth/v1/signin", signin("wonderland"))
	return m
}

// data asks for the captcha of state, as the SDK's request wrapper does.
func (s *server) data(device, state string) (token, answer string, m map[string]any) {
	s.t.Helper()
	_, m = s.post(device, "/auth/v1/captcha/data", `{"state":"`+state+`","redirect_uri":""}`)
	token, _ = m["token"].(string)
	if token != "" {
		answer, _ = s.spy.Answer(token)
	}
	return token, answer, m
}

func wrong(answer string) string {
	if answer == "0000" {
		return "1111"
	}
	return "0000"
}

func TestSignInFlow(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	m := s.trip(deviceA)
	assert.Equal(t, map[string]any{"error": "captcha_required", "error_code": 4001.0,
		"error_description": m["error_description"]}, m, "the SDK's ResponseError shape, nothing else")

	tok1, ans1, m := s.data(deviceA, "POST:/v1/signin")
	require.NotEmpty(t, tok1, "%v", m)
	assert.Equal(t, "image", m["type"])
	assert.Positive(t, m["expires_in"])
	data, _ := m["data"].(string)
	require.True(t, strings.HasPrefix(data, "data:image/png;base64,"), "a data: URL of the picture")
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(data, "data:image/png;base64,"))
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(png[:4]))
	assert.Len(t, ans1, 4, "the SDK's modal takes 4 characters")

	// A wrong answer: a plain failure for the SDK, never captcha_*.
	code, m := s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok1+`","key":"`+wrong(ans1)+`"}`)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "invalid_argument", m["error"], "captcha_invalid here would start a captcha for the verify call")
	assert.Equal(t, 4002.0, m["error_code"])

	// The UI refreshes: the fresh captcha of the same flow.
	tok2, ans2, _ := s.data(deviceA, "POST:/v1/signin")
	require.NotEmpty(t, tok2)
	assert.NotEqual(t, tok1, tok2)
	_, m = s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok2+`","key":"`+ans2+`"}`)
	ct, _ := m["captcha_token"].(string)
	require.NotEmpty(t, ct, "%v", m)
	assert.Equal(t, 9.0, m["expires_in"], "expires_in - 10 < 0: the SDK's cached copy is expired as stored")
	_, hasCode := m["code"]
	assert.False(t, hasCode, "a code member is an error to the SDK")

	code, m = s.post(deviceA, "/auth/v1/signin?captcha_token="+ct, signin("wonderland"))
	assert.Equal(t, http.StatusOK, code, "%v", m)
	assert.Equal(t, "at", m["access_token"])

}

func TestTokenSingleUse(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	s.trip(deviceA)
	tok, ans, _ := s.data(deviceA, "POST:/v1/signin")
	_, m := s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok+`","key":"`+ans+`"}`)
	ct := m["captcha_token"].(string)
	code, _ := s.post(deviceA, "/auth/v1/signin?captcha_token="+ct, signin("nope"))
	assert.Equal(t, http.StatusUnauthorized, code)
	_, m = s.post(deviceA, "/auth/v1/signin?captcha_token="+ct, signin("wonderland"))
	assert.Equal(t, "captcha_invalid", m["error"], "a spent token")

	// After captcha_invalid, the SDK asks for a new captcha (forceNewToken):
	// the fresh one the guard issued.
	tok2, ans2, _ := s.data(deviceA, "POST:/v1/signin")
	require.NotEmpty(t, tok2)
	_, m = s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok2+`","key":"`+ans2+`"}`)
	_, m = s.post(deviceA, "/auth/v1/signin?captcha_token="+m["captcha_token"].(string), signin("wonderland"))
	assert.Equal(t, "at", m["access_token"])
}

func TestExpiresInAtMostTokenTTL(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 5*time.Second)
	s.trip(deviceA)
	tok, ans, _ := s.data(deviceA, "POST:/v1/signin")
	_, m := s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok+`","key":"`+ans+`"}`)
	assert.Equal(t, 5.0, m["expires_in"], "never longer than the token lives")
}

func TestRefreshReplacesTheCaptcha(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	s.trip(deviceA)
	tok1, ans1, _ := s.data(deviceA, "POST:/v1/signin")
	tok2, _, _ := s.data(deviceA, "POST:/v1/signin")
	require.NotEmpty(t, tok2)
	assert.NotEqual(t, tok1, tok2, "a second POST data is the UI's refresh")
	_, m := s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok1+`","key":"`+ans1+`"}`)
	assert.Equal(t, "invalid_argument", m["error"], "the refreshed captcha is gone")
	assert.Empty(t, m["captcha_token"])
}

func TestRefreshLimit(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	s.trip(deviceA)
	for i := range 6 { // the captcha, then 5 refreshes
		tok, _, m := s.data(deviceA, "POST:/v1/signin")
		require.NotEmpty(t, tok, "data %d: %v", i+1, m)
	}
	_, _, m := s.data(deviceA, "POST:/v1/signin")
	assert.Equal(t, "too_many_requests", m["error"], "Config.MaxRefreshes bounds the flow")
}

func TestOtherDeviceGetsNoCaptchaOfTheFlow(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	s.trip(deviceA)
	for _, dev := range []string{"another-device-0123456789", ""} {
		tok, _, m := s.data(dev, "POST:/v1/signin")
		assert.Empty(t, tok, "device %q", dev)
		assert.Equal(t, "invalid_request", m["error"])
	}
	tok, _, _ := s.data(deviceA, "POST:/v1/signin")
	assert.NotEmpty(t, tok, "device A's flow is intact")
}

func TestStatesUpFront(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{States: map[string]string{"POST:/v1/signin": "signin"}}, 0)
	// Nothing pending: a captcha up front for the state's policy.
	tok, ans, m := s.data(deviceA, "POST:/v1/signin")
	require.NotEmpty(t, tok, "%v", m)
	_, m = s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok+`","key":"`+ans+`"}`)
	upFront := m["captcha_token"].(string)
	m = s.trip(deviceA)
	require.Equal(t, "captcha_required", m["error"])
	_, m = s.post(deviceA, "/auth/v1/signin?captcha_token="+upFront, signin("wonderland"))
	assert.Equal(t, "captcha_invalid", m["error"], "an up-front captcha opens no tripped account")
}

func TestSMSSends(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	const send = `{"phone_number":"+86 13800000000","target":"ANY"}`
	_, m := s.post(deviceA, "/auth/v1/verification", send)
	require.Equal(t, "v1", m["verification_id"])
	for i := range 2 {
		_, m = s.post(deviceA, "/auth/v1/verification", send)
		require.Equal(t, "captcha_required", m["error"], "send %d past the rate", i+2)
		tok, ans, _ := s.data(deviceA, "POST:/v1/verification")
		_, m = s.post(deviceA, "/auth/v1/captcha/data/verify", `{"token":"`+tok+`","key":"`+ans+`"}`)
		ct := m["captcha_token"].(string)
		_, m = s.post(deviceA, "/auth/v1/verification?captcha_token="+ct, send)
		require.Equal(t, "v1", m["verification_id"], "send %d with its captcha", i+2)
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	s := newServer(t, cloudbase.Options{}, 0)
	for _, tc := range []struct{ path, body string }{
		{"/auth/v1/captcha/data", `not json`},
		{"/auth/v1/captcha/data", `{"state":""}`},
		{"/auth/v1/captcha/data/verify", `{"token":"","key":"1234"}`},
		{"/auth/v1/captcha/data/verify", `{"token":"abc","key":""}`},
	} {
		code, m := s.post(deviceA, tc.path, tc.body)
		assert.Equal(t, http.StatusBadRequest, code, "%s %s", tc.path, tc.body)
		assert.NotContains(t, m["error"], "captcha_", "%s %s", tc.path, tc.body)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, o := range []cloudbase.Options{
		{APIPath: "auth"},
		{Digits: 40},
		{TTL: -time.Second},
		{States: map[string]string{"": "signin"}},
		{MaxPending: 10},
	} {
		_, err := cloudbase.New(o)
		assert.Error(t, err, "%+v", o)
	}
	d, err := cloudbase.New(cloudbase.Options{APIPath: "/api/auth/", Digits: 6})
	require.NoError(t, err)
	defer d.Close()
	assert.Equal(t, "/api/auth/v1/captcha/", d.Prefix())
	assert.Equal(t, 6, d.Challenge().Length)
	r := httptest.NewRequest("POST", "/api/auth/v1/signin?client_id=x", nil)
	assert.Equal(t, "POST:/v1/signin", d.State(r))
}
