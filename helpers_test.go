package captchagate_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

type clock = storetest.Clock

func together(n int, f func()) { gatetest.Together(n, f) }

type knownDigits = gatetest.KnownDigits

const answer = gatetest.Answer

var testSecret = gatetest.Secret

// newGate returns a gate on an injected clock with known answers, a silent
// logger and a generous creation limit; mutate adjusts the config.
func newGate(t *testing.T, mutate func(*captchagate.Config)) (*captchagate.Gate, *clock) {
	t.Helper()
	clk := storetest.NewClock()
	cfg := captchagate.Config{
		Secret:      testSecret,
		Challenge:   knownDigits{},
		Now:         clk.Now,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		CreateBurst: 1000,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := captchagate.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	return g, clk
}

// loginPolicy: 5 failures per username in 15 minutes, 20 per IP in an hour.
var loginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 20, Window: time.Hour},
	},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

// loginApp mounts the gate's handlers and a guarded login whose only good
// password is "right"; it counts the handler's calls.
type loginApp struct {
	gate   *captchagate.Gate
	clock  *clock
	mux    *http.ServeMux
	calls  atomic.Int64
	events *eventLog // unless mutate sets its own OnEvent
}

func newLoginApp(t *testing.T, mutate func(*captchagate.Config)) *loginApp {
	return newLoginAppWith(t, loginPolicy, mutate)
}

// newLoginAppWith is newLoginApp guarded by policy. Its handler reports
// the right password with Succeed (which sets a device cookie under
// Policy.Devices), as well as with its status.
func newLoginAppWith(t *testing.T, policy captchagate.Policy, mutate func(*captchagate.Config)) *loginApp {
	events := &eventLog{}
	g, clk := newGate(t, func(c *captchagate.Config) {
		c.OnEvent = events.hook
		if mutate != nil {
			mutate(c)
		}
	})
	a := &loginApp{gate: g, clock: clk, mux: http.NewServeMux(), events: events}
	a.mux.Handle("/captcha/", g.Handler())
	a.mux.Handle("POST /login", g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		var req struct{ Username, Password string }
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		captchagate.Succeed(r)
		w.WriteHeader(http.StatusOK)
	})))
	return a
}

func (a *loginApp) login(t *testing.T, user, pass string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return serve(a.mux, "POST", "/login", string(body), append([]string{"Content-Type", "application/json"}, hdr...)...)
}

// serve runs one request (see request).
func serve(h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request(method, path, body, hdr...))
	return w
}

// request is a request from 192.0.2.1 (RemoteAddr) unless a "RemoteAddr"
// pseudo-header is given, with the headers hdr names.
func request(method, path, body string, hdr ...string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "192.0.2.1:1234"
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "RemoteAddr" {
			r.RemoteAddr = hdr[i+1]
			continue
		}
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

type apiError struct {
	Error       string               `json:"error"`
	ErrorCode   int                  `json:"error_code"`
	Description string               `json:"error_description"`
	Param       string               `json:"param"`
	Captcha     *captchagate.Captcha `json:"captcha"`
}

func decodeError(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"), "body: %s", w.Body.String())
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	var e apiError
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), w.Body.String())
	return e
}

// verify posts an answer and returns the response.
func verify(h http.Handler, id, ans string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"captcha_id": id, "captcha_answer": ans})
	return serve(h, "POST", "/captcha/verify", string(body), "Content-Type", "application/json")
}

// solve verifies the right answer and returns the captcha_token.
func solve(t *testing.T, h http.Handler, id string) string {
	t.Helper()
	return solveWith(t, h, id, answer)
}

// solveWith verifies ans, which must be right, and returns the captcha_token.
func solveWith(t *testing.T, h http.Handler, id, ans string) string {
	t.Helper()
	w := verify(h, id, ans)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var tb struct {
		Token     string `json:"captcha_token"`
		ExpiresIn int    `json:"expires_in"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &tb))
	require.NotEmpty(t, tb.Token)
	return tb.Token
}

// eventLog records a gate's events (Config.OnEvent = l.hook), so tests tell
// refusals apart by Event.Reason, never by parsing error_description.
type eventLog struct {
	mu   sync.Mutex
	list []captchagate.Event
}

func (l *eventLog) hook(e captchagate.Event) {
	l.mu.Lock()
	l.list = append(l.list, e)
	l.mu.Unlock()
}

func (l *eventLog) reset() {
	l.mu.Lock()
	l.list = nil
	l.mu.Unlock()
}

// reason returns the Reason of the last event of kind, "" if none.
func (l *eventLog) reason(kind captchagate.EventKind) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.list) - 1; i >= 0; i-- {
		if l.list[i].Kind == kind {
			return l.list[i].Reason
		}
	}
	return ""
}

// trip fails user's login until the gate asks for a captcha, and
// returns that captcha.
func (a *loginApp) trip(t *testing.T, user string) *captchagate.Captcha {
	t.Helper()
	for i := 0; i < 5; i++ {
		require.Equal(t, http.StatusUnauthorized, a.login(t, user, "wrong").Code)
	}
	w := a.login(t, user, "wrong")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, w.Body.String())
	e := decodeError(t, w)
	require.NotNil(t, e.Captcha)
	return e.Captcha
}

// member returns the kind's member name of c (Captcha.Extra) as a string,
// whether c was decoded from JSON or built in process; "" if it has none.
func member(c *captchagate.Captcha, name string) string {
	switch v := c.Extra[name].(type) {
	case string:
		return v
	case json.RawMessage:
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return ""
}

// forgedID has the form of a captcha id (a sealed record in base64url) but
// was sealed by no gate.
var forgedID = strings.Repeat("A", 100)
