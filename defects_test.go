package captchagate_test

// Defects found by real clients and a review: each test failed before its fix.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/slider"
)

// A second policy of one name is refused at construction: it would
// otherwise replace the first behind the captcha endpoints.
func TestDuplicatePolicyNameRefused(t *testing.T) {
	t.Parallel()
	spy := &gatetest.SliderSpy{}
	g, _ := newGate(t, func(c *captchagate.Config) { c.Challenge = spy })
	p := captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}}
	_, err := g.NewGuard(p)
	require.NoError(t, err)
	q := p
	q.Keys = []captchagate.Key{captchagate.Phone(captchagate.JSONField("phone"))} // a Sender key
	_, err = g.NewGuard(q)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"login"`)
	assert.Panics(t, func() { g.Guard(q) })
	_, err = g.NewGuard(captchagate.Policy{Name: "other", MaxFailures: 3, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	require.NoError(t, err, "other names are still free")

	// Behind the endpoints the first policy still stands: it has no Sender
	// key, so Verify cannot bind a sender to its captcha.
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	c := newCaptcha(t, mux, "login")
	serve(mux, "GET", c.ImageURL, "")
	x, ok := spy.Gap(c.ID)
	require.True(t, ok)
	_, err = g.Verify(httptest.NewRequest("POST", "/captcha/verify", nil),
		captchagate.Solution{CaptchaID: c.ID, Answer: point(float64(x)), Sender: "15200000000"})
	var e *captchagate.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, captchagate.CodeMalformedSender, e.Code, "the refused duplicate's Sender key is not the policy's")
}

// A handler that writes nothing (the client went away, a bug) neither
// fails nor succeeds: its reservation is given back, nothing is reset.
func TestHandlerWritingNothingIsNeutral(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	mode := ""
	var calls int
	// A per-client key (username+address): one that a success resets.
	h := g.Guard(captchagate.Policy{Name: "login", MaxFailures: 5, Keys: []captchagate.Key{
		{Source: captchagate.Combine(captchagate.JSONField("username"), captchagate.ClientIP()), ResetOnSuccess: true},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch mode {
		case "wrong":
			w.WriteHeader(http.StatusUnauthorized)
		case "succeed":
			captchagate.Succeed(r) // explicit success, nothing written
		}
	}))
	login := func() int {
		return serve(h, "POST", "/", `{"username":"alice"}`, "Content-Type", "application/json").Code
	}
	// Four wrong passwords and one aborted request, repeated: the aborted
	// ones must not reset the account's counter.
	for range 4 {
		mode = "wrong"
		require.Equal(t, http.StatusUnauthorized, login())
	}
	mode = "silent"
	require.Equal(t, http.StatusOK, login(), "nothing written")
	mode = "wrong"
	require.Equal(t, http.StatusUnauthorized, login(), "the fifth failure")
	require.Equal(t, http.StatusPreconditionRequired, login(), "the sixth password check needs a captcha")
	assert.Equal(t, 6, calls, "five password checks and the aborted request")

	// An explicit Succeed without a write still resets.
	login = func() int {
		return serve(h, "POST", "/", `{"username":"bob"}`, "Content-Type", "application/json").Code
	}
	for range 4 {
		mode = "wrong"
		require.Equal(t, http.StatusUnauthorized, login())
	}
	mode = "succeed"
	require.Equal(t, http.StatusOK, login())
	mode = "wrong"
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, login(), "Succeed reset the account's counter")
	}
	require.Equal(t, http.StatusPreconditionRequired, login())
}

// The refresh limit belongs to the flow: a wrong answer's fresh captcha
// carries the flow's refresh count, on verify and inline.
func TestRefreshLimitIsPerFlow(t *testing.T) {
	t.Parallel()
	for _, inline := range []bool{false, true} {
		a := newLoginApp(t, func(c *captchagate.Config) { c.MaxRefreshes = 1 })
		c := a.trip(t, "alice")
		require.Equal(t, 1, c.RefreshesLeft)
		c = refresh(t, a.mux, c.ID)
		require.Equal(t, 0, c.RefreshesLeft)
		w := serve(a.mux, "POST", "/captcha/refresh", `{"captcha_id":"`+c.ID+`"}`, "Content-Type", "application/json")
		require.Equal(t, http.StatusTooManyRequests, w.Code)

		var e apiError
		if inline {
			body, _ := json.Marshal(map[string]string{"username": "alice", "password": "right", "captcha_id": c.ID, "captcha_answer": "000000"})
			w = serve(a.mux, "POST", "/login", string(body), "Content-Type", "application/json")
		} else {
			w = verify(a.mux, c.ID, "000000")
		}
		require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
		e = decodeError(t, w)
		require.NotNil(t, e.Captcha)
		assert.Equal(t, 0, e.Captcha.RefreshesLeft, "inline %v: the wrong answer's captcha keeps the flow's count", inline)
		w = serve(a.mux, "POST", "/captcha/refresh", `{"captcha_id":"`+e.Captcha.ID+`"}`, "Content-Type", "application/json")
		assert.Equal(t, http.StatusTooManyRequests, w.Code, "inline %v: no refresh past the flow's limit", inline)
		// The captcha itself still answers.
		assert.Equal(t, http.StatusOK, verify(a.mux, e.Captcha.ID, answer).Code)
	}
}

// Nothing a client can get wrong in the request's shape spends a captcha:
// every malformed request below is refused, then the captcha still solves.
func TestShapeErrorsSpendNothing(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.MaxBodyBytes = 1 << 10 })
	c := a.trip(t, "alice")
	id := c.ID
	for _, tc := range []struct {
		name, path, body, ctype string
		code                    int
	}{
		{"verify: text/plain", "/captcha/verify", `{"captcha_id":"` + id + `","captcha_answer":"123456"}`, "text/plain", 4110},
		{"verify: no answer", "/captcha/verify", `{"captcha_id":"` + id + `"}`, "application/json", 4103},
		{"verify: answer too long", "/captcha/verify", `{"captcha_id":"` + id + `","captcha_answer":"` + strings.Repeat("1", 100) + `"}`, "application/json", 4104},
		{"verify: answer not text", "/captcha/verify", `{"captcha_id":"` + id + `","captcha_answer":123456}`, "application/json", 4100},
		{"verify: broken JSON", "/captcha/verify", `{"captcha_id":"` + id + `","captcha_answer":"123456"`, "application/json", 4100},
		{"verify: oversized", "/captcha/verify", `{"captcha_id":"` + id + `","captcha_answer":"123456","x":"` + strings.Repeat("x", 10<<10) + `"}`, "application/json", 4013},
		{"guard: inline id malformed", "/login", `{"username":"alice","password":"right","captcha_id":"` + id[:20] + `","captcha_answer":"123456"}`, "application/json", 4102},
		{"guard: inline id without answer", "/login", `{"username":"alice","password":"right","captcha_id":"` + id + `"}`, "application/json", 4103},
		{"guard: inline answer too long", "/login", `{"username":"alice","password":"right","captcha_id":"` + id + `","captcha_answer":"` + strings.Repeat("1", 100) + `"}`, "application/json", 4104},
		{"guard: oversized", "/login", `{"username":"alice","password":"right","captcha_id":"` + id + `","captcha_answer":"123456","x":"` + strings.Repeat("x", 2<<10) + `"}`, "application/json", 4013},
		{"refresh: text/plain", "/captcha/refresh", `{"captcha_id":"` + id + `"}`, "text/plain", 4110},
	} {
		w := serve(a.mux, "POST", tc.path, tc.body, "Content-Type", tc.ctype)
		e := decodeError(t, w)
		assert.Equal(t, tc.code, e.ErrorCode, "%s: %s", tc.name, w.Body.String())
		assert.Nil(t, e.Captcha, tc.name)
	}
	w := verify(a.mux, id, answer)
	require.Equal(t, http.StatusOK, w.Code, "no shape error spent the captcha")

	// Nor a token: a guarded request refused for its shape leaves it unspent.
	var tb struct {
		Token string `json:"captcha_token"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &tb))
	w = serve(a.mux, "POST", "/login", `{"username":"alice","password":"right","x":"`+strings.Repeat("x", 2<<10)+`"}`,
		"Content-Type", "application/json", captchagate.TokenHeader, tb.Token)
	assert.Equal(t, 4013, decodeError(t, w).ErrorCode)
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", captchagate.TokenHeader, tb.Token).Code, "the token still opens the login")

	// A missing required key neither.
	g, _ := newGate(t, nil)
	dev := g.Guard(captchagate.Policy{Name: "device", MaxFailures: 1, Keys: []captchagate.Key{
		{Source: captchagate.ClientIP()},
		{Source: captchagate.Header("X-Device"), Required: true},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("/do", dev)
	serve(mux, "POST", "/do", "", "X-Device", "d1")
	w = serve(mux, "POST", "/do", "", "X-Device", "d1")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	tok := solve(t, mux, decodeError(t, w).Captcha.ID)
	w = serve(mux, "POST", "/do", "", captchagate.TokenHeader, tok)
	assert.Equal(t, 4108, decodeError(t, w).ErrorCode)
	assert.Equal(t, http.StatusUnauthorized, serve(mux, "POST", "/do", "", "X-Device", "d1", captchagate.TokenHeader, tok).Code,
		"the token still lets the request through")
}

// A slider answer that is not a point is a malformed parameter, on verify
// and inline: it does not spend the puzzle.
func TestMalformedSliderAnswerSpendsNothing(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{})
	c, x := a.puzzle(t, "15200000000")
	for _, bad := range []string{"left", `{"x":"1"}`, "[1,2]", "1e999"} {
		w := verify(a.mux, c.ID, bad)
		e := decodeError(t, w)
		assert.Equal(t, 4104, e.ErrorCode, "%q: %s", bad, w.Body.String())
		res := a.send("15200000000", "captcha_id", c.ID, "captcha_answer", bad)
		require.NoError(t, json.Unmarshal(res.body, &e))
		assert.Equal(t, 4104, e.ErrorCode, "inline %q: %s", bad, res.body)
	}
	assert.Equal(t, http.StatusOK, verify(a.mux, c.ID, point(float64(x))).Code)
}

// failingChallenge fails where it is told to.
type failingChallenge struct {
	gatetest.KnownDigits
	issue, render error
}

func (f failingChallenge) Issue(in captchagate.IssueInfo) ([]byte, error) {
	if f.issue != nil {
		return nil, f.issue
	}
	return f.KnownDigits.Issue(in)
}

func (f failingChallenge) Render(w io.Writer, id string, secret []byte, format, lang string) (string, error) {
	if f.render != nil {
		return "", f.render
	}
	return f.KnownDigits.Render(w, id, secret, format, lang)
}

// downVerifier is a checker whose remote service is down.
type downVerifier struct{ gatetest.KnownDigits }

func (downVerifier) Check(context.Context, captchagate.CheckInfo) (bool, error) {
	return false, errors.New("verifier: connection refused")
}

// Each class of internal failure has its own sentinel, event and wire
// code; none of them is reported as a store failure.
func TestFailureClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		challenge captchagate.Challenge
		sentinel  error
		event     captchagate.EventKind
		code      int
		status    int
	}{
		{"verifier down", downVerifier{}, captchagate.ErrVerifierUnavailable, captchagate.EventVerifierError, 5004, 503},
		{"render fails", failingChallenge{render: errors.New("render: broken")}, captchagate.ErrRenderUnavailable, captchagate.EventRenderError, 5005, 503},
		{"issue fails", failingChallenge{issue: errors.New("rand: no entropy")}, captchagate.ErrInternal, captchagate.EventInternalError, 5000, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []captchagate.EventKind
			var handled error
			a := newLoginApp(t, func(c *captchagate.Config) {
				c.Challenge = tc.challenge
				c.OnEvent = func(e captchagate.Event) {
					mu.Lock()
					events = append(events, e.Kind)
					mu.Unlock()
				}
				c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
					handled = err
					captchagate.WriteError(w, r, err)
				}
			})
			for range 5 {
				a.login(t, "alice", "wrong")
			}
			w := a.login(t, "alice", "wrong")
			if tc.event != captchagate.EventInternalError {
				require.Equal(t, http.StatusPreconditionRequired, w.Code)
				id := decodeError(t, w).Captcha.ID
				if tc.event == captchagate.EventRenderError {
					w = serve(a.mux, "GET", "/captcha/"+id+".png", "")
				} else {
					w = verify(a.mux, id, answer)
				}
			}
			require.Equal(t, tc.status, w.Code, w.Body.String())
			e := decodeError(t, w)
			assert.Equal(t, tc.code, e.ErrorCode)
			assert.NotContains(t, w.Body.String(), "broken")
			assert.NotContains(t, w.Body.String(), "refused")
			assert.NotContains(t, w.Body.String(), "entropy")
			assert.ErrorIs(t, handled, tc.sentinel)
			assert.NotErrorIs(t, handled, captchagate.ErrStoreUnavailable)
			mu.Lock()
			defer mu.Unlock()
			assert.Contains(t, events, tc.event)
			assert.NotContains(t, events, captchagate.EventStoreError)
		})
	}
}

// A hook's Event.Request carries no proof: no token header and no body.
func TestEventRequestCarriesNoProof(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []*http.Request
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.OnEvent = func(e captchagate.Event) {
			if e.Request != nil {
				mu.Lock()
				seen = append(seen, e.Request)
				mu.Unlock()
			}
		}
	})
	c := a.trip(t, "alice")
	tok := solve(t, a.mux, c.ID)
	require.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong", captchagate.TokenHeader, tok).Code)
	require.Equal(t, http.StatusForbidden, a.login(t, "alice", "wrong", captchagate.TokenHeader, tok).Code)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, seen)
	for _, r := range seen {
		assert.Empty(t, r.Header.Get(captchagate.TokenHeader))
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			assert.Empty(t, b, "no body: it may hold an answer or a token")
		}
		assert.Equal(t, "/", r.URL.Path[:1])
	}
}
