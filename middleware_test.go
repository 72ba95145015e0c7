package captchagate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

func TestThresholdThenCaptchaRequired(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	for i := 0; i < 5; i++ {
		assert.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong").Code)
	}
	w := a.login(t, "alice", "wrong")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, "captcha_required", e.Error)
	assert.Equal(t, 4001, e.ErrorCode)
	c := e.Captcha
	require.NotNil(t, c)
	assert.Regexp(t, `^[A-Za-z0-9_-]{80,}$`, c.ID, "a sealed record in base64url")
	assert.Equal(t, "digits", c.Kind)
	assert.Equal(t, "/captcha/"+c.ID+".png", c.ImageURL)
	assert.Equal(t, "/captcha/"+c.ID+".wav", c.AudioURL)
	assert.Equal(t, "/captcha/refresh?captcha_id="+c.ID, c.RefreshURL)
	assert.Equal(t, "/captcha/verify", c.VerifyURL)
	assert.Equal(t, 300, c.ExpiresIn)
	assert.Equal(t, int64(5), a.calls.Load(), "the handler is not called for the sixth attempt")

	// Another username from the same address is still below its thresholds.
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "bob", "wrong").Code)
	// Case and spaces do not make a new identity.
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "  ALICE ", "wrong").Code)
	// The window ends and the counter with it.
	a.clock.Advance(15 * time.Minute)
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong").Code)
}

func TestTokenRetryIsSingleUse(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	tok := solve(t, a.mux, c.ID)
	assert.GreaterOrEqual(t, len(tok), 80, "a sealed token")

	calls := a.calls.Load()
	w := a.login(t, "alice", "right", "X-Captcha-Token", tok)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, calls+1, a.calls.Load())

	// Success resets nothing account-wide: the next attempt without a
	// token still needs a captcha.
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "wrong").Code)

	// The token is spent.
	w = a.login(t, "alice", "right", "X-Captcha-Token", tok)
	require.Equal(t, http.StatusForbidden, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, "captcha_invalid", e.Error)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.Equal(t, "unknown or already used", a.events.reason(captchagate.EventTokenRefused))
	require.NotNil(t, e.Captcha, "captcha_invalid carries a fresh captcha")
	assert.NotEqual(t, c.ID, e.Captcha.ID)
}

func TestTokenInBodyFields(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	var calls atomic.Int64
	p := captchagate.Policy{Name: "form", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), MaxFailures: 1}}}
	h := g.Guard(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("/do", h)
	serve(mux, "POST", "/do", "")
	w := serve(mux, "POST", "/do", "a=b", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	c := decodeError(t, w).Captcha

	tok := solve(t, mux, c.ID)
	w = serve(mux, "POST", "/do", "a=b&captcha_token="+tok, "Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, int64(2), calls.Load(), "form field token let the request through")

	w = serve(mux, "POST", "/do", `{"a":1}`, "Content-Type", "application/json")
	c = decodeError(t, w).Captcha
	tok = solve(t, mux, c.ID)
	serve(mux, "POST", "/do", `{"a":1,"captcha_token":"`+tok+`"}`, "Content-Type", "application/json")
	assert.Equal(t, int64(3), calls.Load(), "JSON field token let the request through")
}

func TestInlineAnswer(t *testing.T) {
	t.Parallel()
	events := &eventLog{}
	g, _ := newGate(t, func(c *captchagate.Config) { c.OnEvent = events.hook })
	var got []string
	p := captchagate.Policy{Name: "signin", MaxFailures: 2, Keys: []captchagate.Key{
		captchagate.Username(captchagate.FormField("user")),
	}}
	h := g.Guard(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.FormValue("user")+"/"+r.FormValue("pass"))
		if r.FormValue("pass") != "right" {
			captchagate.Fail(r)
			w.Write([]byte("wrong password")) // 200, but Fail counts it
		}
	}))
	form := func(v url.Values) *httptest.ResponseRecorder {
		return serve(h, "POST", "/signin", v.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	}
	form(url.Values{"user": {"carol"}, "pass": {"x"}})
	form(url.Values{"user": {"carol"}, "pass": {"x"}})
	w := form(url.Values{"user": {"carol"}, "pass": {"x"}})
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	c := decodeError(t, w).Captcha

	// A wrong inline answer burns the captcha and brings a fresh one.
	w = form(url.Values{"user": {"carol"}, "pass": {"right"}, "captcha_id": {c.ID}, "captcha_answer": {"000000"}})
	require.Equal(t, http.StatusForbidden, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.Equal(t, "wrong answer", events.reason(captchagate.EventCaptchaRejected))
	fresh := e.Captcha
	require.NotNil(t, fresh)
	w = form(url.Values{"user": {"carol"}, "pass": {"right"}, "captcha_id": {c.ID}, "captcha_answer": {answer}})
	require.Equal(t, http.StatusForbidden, w.Code, "a burnt captcha never verifies")

	// The right answer on the fresh one passes, and the handler still reads
	// the form the guard read first.
	w = form(url.Values{"user": {"carol"}, "pass": {"right"}, "captcha_id": {fresh.ID}, "captcha_answer": {"12 34 56"}})
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, []string{"carol/x", "carol/x", "carol/right"}, got)
}

func TestTokenBoundToPolicyAndKeys(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	other := a.gate.Guard(captchagate.Policy{Name: "reset", MaxFailures: 1,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }))

	// A token for alice's login does not open bob's login.
	c := a.trip(t, "alice")
	a.trip(t, "bob")
	tok := solve(t, a.mux, c.ID)
	w := a.login(t, "bob", "right", "X-Captcha-Token", tok)
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decodeError(t, w).ErrorCode)
	assert.Equal(t, "issued for another request", a.events.reason(captchagate.EventTokenRefused))

	// A token for the login policy does not open another policy.
	c = a.trip(t, "carol")
	tok = solve(t, a.mux, c.ID)
	body := `{"username":"carol"}`
	serve(other, "POST", "/reset", body, "Content-Type", "application/json")
	a.events.reset()
	w = serve(other, "POST", "/reset", body, "Content-Type", "application/json", "X-Captcha-Token", tok)
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decodeError(t, w).ErrorCode)
	assert.Equal(t, "issued for another request", a.events.reason(captchagate.EventTokenRefused))
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")

	a.clock.Advance(5*time.Minute - time.Nanosecond)
	tok := solve(t, a.mux, c.ID) // one nanosecond before the deadline: still good

	a.clock.Advance(2 * time.Minute) // exactly the token's deadline
	w := a.login(t, "alice", "right", "X-Captcha-Token", tok)
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decodeError(t, w).ErrorCode)
	assert.Equal(t, "expired", a.events.reason(captchagate.EventTokenRefused))

	c2 := decodeError(t, w).Captcha
	a.clock.Advance(5 * time.Minute) // exactly the captcha's deadline
	w = verify(a.mux, c2.ID, answer)
	require.Equal(t, http.StatusForbidden, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.Equal(t, "expired", a.events.reason(captchagate.EventCaptchaRejected))
	assert.NotNil(t, e.Captcha)
	assert.Equal(t, http.StatusOK, serve(a.mux, "GET", "/captcha/"+e.Captcha.ID+".png", "").Code,
		"the fresh captcha is fetchable")
}

func TestSuccessResetsOnlyPerAccountKeys(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	// 19 failures from one address over several usernames...
	for i := 0; i < 19; i++ {
		require.Equal(t, http.StatusUnauthorized, a.login(t, string(rune('a'+i%5))+"user", "wrong").Code)
	}
	// ...a success for one of them gives its reservation back, and resets
	// neither its username's counter nor the IP's.
	require.Equal(t, http.StatusOK, a.login(t, "auser", "right").Code)
	require.Equal(t, http.StatusUnauthorized, a.login(t, "zed", "wrong").Code) // the 20th failure
	w := a.login(t, "yan", "wrong")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, "IP counter tripped at 21")

	// A victim whose username is attacked can still log in by solving a captcha.
	a2 := newLoginApp(t, nil)
	for i := 0; i < 10; i++ {
		a2.login(t, "victim", "guess", "RemoteAddr", "198.51.100."+string(rune('1'+i%9))+":1")
	}
	w = a2.login(t, "victim", "right", "RemoteAddr", "203.0.113.7:1")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	tok := solve(t, a2.mux, decodeError(t, w).Captcha.ID)
	w = a2.login(t, "victim", "right", "RemoteAddr", "203.0.113.7:1", "X-Captcha-Token", tok)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, http.StatusPreconditionRequired, a2.login(t, "victim", "wrong", "RemoteAddr", "198.51.100.1:1").Code,
		"the owner's success hands the attacker no fresh guesses")
}

func TestExplicitOutcome(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	p := captchagate.Policy{Name: "x", MaxFailures: 2, Keys: []captchagate.Key{{Source: captchagate.Header("X-Device"), ResetOnSuccess: true}}}
	var outcome string
	h := g.Guard(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch outcome {
		case "fail":
			captchagate.Fail(r)
		case "succeed":
			captchagate.Succeed(r)
			w.WriteHeader(http.StatusUnauthorized) // Succeed wins over the status
		case "neutral":
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	req := func() int { return serve(h, "GET", "/", "", "X-Device", "dev-1").Code }
	outcome = "neutral"
	for i := 0; i < 5; i++ {
		require.Equal(t, 500, req(), "a 500 is neither failure nor success")
	}
	outcome = "fail"
	require.Equal(t, 200, req())
	outcome = "succeed"
	require.Equal(t, 401, req()) // resets
	outcome = "fail"
	require.Equal(t, 200, req())
	require.Equal(t, 200, req())
	require.Equal(t, http.StatusPreconditionRequired, req())

	// Fail and Succeed outside a guard are no-ops: an unguarded route that
	// calls them moves no counter of the guarded one.
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		captchagate.Fail(r)
		captchagate.Fail(r)
		captchagate.Succeed(r)
		captchagate.Fail(r)
	})
	outcome = "fail"
	require.Equal(t, http.StatusPreconditionRequired, req(), "dev-1 needs a captcha")
	for range 5 {
		w := serve(plain, "GET", "/", "", "X-Device", "dev-2")
		require.Equal(t, http.StatusOK, w.Code)
		serve(plain, "GET", "/", "", "X-Device", "dev-1")
	}
	assert.Equal(t, http.StatusPreconditionRequired, req(), "no Succeed outside the guard reset dev-1")
	assert.Equal(t, 200, serve(h, "GET", "/", "", "X-Device", "dev-2").Code, "no Fail outside the guard counted for dev-2")
	assert.Equal(t, 200, serve(h, "GET", "/", "", "X-Device", "dev-2").Code)
}

func TestConcurrentBadLoginsAreCountedAtomically(t *testing.T) {
	t.Parallel()
	for round := 0; round < 5; round++ {
		a := newLoginApp(t, nil)
		together(200, func() {
			a.login(t, "alice", "wrong")
		})
		assert.LessOrEqual(t, a.calls.Load(), int64(5), "round %d: at most 5 bad logins reach the handler", round)
		assert.GreaterOrEqual(t, a.calls.Load(), int64(1))
	}
}

func TestConcurrentTokenUse(t *testing.T) {
	t.Parallel()
	for round := 0; round < 5; round++ {
		a := newLoginApp(t, nil)
		c := a.trip(t, "alice")
		tok := solve(t, a.mux, c.ID)
		before := a.calls.Load()
		var ok atomic.Int64
		together(50, func() {
			if a.login(t, "alice", "wrong", "X-Captcha-Token", tok).Code == http.StatusUnauthorized {
				ok.Add(1)
			}
		})
		assert.Equal(t, int64(1), a.calls.Load()-before, "round %d: exactly one request passes", round)
		assert.Equal(t, int64(1), ok.Load())
	}
}

func TestConcurrentVerifyOfOneCaptcha(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	var wins atomic.Int64
	together(50, func() {
		if verify(a.mux, c.ID, answer).Code == http.StatusOK {
			wins.Add(1)
		}
	})
	assert.Equal(t, int64(1), wins.Load())
}

func TestSendRateAndCeiling(t *testing.T) {
	t.Parallel()
	g, clk := newGate(t, nil)
	var sent atomic.Int64
	sms := captchagate.Policy{Name: "sms", Keys: []captchagate.Key{
		{Source: captchagate.Phone(captchagate.JSONField("phone")).Source, Rate: rate.Every(time.Minute), Burst: 2,
			Ceiling: 4, CeilingWindow: time.Hour},
	}}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /sms", g.Guard(sms)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
	})))
	send := func(phone string, hdr ...string) *httptest.ResponseRecorder {
		return serve(mux, "POST", "/sms", `{"phone":"`+phone+`"}`, append([]string{"Content-Type", "application/json"}, hdr...)...)
	}
	require.Equal(t, 200, send("+1 555-0100").Code)
	require.Equal(t, 200, send("+15550100").Code, "normalised phone shares the bucket")
	w := send("+1 (555) 0100")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, "past the rate a captcha is needed, not a 429")
	assert.Equal(t, int64(2), sent.Load())

	// With a captcha the send goes through, up to the ceiling.
	for i := 0; i < 2; i++ {
		tok := solve(t, mux, decodeError(t, w).Captcha.ID)
		require.Equal(t, 200, send("+15550100", "X-Captcha-Token", tok).Code)
		w = send("+15550100")
	}
	assert.Equal(t, int64(4), sent.Load())
	require.Equal(t, http.StatusTooManyRequests, w.Code, "the ceiling is reached")
	w = serve(mux, "POST", "/captcha/new", `{"policy":"sms"}`, "Content-Type", "application/json")
	require.Equal(t, 200, w.Code, w.Body.String())
	var nb struct{ Captcha captchagate.Captcha }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &nb))
	tok := solve(t, mux, nb.Captcha.ID)
	w = send("+15550100", "X-Captcha-Token", tok)
	require.Equal(t, http.StatusTooManyRequests, w.Code, "the ceiling holds even with a captcha")
	e := decodeError(t, w)
	assert.Equal(t, "too_many_requests", e.Error)
	assert.Equal(t, 4029, e.ErrorCode)
	assert.Equal(t, "3600", w.Header().Get("Retry-After"))
	assert.Equal(t, int64(4), sent.Load())
	clk.Advance(time.Hour)
	assert.Equal(t, 200, send("+15550100").Code, "a new window")

	// Rate refills with time.
	clk.Advance(2 * time.Minute)
	assert.Equal(t, 200, send("+15550100").Code)
}

// A request refused by a ceiling takes no send-rate token.
func TestCeilingRefusalTakesNoRateToken(t *testing.T) {
	t.Parallel()
	g, clk := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{
		{Source: captchagate.JSONField("phone"), Rate: rate.Every(24 * time.Hour), Burst: 2, Ceiling: 1, CeilingWindow: time.Hour},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	send := func() int { return serve(h, "POST", "/sms", `{"phone":"+15550100"}`).Code }
	require.Equal(t, http.StatusOK, send())
	for range 3 {
		require.Equal(t, http.StatusTooManyRequests, send())
	}
	clk.Advance(time.Hour) // a new ceiling window; the rate has not refilled
	assert.Equal(t, http.StatusOK, send(), "the second token of the burst is still there")
}

func TestConcurrentSendsRespectRate(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	var sent atomic.Int64
	h := g.Guard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{
		{Source: captchagate.JSONField("phone"), Rate: rate.Every(time.Hour), Burst: 3},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.Add(1) }))
	together(100, func() {
		serve(h, "POST", "/sms", `{"phone":"+15550100"}`)
	})
	assert.Equal(t, int64(3), sent.Load())
}

func TestCheckDoesNotChangeState(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	gd, err := g.NewGuard(captchagate.Policy{Name: "c", MaxFailures: 2, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	require.NoError(t, err)
	h := gd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }))
	r := httptest.NewRequest("GET", "/", nil)
	for i := 0; i < 10; i++ {
		require.NoError(t, gd.Check(r))
	}
	serve(h, "GET", "/", "")
	require.NoError(t, gd.Check(r))
	serve(h, "GET", "/", "")
	err = gd.Check(r)
	assert.ErrorIs(t, err, captchagate.ErrCaptchaRequired)
	assert.Equal(t, http.StatusPreconditionRequired, serve(h, "GET", "/", "").Code)
}

func TestBodyHandling(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, func(c *captchagate.Config) { c.MaxBodyBytes = 1024 })
	var seen string
	h := g.Guard(loginPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = string(b)
	}))
	body := `{"username":"alice","password":"x"}`
	w := serve(h, "POST", "/login", body)
	require.Equal(t, 200, w.Code)
	assert.Equal(t, body, seen, "the wrapped handler gets the body the guard read")

	w = serve(h, "POST", "/login", `{"username":"`+strings.Repeat("a", 2000)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	assert.Equal(t, "request_too_large", decodeError(t, w).Error)

	// A body without Content-Length that never ends is cut at the limit.
	r := httptest.NewRequest("POST", "/login", io.LimitReader(zeros{}, 1<<30))
	r.ContentLength = -1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestRequiredKey(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "r", MaxFailures: 3, Keys: []captchagate.Key{
		{Source: captchagate.FormField("user"), Required: true},
		{Source: captchagate.Header("X-Device")},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	w := serve(h, "POST", "/", "pass=x", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusBadRequest, w.Code)
	e := decodeError(t, w)
	assert.Equal(t, "invalid_request", e.Error)
	assert.Equal(t, 4108, e.ErrorCode)
	assert.Equal(t, "form:user", e.Param)
	// An absent optional key is skipped; the others count.
	assert.Equal(t, 200, serve(h, "POST", "/", "user=a", "Content-Type", "application/x-www-form-urlencoded").Code)
}

// failingStore fails every operation.
type failingStore struct{}

var errDown = errors.New("dial tcp 10.0.0.1:6379: secret-host unreachable")

func (failingStore) Incr(context.Context, string, int64, time.Duration) (int64, time.Time, error) {
	return 0, time.Time{}, errDown
}
func (failingStore) Reset(context.Context, string) error { return errDown }
func (failingStore) Allow(context.Context, string, time.Duration, int, bool) (bool, time.Duration, error) {
	return false, 0, errDown
}
func (failingStore) Put(context.Context, string, []byte, time.Duration) error { return errDown }
func (failingStore) Get(context.Context, string) ([]byte, bool, error)        { return nil, false, errDown }
func (failingStore) Take(context.Context, string) ([]byte, bool, error)       { return nil, false, errDown }

func TestStoreFailure(t *testing.T) {
	t.Parallel()
	var events []captchagate.Event
	var mu sync.Mutex
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.Store = failingStore{}
		c.OnEvent = func(e captchagate.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	})
	w := a.login(t, "alice", "right")
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "fail closed: no captcha can be issued, so 503")
	e := decodeError(t, w)
	assert.Equal(t, "service_unavailable", e.Error)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.NotContains(t, w.Body.String(), "secret-host")
	assert.Equal(t, int64(0), a.calls.Load())

	w = verify(a.mux, "AAAAAAAAAAAAAAAAAAAAAA", answer)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "verification fails closed")
	assert.NotContains(t, w.Body.String(), "secret-host")
	w = a.login(t, "alice", "right", "X-Captcha-Token", strings.Repeat("A", 32))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "token consumption fails closed")

	mu.Lock()
	require.NotEmpty(t, events)
	assert.Equal(t, captchagate.EventStoreError, events[0].Kind)
	assert.ErrorIs(t, events[0].Err, errDown)
	mu.Unlock()

	// Fail open lets the counting step through.
	open := newLoginApp(t, func(c *captchagate.Config) { c.Store = failingStore{}; c.StoreFailure = captchagate.FailOpen })
	assert.Equal(t, http.StatusOK, open.login(t, "alice", "right").Code)
}

func TestCreationIsLimitedPerClient(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.CreateBurst = 3; c.CreateRate = rate.Every(time.Minute) })
	a.trip(t, "alice") // one creation
	for i := 0; i < 2; i++ {
		require.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "wrong").Code)
	}
	w := a.login(t, "alice", "wrong")
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.NotEmpty(t, w.Header().Get("Retry-After"))
	// Another client is not affected.
	for i := 0; i < 5; i++ {
		a.login(t, "bob", "wrong", "RemoteAddr", "198.51.100.9:1")
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "bob", "wrong", "RemoteAddr", "198.51.100.9:1").Code)
	a.clock.Advance(time.Minute)
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "wrong").Code)
}

func TestGuardWriterUnwraps(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "u", MaxFailures: 1, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			require.NoError(t, http.NewResponseController(w).Flush())
		}))
	w := serve(h, "GET", "/", "")
	assert.True(t, w.Flushed)
	assert.Equal(t, http.StatusPreconditionRequired, serve(h, "GET", "/", "").Code)
}

func TestInvalidPolicies(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	ip := captchagate.ClientIP()
	for name, p := range map[string]captchagate.Policy{
		"no name":       {Keys: []captchagate.Key{{Source: ip, MaxFailures: 1}}},
		"no keys":       {Name: "a"},
		"no source":     {Name: "a", Keys: []captchagate.Key{{MaxFailures: 1}}},
		"no limit":      {Name: "a", Keys: []captchagate.Key{{Source: ip}}},
		"twice":         {Name: "a", MaxFailures: 1, Keys: []captchagate.Key{{Source: ip}, {Source: ip}}},
		"bad status":    {Name: "a", MaxFailures: 1, Keys: []captchagate.Key{{Source: ip}}, FailureStatuses: []int{200}},
		"negative rate": {Name: "a", Keys: []captchagate.Key{{Source: ip, Rate: -1}}},
	} {
		_, err := g.NewGuard(p)
		assert.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), "captchagate: "), name)
	}
	assert.PanicsWithValue(t, "captchagate: policy needs a Name", func() { g.Guard(captchagate.Policy{}) })
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]captchagate.Config{
		"short secret":       {Secret: []byte("short")},
		"store needs secret": {Store: failingStore{}},
		"bad prefix":         {Prefix: "captcha"},
		"bad fail mode":      {StoreFailure: 7},
	} {
		_, err := captchagate.New(c)
		assert.Error(t, err, name)
	}
}

func TestEventsAndLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	var mu sync.Mutex
	var kinds []string
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.OnEvent = func(e captchagate.Event) {
			mu.Lock()
			kinds = append(kinds, e.Kind.String())
			mu.Unlock()
		}
	})
	c := a.trip(t, "alice.secret-user")
	verify(a.mux, c.ID, "000000")
	c2 := decodeError(t, verify(a.mux, c.ID, "000000")).Captcha // unknown now
	assert.Nil(t, c2)
	w := a.login(t, "alice.secret-user", "right")
	tok := solve(t, a.mux, decodeError(t, w).Captcha.ID)
	a.login(t, "alice.secret-user", "right", "X-Captcha-Token", tok)
	a.login(t, "alice.secret-user", "right", "X-Captcha-Token", tok)

	mu.Lock()
	assert.Equal(t, []string{"tripped", "captcha_issued", "captcha_rejected", "captcha_issued", "captcha_rejected",
		"captcha_issued", "captcha_verified", "token_accepted", "token_refused", "captcha_issued"}, kinds)
	mu.Unlock()
	out := logs.String()
	assert.Contains(t, out, "event=tripped")
	assert.Contains(t, out, "reason=\"wrong answer\"")
	for _, secret := range []string{"alice", "secret-user", answer, "000000", tok, c.ID, "192.0.2.1", string(testSecret)} {
		assert.NotContains(t, out, secret)
	}
}
