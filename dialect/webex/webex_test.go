package webex_test

import (
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
	"github.com/captchagate/captchagate/dialect/webex"
	"github.com/captchagate/captchagate/internal/gatetest"
)

const (
	base     = "https://meet.example.com"
	prefix   = "/captchaservice/v1/captchas/"
	password = "sesame"
	right    = gatetest.Answer
	wrong    = "654321"
)

// clock is a settable time for the gate and the dialect.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type app struct {
	t     *testing.T
	gate  *captchagate.Gate
	mux   *http.ServeMux
	clock *clock
}

type setup struct {
	maxRefreshes int
	maxFlows     int
	wrap         bool // the guard's Wrap with the Dialect as ProofReader, not Begin
}

// newApp serves a meeting-info route in the SDK's shape: the guard trips
// past one wrong password per meeting; the app checks the password.
func newApp(t *testing.T, s setup) *app {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)}
	d := webex.New(webex.Options{Now: c.now, MaxFlows: s.maxFlows})
	gate, err := captchagate.New(captchagate.Config{
		Secret: gatetest.Secret, BaseURL: base, Prefix: prefix,
		Challenge: gatetest.KnownDigits{}, Dialects: []captchagate.Dialect{d}, ErrorHandler: d.Error,
		Now: c.now, MaxRefreshes: s.maxRefreshes, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	a := &app{t: t, gate: gate, mux: http.NewServeMux(), clock: c}
	a.mux.Handle(prefix, gate.Handler())
	check := func(w http.ResponseWriter, pw string, end func(), fail func(), ok func()) {
		switch pw {
		case "":
			end()
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"code":403004}`))
		case password:
			ok()
			w.Write([]byte(`{"meetingNumber":"1"}`))
		default:
			fail()
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"code":403028}`))
		}
	}
	if s.wrap {
		p := captchagate.Policy{Name: "join", MaxFailures: 1, Keys: []captchagate.Key{{Source: captchagate.JSONField("meetingKey")}}}
		a.mux.Handle("POST /meetingInfo", gate.Guard(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req struct{ Password string }
			json.NewDecoder(r.Body).Decode(&req)
			check(w, req.Password, func() {}, func() { captchagate.Fail(r) }, func() { captchagate.Succeed(r) })
		})))
		return a
	}
	guard, err := gate.NewGuard(captchagate.Policy{Name: "join", MaxFailures: 1,
		Keys: []captchagate.Key{{Source: captchagate.Arg("meeting")}, {Source: captchagate.ClientIP(), MaxFailures: 100}}})
	require.NoError(t, err)
	a.mux.HandleFunc("POST /meetingInfo", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MeetingKey        string `json:"meetingKey"`
			Password          string `json:"password"`
			CaptchaID         string `json:"captchaID"`
			CaptchaVerifyCode string `json:"captchaVerifyCode"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		at, err := d.Begin(w, r, guard, map[string]string{"meeting": req.MeetingKey},
			captchagate.Proof{CaptchaID: req.CaptchaID, Answer: req.CaptchaVerifyCode})
		if err != nil {
			gate.Error(w, r, err)
			return
		}
		check(w, req.Password, at.End, at.Fail, at.Succeed)
	})
	return a
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// reply is a response's status and JSON body.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }
func (r reply) code() int           { f, _ := r.body["code"].(float64); return int(f) }

func (a *app) post(path, body string) reply {
	a.t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "192.0.2.7:4000"
	a.mux.ServeHTTP(w, r)
	out := reply{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if strings.HasPrefix(strings.TrimSpace(out.raw), "{") {
		require.NoError(a.t, json.Unmarshal(w.Body.Bytes(), &out.body), out.raw)
	}
	return out
}

// info is the SDK's meeting-info fetch.
func (a *app) info(meeting, pw, id, code string) reply {
	a.t.Helper()
	b := map[string]any{"supportHostKey": true, "supportCountryList": true, "meetingKey": meeting, "disableWebRedirect": true}
	if pw != "" {
		b["password"] = pw
	}
	if id != "" {
		b["captchaID"], b["captchaVerifyCode"] = id, code
	}
	j, _ := json.Marshal(b)
	return a.post("/meetingInfo", string(j))
}

// refresh is the SDK's refreshCaptcha: POST {refreshURL}&siteFullName=…
// with {"captchaId": id}.
func (a *app) refresh(refreshURL, id string) reply {
	a.t.Helper()
	u := strings.TrimPrefix(refreshURL, base) + "&siteFullName=meet.example.com"
	return a.post(u, `{"captchaId":"`+id+`"}`)
}

// trip makes the meeting need a captcha and returns the 423.
func (a *app) trip(meeting string) reply {
	a.t.Helper()
	require.Equal(a.t, http.StatusForbidden, a.info(meeting, "guess", "", "").status)
	r := a.info(meeting, "guess", "", "")
	require.Equal(a.t, http.StatusLocked, r.status, r.raw)
	return r
}

func TestCaptchaRequiredShape(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	// The SDK's first probe, without a password, counts nothing.
	for range 3 {
		assert.Equal(t, 403004, a.info("111", "", "", "").code())
	}
	assert.Equal(t, 403028, a.info("111", "guess", "", "").code(), "the probes did not trip the meeting")
	r := a.info("111", "guess", "", "")
	require.Equal(t, http.StatusLocked, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	id := r.str("captchaID")
	require.NotEmpty(t, id)
	assert.Equal(t, webex.CodeCaptchaRequired, r.code())
	assert.NotEmpty(t, r.str("message"))
	assert.Equal(t, base+prefix+id+".png", r.str("verificationImageURL"))
	assert.Equal(t, base+prefix+id+".wav", r.str("verificationAudioURL"))
	assert.Equal(t, base+prefix+"refresh?captcha_id="+id, r.str("refreshURL"), "absolute, with a query the SDK appends to")
	assert.ElementsMatch(t, []string{"code", "message", "captchaID", "verificationImageURL", "verificationAudioURL", "refreshURL"}, keys(r.body))
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRightCodeAndPassword(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	id := a.trip("111").str("captchaID")
	assert.Equal(t, http.StatusOK, a.info("111", password, id, right).status)
	// The captcha was used: the same proof again is refused with a new one.
	r := a.info("111", password, id, right)
	require.Equal(t, http.StatusLocked, r.status)
	assert.Equal(t, webex.CodeCaptchaInvalid, r.code())
	assert.NotEqual(t, id, r.str("captchaID"))
}

func TestProofMembersAreTheSDKs(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{wrap: true})
	id := a.trip("111").str("captchaID")
	// Other spellings are not the SDK's: no proof, so captcha_required
	// (423005) and the captcha unspent.
	r := a.post("/meetingInfo", `{"meetingKey":"111","password":"sesame","captchaId":"`+id+`","captchaverifycode":"`+right+`"}`)
	require.Equal(t, http.StatusLocked, r.status)
	assert.Equal(t, webex.CodeCaptchaRequired, r.code())
	r = a.post("/meetingInfo", `{"meetingKey":"111","password":"sesame","captchaID":"`+id+`","captchaVerifyCode":"`+right+`"}`)
	assert.Equal(t, http.StatusOK, r.status, r.raw)
}

func TestWrongCode(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	id := a.trip("111").str("captchaID")
	r := a.info("111", password, id, wrong)
	require.Equal(t, http.StatusLocked, r.status)
	assert.Equal(t, webex.CodeCaptchaInvalid, r.code())
	next := r.str("captchaID")
	assert.NotEqual(t, id, next)
	assert.Equal(t, http.StatusLocked, a.info("111", password, id, right).status, "a wrong code burns the captcha")
	// That refusal issued another; the one the wrong code got still works.
	assert.Equal(t, http.StatusOK, a.info("111", password, next, right).status)
}

func TestRefreshShape(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	first := a.trip("111")
	id, refreshURL := first.str("captchaID"), first.str("refreshURL")
	r := a.refresh(refreshURL, id)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	next := r.str("captchaID")
	assert.NotEqual(t, id, next)
	assert.Equal(t, base+prefix+next+".png", r.str("verificationImageURL"))
	assert.Equal(t, base+prefix+next+".wav", r.str("verificationAudioURL"))
	// The SDK keeps its first refreshURL: the query names the first id, the
	// body the current one, which is refreshed.
	r2 := a.refresh(refreshURL, next)
	require.Equal(t, http.StatusOK, r2.status, r2.raw)
	last := r2.str("captchaID")
	assert.NotEqual(t, next, last)
	assert.Equal(t, http.StatusLocked, a.info("111", password, id, right).status, "a refreshed captcha is gone")
	assert.Equal(t, http.StatusLocked, a.info("111", password, next, right).status)
	assert.Equal(t, http.StatusOK, a.info("111", password, last, right).status)
}

func TestRefreshAfterUse(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	first := a.trip("111")
	id := first.str("captchaID")
	r := a.info("111", "guess", id, right) // right code, wrong password
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, 403028, r.code())

	r = a.refresh(first.str("refreshURL"), id)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	next := r.str("captchaID")
	assert.NotEqual(t, id, next)
	assert.Equal(t, base+prefix+next+".png", r.str("verificationImageURL"))

	// Single use holds: the used captcha is still used.
	assert.Equal(t, http.StatusLocked, a.info("111", password, id, right).status)
	// And is refreshed once only.
	assert.Equal(t, http.StatusNotFound, a.refresh(first.str("refreshURL"), id).status)
	// The new captcha is the flow's: it opens the meeting.
	assert.Equal(t, http.StatusOK, a.info("111", password, next, right).status)
}

func TestRefreshAfterUseIsBoundToTheFlow(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{})
	first := a.trip("111")
	a.trip("222")
	id := first.str("captchaID")
	require.Equal(t, http.StatusForbidden, a.info("111", "guess", id, right).status)
	next := a.refresh(first.str("refreshURL"), id).str("captchaID")
	require.NotEmpty(t, next)
	// Issued for meeting 111: another meeting refuses it, unspent.
	r := a.info("222", password, next, right)
	assert.Equal(t, http.StatusLocked, r.status)
	assert.Equal(t, http.StatusOK, a.info("111", password, next, right).status)
}

func TestRefreshAfterUseCountsAgainstTheLimit(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{maxRefreshes: 2})
	first := a.trip("111")
	u := first.str("refreshURL")
	c0 := first.str("captchaID")
	c1 := a.refresh(u, c0).str("captchaID") // 1 of 2
	require.NotEmpty(t, c1)
	require.Equal(t, http.StatusForbidden, a.info("111", "guess", c1, right).status)
	c2 := a.refresh(u, c1).str("captchaID") // after use: 2 of 2
	require.NotEmpty(t, c2)
	r := a.refresh(u, c2)
	assert.Equal(t, http.StatusTooManyRequests, r.status, "the flow's refreshes are spent: %s", r.raw)

	// A wrong code's new captcha continues the flow: still no refresh.
	r = a.info("111", password, c2, wrong)
	require.Equal(t, http.StatusLocked, r.status)
	c3 := r.str("captchaID")
	assert.Equal(t, http.StatusTooManyRequests, a.refresh(u, c3).status)
	assert.Equal(t, http.StatusOK, a.info("111", password, c3, right).status)
}

func TestRefreshAfterUseWithoutBegin(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{wrap: true})
	first := a.trip("111")
	id := first.str("captchaID")
	require.Equal(t, http.StatusForbidden, a.info("111", "guess", id, right).status)
	assert.Equal(t, http.StatusNotFound, a.refresh(first.str("refreshURL"), id).status, "no flow kept: the gate's refresh")
}

func TestKeptFlowsExpireAndAreBounded(t *testing.T) {
	t.Parallel()
	a := newApp(t, setup{maxFlows: 1})
	one := a.trip("111")
	two := a.trip("222") // no room: its flow is not kept
	require.Equal(t, http.StatusForbidden, a.info("222", "guess", two.str("captchaID"), right).status)
	assert.Equal(t, http.StatusNotFound, a.refresh(two.str("refreshURL"), two.str("captchaID")).status)

	// Past the captcha's lifetime the flow is forgotten.
	id := one.str("captchaID")
	require.Equal(t, http.StatusForbidden, a.info("111", "guess", id, right).status)
	a.clock.add(6 * time.Minute)
	assert.Equal(t, http.StatusNotFound, a.refresh(one.str("refreshURL"), id).status)
}
