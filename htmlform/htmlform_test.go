package htmlform_test

import (
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
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

var policy = captchagate.Policy{Name: "login", MaxFailures: 2, Window: time.Hour,
	Keys: []captchagate.Key{captchagate.Username(captchagate.Field("username"))}}

type app struct {
	srv  *httptest.Server
	flow *htmlform.Flow
}

func newApp(t *testing.T) *app { return newAppWith(t, gatetest.KnownDigits{}) }

// newAppWith is newApp with challenge ch, and opts adjusting the Options.
func newAppWith(t *testing.T, ch captchagate.Challenge, opts ...func(*htmlform.Options)) *app {
	gate, err := captchagate.New(captchagate.Config{Secret: gatetest.Secret, Challenge: ch,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	store := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	store.Options = &sessions.Options{Path: "/", HttpOnly: true}
	a := &app{}
	o := htmlform.Options{Sessions: store, Render: func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(htmlform.Status(err))
		io.WriteString(w, `<form>`+string(a.flow.Widget(r, err))+`</form>`)
	}}
	for _, f := range opts {
		f(&o)
	}
	a.flow, err = htmlform.New(gate, o)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/captcha/", a.flow.Handler())
	mux.Handle("POST /login", a.flow.Middleware(gate.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("password") != "right" && !strings.Contains(readAll(r.Body), `"right"`) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "welcome")
	}))))
	mux.Handle("GET /{$}", a.flow.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, string(a.flow.Widget(r, nil)))
	})))
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }

// browser is a client with its own cookie jar: one visitor's session.
func (a *app) browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

func do(t *testing.T, c *http.Client, method, url, ctype, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, readAll(resp.Body)
}

const form = "application/x-www-form-urlencoded"

func (a *app) post(t *testing.T, c *http.Client, values url.Values) (int, string) {
	return do(t, c, "POST", a.srv.URL+"/login", form, values.Encode())
}

var imgID = regexp.MustCompile(`/captcha/([A-Za-z0-9_-]{22,})\.png`)

func TestFormFlowKeepsTheCaptchaInTheSession(t *testing.T) {
	a := newApp(t)
	alice := a.browser(t)
	bad := url.Values{"username": {"alice"}, "password": {"wrong"}}
	for range 2 {
		code, _ := a.post(t, alice, bad)
		require.Equal(t, http.StatusUnauthorized, code)
	}
	code, page := a.post(t, alice, bad)
	require.Equal(t, http.StatusPreconditionRequired, code)
	assert.Contains(t, page, "Please type the digits in the picture")
	assert.Contains(t, page, `alt="Security check picture of digits.`)
	assert.Contains(t, page, `<label for="captchagate-answer">`)
	assert.NotContains(t, page, `name="captcha_id"`, "no hidden id field")
	id := imgID.FindStringSubmatch(page)[1]

	// The page shows the same captcha again on a plain visit.
	_, home := do(t, alice, "GET", a.srv.URL+"/", "", "")
	assert.Contains(t, home, id)

	// Refresh without naming the captcha refreshes the session's.
	code, body := do(t, alice, "POST", a.srv.URL+"/captcha/refresh", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var rb struct{ Captcha captchagate.Captcha }
	require.NoError(t, json.Unmarshal([]byte(body), &rb))
	assert.NotEqual(t, id, rb.Captcha.ID)
	_, home = do(t, alice, "GET", a.srv.URL+"/", "", "")
	assert.Contains(t, home, rb.Captcha.ID, "the session follows the refresh")

	// Another visitor cannot answer alice's captcha, even knowing its id: it
	// is not in that visitor's session, and naming it does not help.
	eve := a.browser(t)
	withID := url.Values{"username": {"alice"}, "password": {"right"}, "captcha_answer": {gatetest.Answer}, "captcha_id": {rb.Captcha.ID}}
	code, page = a.post(t, eve, withID)
	assert.Equal(t, http.StatusForbidden, code, "bound to alice's session")
	assert.Contains(t, page, "not right")

	// Eve's attempt did not burn that captcha (a proof bound elsewhere is
	// refused unspent); alice answers it wrong (a new one), then right.
	code, page = a.post(t, alice, url.Values{"username": {"alice"}, "password": {"right"}, "captcha_answer": {"999999"}})
	require.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, `role="alert"`)
	code, page = a.post(t, alice, url.Values{"username": {"alice"}, "password": {"right"}, "captcha_answer": {gatetest.Answer}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "welcome", page)
}

func TestTokenIsUselessInAnotherSession(t *testing.T) {
	a := newApp(t)
	alice, eve := a.browser(t), a.browser(t)
	login := `{"username":"alice","password":"right"}`
	for range 2 {
		do(t, alice, "POST", a.srv.URL+"/login", "application/json", `{"username":"alice","password":"x"}`)
	}
	code, body := do(t, alice, "POST", a.srv.URL+"/login", "application/json", login)
	require.Equal(t, http.StatusPreconditionRequired, code, "a fetch() client gets JSON")
	var e struct{ Captcha captchagate.Captcha }
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	code, body = do(t, alice, "POST", a.srv.URL+"/captcha/verify", "application/json",
		`{"captcha_id":"`+e.Captcha.ID+`","captcha_answer":"`+gatetest.Answer+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	var tb struct {
		Token string `json:"captcha_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tb))
	code, _ = do(t, eve, "POST", a.srv.URL+"/login", "application/json", login, captchagate.TokenHeader, tb.Token)
	assert.Equal(t, http.StatusForbidden, code, "eve's session cannot use alice's token")
	// The token was consumed by eve's attempt; alice needs a new captcha. A
	// token minted in alice's session works in alice's session.
	code, body = do(t, alice, "POST", a.srv.URL+"/login", "application/json", login)
	require.Equal(t, http.StatusPreconditionRequired, code)
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	_, body = do(t, alice, "POST", a.srv.URL+"/captcha/verify", "application/json",
		`{"captcha_id":"`+e.Captcha.ID+`","captcha_answer":"`+gatetest.Answer+`"}`)
	require.NoError(t, json.Unmarshal([]byte(body), &tb))
	code, _ = do(t, alice, "POST", a.srv.URL+"/login", "application/json", login, captchagate.TokenHeader, tb.Token)
	assert.Equal(t, http.StatusOK, code)
}

func TestTamperedCookieStartsANewSession(t *testing.T) {
	a := newApp(t)
	c := a.browser(t)
	do(t, c, "GET", a.srv.URL+"/", "", "")
	u, _ := url.Parse(a.srv.URL)
	cookies := c.Jar.Cookies(u)
	require.Len(t, cookies, 1)
	cookies[0].Value = "x" + cookies[0].Value[1:]
	c.Jar.SetCookies(u, cookies)
	code, _ := do(t, c, "GET", a.srv.URL+"/", "", "")
	assert.Equal(t, http.StatusOK, code)
	assert.NotEqual(t, cookies[0].Value, c.Jar.Cookies(u)[0].Value, "a fresh session replaced the tampered one")
}

func TestAssetsAndOptions(t *testing.T) {
	a := newApp(t)
	c := a.browser(t)
	code, js := do(t, c, "GET", a.srv.URL+"/captcha/widget.js", "", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, js, "captchagate = { solve: solve")
	code, _ = do(t, c, "POST", a.srv.URL+"/captcha/widget.css", "", "")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, body := do(t, c, "POST", a.srv.URL+"/captcha/refresh", "", "")
	assert.Equal(t, http.StatusNotFound, code, "no captcha pending")
	assert.Contains(t, body, "not_found")
	assert.Contains(t, body, `"error_description":"no captcha to refresh"`)
	_, body = do(t, c, "POST", a.srv.URL+"/captcha/refresh", "", "", "Accept-Language", "de")
	assert.Contains(t, body, `"error_description":"kein Captcha zum Aktualisieren"`, "in the request's language")

	gate, err := captchagate.New(captchagate.Config{})
	require.NoError(t, err)
	defer gate.Close()
	_, err = htmlform.New(gate, htmlform.Options{})
	assert.Error(t, err)
	_, err = htmlform.New(gate, htmlform.Options{Sessions: sessions.NewCookieStore([]byte("k")), Render: func(http.ResponseWriter, *http.Request, error) {}, Lang: "xx"})
	assert.Error(t, err)

	assert.Equal(t, 200, htmlform.Status(nil))
	assert.Equal(t, 500, htmlform.Status(errors.New("x")))
	assert.Equal(t, 429, htmlform.Status(&captchagate.Error{Code: captchagate.CodeTooManyRequests}))
	assert.Contains(t, string(a.flow.Widget(httptest.NewRequest("GET", "/", nil),
		&captchagate.Error{Code: captchagate.CodeTooManyRequests, RetryAfter: 30 * time.Minute})), "try again in 30 minutes")
	assert.Empty(t, a.flow.Widget(httptest.NewRequest("GET", "/", nil), nil))
}

// Other kinds than digits: the server-rendered widget mounts the kind's piece
// (built by widget.js), and the form carries the token it earns in a hidden
// captcha_token field, which the guard accepts on the form post.
func TestFormFlowMountsOtherKinds(t *testing.T) {
	spy := &gatetest.SliderSpy{}
	a := newAppWith(t, spy)
	alice := a.browser(t)
	bad := url.Values{"username": {"alice"}, "password": {"wrong"}}
	for range 2 {
		a.post(t, alice, bad)
	}
	code, page := a.post(t, alice, bad)
	require.Equal(t, http.StatusPreconditionRequired, code)
	assert.NotContains(t, page, `captchagate-answer`, "no digits field for a slider")
	m := regexp.MustCompile(`data-cg-captcha="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, m, page)
	var c captchagate.Captcha
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(m[1])), &c))
	assert.Equal(t, "slider", c.Kind)
	require.Contains(t, c.Extra, "slider", "the puzzle's geometry")
	assert.Contains(t, page, `<input type="hidden" name="captcha_token" data-cg-token>`)

	// What widget.js does: load the picture, answer, put the token in the form.
	code, _ = do(t, alice, "GET", a.srv.URL+c.ImageURL, "", "")
	require.Equal(t, http.StatusOK, code)
	x, ok := spy.Gap(c.ID)
	require.True(t, ok)
	code, body := do(t, alice, "POST", a.srv.URL+c.VerifyURL, "application/json",
		`{"captcha_id":"`+c.ID+`","captcha_answer":"{\"x\":`+strconv.Itoa(x)+`,\"y\":5}"}`)
	require.Equal(t, http.StatusOK, code, body)
	var tb struct {
		Token string `json:"captcha_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tb))
	code, page = a.post(t, alice, url.Values{"username": {"alice"}, "password": {"right"}, "captcha_token": {tb.Token}})
	assert.Equal(t, http.StatusOK, code, page)
}
