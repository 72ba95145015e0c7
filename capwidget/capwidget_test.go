package capwidget_test

import (
	"context"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/capwidget"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/memstore"
)

// clock is an injected time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// app is a gate of kind cap with its Dialect, guarding a login that takes
// the password "right", one wrong password per username before a captcha.
type app struct {
	mux      *http.ServeMux
	gate     *captchagate.Gate
	clock    *clock
	verified atomic.Int32
	rejected atomic.Int32
}

func newApp(t *testing.T, pow capwidget.ProofOfWork, d capwidget.Dialect, withStore bool) *app {
	t.Helper()
	a := &app{mux: http.NewServeMux(), clock: &clock{t: time.Unix(1_800_000_000, 0)}}
	store := memstore.New(memstore.Options{Now: a.clock.Now, CleanupInterval: -1})
	t.Cleanup(func() { store.Close() })
	if withStore {
		d.Store = store
	}
	g, err := captchagate.New(captchagate.Config{
		Secret: gatetest.Secret, Store: store, Prefix: "/captcha/", Now: a.clock.Now,
		Challenge: pow, Dialects: []captchagate.Dialect{d},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e captchagate.Event) {
			switch e.Kind {
			case captchagate.EventCaptchaVerified:
				a.verified.Add(1)
			case captchagate.EventCaptchaRejected:
				a.rejected.Add(1)
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	a.gate = g
	a.mux.Handle("/captcha/", g.Handler())
	a.mux.Handle("POST /login", g.Guard(captchagate.Policy{
		Name: "login", MaxFailures: 1,
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			captchagate.Fail(r)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})))
	return a
}

func (a *app) do(method, path, ctype, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	r.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	a.mux.ServeHTTP(w, r)
	return w
}

func (a *app) login(user, password, extra string) *httptest.ResponseRecorder {
	return a.do("POST", "/login", "application/json", `{"username":"`+user+`","password":"`+password+`"`+extra+`}`)
}

type errBody struct {
	Error     string               `json:"error"`
	ErrorCode int                  `json:"error_code"`
	Captcha   *captchagate.Captcha `json:"captcha"`
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

// trip fails user's password and returns the captcha the guard then asks
// for.
func (a *app) trip(t *testing.T, user string) *captchagate.Captcha {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, a.login(user, "wrong", "").Code)
	w := a.login(user, "wrong", "")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, w.Body.String())
	c := decode[errBody](t, w).Captcha
	require.NotNil(t, c)
	require.Equal(t, "cap", c.Kind)
	return c
}

// challenge is what the widget does first: POST {api}challenge, no body.
func (a *app) challenge(t *testing.T, c *captchagate.Captcha) capwidget.Challenge {
	t.Helper()
	w := a.do("POST", capwidget.APIEndpoint(c)+"challenge", "", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	return decode[capwidget.Challenge](t, w)
}

// redeem posts the widget's redeem to c's endpoint.
func (a *app) redeem(c *captchagate.Captcha, token string, sol []uint64) *httptest.ResponseRecorder {
	b, _ := json.Marshal(map[string]any{"token": token, "solutions": sol})
	return a.do("POST", capwidget.APIEndpoint(c)+"redeem", "application/json", string(b))
}

type redeemed struct {
	Success bool   `json:"success"`
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

// wrongFor returns solutions of pairs that do not solve them: sol with its
// last number raised (more than once if the next number solves a short
// target too).
func wrongFor(pairs [][2]string, sol []uint64) []uint64 {
	w := append([]uint64(nil), sol...)
	w[len(w)-1]++
	for capwidget.Solves(pairs, w) {
		w[len(w)-1]++
	}
	return w
}

var small = capwidget.ProofOfWork{Count: 4, TargetLen: 2, RaiseEvery: 1, CountLimit: 16}

func TestWidgetFlow(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	assert.Equal(t, "/captcha/"+c.ID+"/", capwidget.APIEndpoint(c))
	ch := a.challenge(t, c)
	assert.Equal(t, c.ID, ch.Token)
	assert.Equal(t, a.clock.Now().Add(5*time.Minute).UnixMilli(), ch.Expires)
	require.Len(t, ch.Challenge, 4)
	for _, p := range ch.Challenge {
		assert.Len(t, p[0], 32)
		assert.Len(t, p[1], 2)
	}
	// GET {id}.json serves the same challenge.
	w := a.do("GET", "/captcha/"+c.ID+".json", "", "")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, ch, decode[capwidget.Challenge](t, w))

	sol := capwidget.Solve(ch.Challenge)
	w = a.redeem(c, c.ID, sol)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	r := decode[redeemed](t, w)
	require.True(t, r.Success)
	assert.InDelta(t, time.Now().Add(2*time.Minute).UnixMilli(), r.Expires, 5000, "expires is the browser's clock plus the token's life")

	// The widget's token, in its hidden input's name, passes the guard once.
	tokMember := `,"cap-token":"` + r.Token + `"`
	assert.Equal(t, http.StatusOK, a.login("alice", "right", tokMember).Code)
	assert.Equal(t, http.StatusForbidden, a.login("alice", "right", tokMember).Code, "a token passes once")

	assert.EqualValues(t, 1, a.verified.Load())
}

func TestTokenBoundToItsFlow(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	a.trip(t, "bob")
	r := decode[redeemed](t, a.redeem(c, c.ID, capwidget.Solve(a.challenge(t, c).Challenge)))
	require.True(t, r.Success)
	assert.Equal(t, http.StatusForbidden, a.login("bob", "right", `,"cap-token":"`+r.Token+`"`).Code, "alice's token does not open bob's account")
	assert.Equal(t, http.StatusOK, a.login("alice", "right", `,"cap-token":"`+r.Token+`"`).Code)
}

func TestRedeemedOnce(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	sol := capwidget.Solve(a.challenge(t, c).Challenge)
	require.Equal(t, http.StatusOK, a.redeem(c, c.ID, sol).Code)
	w := a.redeem(c, c.ID, sol)
	assert.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
	assert.Equal(t, "not_found", decode[errBody](t, w).Error, "the widget shows the error member")
	assert.Equal(t, http.StatusNotFound, a.do("POST", capwidget.APIEndpoint(c)+"challenge", "", "").Code, "a spent challenge is not served")

	// Concurrent redeems of one solved challenge: one token.
	c = a.trip(t, "bob")
	sol = capwidget.Solve(a.challenge(t, c).Challenge)
	var ok atomic.Int32
	gatetest.Together(8, func() {
		if a.redeem(c, c.ID, sol).Code == http.StatusOK {
			ok.Add(1)
		}
	})
	assert.EqualValues(t, 1, ok.Load())
}

func TestWrongProofSpendsNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{MaxWrong: 3}, true)
	c := a.trip(t, "alice")
	ch := a.challenge(t, c)
	sol := capwidget.Solve(ch.Challenge)
	bad := wrongFor(ch.Challenge, sol)
	for range 2 {
		w := a.redeem(c, c.ID, bad)
		require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
		e := decode[errBody](t, w)
		assert.Equal(t, "captcha_invalid", e.Error)
		assert.Nil(t, e.Captcha, "no fresh captcha: this one is unspent")
	}
	assert.EqualValues(t, 0, a.rejected.Load(), "the gate spent nothing")
	w := a.redeem(c, c.ID, sol)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func TestWrongProofsBounded(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{MaxWrong: 3}, true)
	c := a.trip(t, "alice")
	ch := a.challenge(t, c)
	sol := capwidget.Solve(ch.Challenge)
	bad := wrongFor(ch.Challenge, sol)
	for range 2 {
		require.Equal(t, http.StatusForbidden, a.redeem(c, c.ID, bad).Code)
	}
	// The third wrong proof spends the challenge, as the gate spends a
	// wrong answer, with a fresh captcha for the flow.
	w := a.redeem(c, c.ID, bad)
	require.Equal(t, http.StatusForbidden, w.Code)
	e := decode[errBody](t, w)
	require.NotNil(t, e.Captcha)
	assert.NotEqual(t, c.ID, e.Captcha.ID)
	assert.EqualValues(t, 1, a.rejected.Load())
	assert.Equal(t, http.StatusNotFound, a.redeem(c, c.ID, sol).Code, "the right proof comes too late")
	// The fresh one works.
	f := e.Captcha
	require.Equal(t, http.StatusOK, a.redeem(f, f.ID, capwidget.Solve(a.challenge(t, f).Challenge)).Code)
}

func TestWithoutStoreWrongProofSpends(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, false)
	c := a.trip(t, "alice")
	ch := a.challenge(t, c)
	sol := capwidget.Solve(ch.Challenge)
	w := a.redeem(c, c.ID, wrongFor(ch.Challenge, sol))
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.NotNil(t, decode[errBody](t, w).Captcha)
	w = a.redeem(c, c.ID, sol)
	assert.Equal(t, http.StatusForbidden, w.Code, "spent: the gate's verify refuses it")
	assert.Nil(t, decode[errBody](t, w).Captcha)
}

func TestMalformedRedeemSpendsNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	other := a.trip(t, "bob")
	sol := capwidget.Solve(a.challenge(t, c).Challenge)
	api := capwidget.APIEndpoint(c)
	for _, tc := range []struct {
		name, ctype, body string
		status, code      int
	}{
		{"not json", "application/json", `{"token":`, 400, 4130},
		{"form", "application/x-www-form-urlencoded", "token=" + c.ID, 400, 4110},
		{"no token", "application/json", `{"solutions":[1,2,3,4]}`, 400, 4130},
		{"token of another captcha", "application/json", `{"token":"` + other.ID + `","solutions":[1,2,3,4]}`, 400, 4131},
		{"strings", "application/json", `{"token":"` + c.ID + `","solutions":["1","2","3","4"]}`, 400, 4130},
		{"negative", "application/json", `{"token":"` + c.ID + `","solutions":[-1,2,3,4]}`, 400, 4130},
		{"fraction", "application/json", `{"token":"` + c.ID + `","solutions":[1.5,2,3,4]}`, 400, 4130},
		{"exponent", "application/json", `{"token":"` + c.ID + `","solutions":[1e3,2,3,4]}`, 400, 4130},
		{"past 2^53", "application/json", `{"token":"` + c.ID + `","solutions":[9007199254740992,2,3,4]}`, 400, 4130},
		{"empty", "application/json", `{"token":"` + c.ID + `","solutions":[]}`, 400, 4130},
		{"format 2 shape", "application/json", `{"token":"` + c.ID + `","solutions":[{"nonce":1}]}`, 400, 4130},
	} {
		w := a.do("POST", api+"redeem", tc.ctype, tc.body)
		assert.Equal(t, tc.status, w.Code, tc.name+": "+w.Body.String())
		assert.Equal(t, tc.code, decode[errBody](t, w).ErrorCode, tc.name)
	}
	// Too many or too few solutions is a wrong proof (counted, unspent).
	w := a.redeem(c, c.ID, append(sol, 1))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Nil(t, decode[errBody](t, w).Captcha)
	// Unknown endpoints under the id are the gate's.
	assert.Equal(t, http.StatusNotFound, a.do("POST", api+"other", "application/json", "{}").Code)
	// A malformed id.
	assert.Equal(t, http.StatusBadRequest, a.do("POST", "/captcha/x/challenge", "", "").Code)
	assert.EqualValues(t, 0, a.rejected.Load())
	require.Equal(t, http.StatusOK, a.redeem(c, c.ID, sol).Code, "nothing above spent the challenge")
}

func TestSplicedProofRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{MaxWrong: 1}, true)
	c := a.trip(t, "alice")
	other := a.trip(t, "bob")
	solOther := capwidget.Solve(a.challenge(t, other).Challenge)
	// bob's solutions posted as alice's: they solve another challenge.
	w := a.redeem(c, c.ID, solOther)
	assert.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
	// bob's redeem to alice's endpoint.
	w = a.redeem(c, other.ID, solOther)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Equal(t, 4131, decode[errBody](t, w).ErrorCode)
	require.Equal(t, http.StatusOK, a.redeem(other, other.ID, solOther).Code, "bob's challenge is unspent")
}

func TestExpiredChallenge(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	sol := capwidget.Solve(a.challenge(t, c).Challenge)
	a.clock.Add(5*time.Minute + time.Second)
	w := a.redeem(c, c.ID, sol)
	assert.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
	assert.EqualValues(t, 0, a.verified.Load())
}

func TestInlineAnswer(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	sol := capwidget.Solve(a.challenge(t, c).Challenge)
	w := a.login("alice", "right", `,"captcha_id":"`+c.ID+`","captcha_answer":"`+capwidget.FormatSolutions(sol)+`"`)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func TestDifficultyScales(t *testing.T) {
	t.Parallel()
	p := capwidget.ProofOfWork{Count: 10, RaiseEvery: 2, CountLimit: 50}
	want := []int{10, 10, 20, 20, 40, 40, 50, 50, 50}
	last := int64(0)
	for level, n := range want {
		sec, err := p.Issue(captchagate.IssueInfo{Now: time.Unix(0, 0), Expires: time.Unix(300, 0), Level: level})
		require.NoError(t, err)
		var sb strings.Builder
		_, err = p.Render(&sb, "id", sec, "json", "")
		require.NoError(t, err)
		var ch capwidget.Challenge
		require.NoError(t, json.Unmarshal([]byte(sb.String()), &ch))
		assert.Len(t, ch.Challenge, n, "level %d", level)
		d := p.Difficulty(level)
		assert.Equal(t, int64(n)<<16, d, "level %d", level)
		assert.GreaterOrEqual(t, d, last)
		last = d
	}
	// Defaults: Cap's 50 pairs of 32 and 4 characters, at most 512 pairs.
	assert.Equal(t, int64(50)<<16, capwidget.ProofOfWork{}.Difficulty(0))
	assert.Equal(t, int64(400)<<16, capwidget.ProofOfWork{}.Difficulty(1000))
	assert.Equal(t, int64(capwidget.MaxCount)<<16, capwidget.ProofOfWork{Count: 5000}.Difficulty(0))
	assert.Equal(t, int64(10)<<16, capwidget.ProofOfWork{Count: 10, RaiseEvery: -1}.Difficulty(100))
}

func TestRaisedLevelThroughTheGuard(t *testing.T) {
	t.Parallel()
	a := newApp(t, small, capwidget.Dialect{}, true)
	c := a.trip(t, "alice")
	require.Len(t, a.challenge(t, c).Challenge, 4)
	// Another wrong password with a valid token raises alice's level: the
	// next challenge has twice the pairs.
	r := decode[redeemed](t, a.redeem(c, c.ID, capwidget.Solve(a.challenge(t, c).Challenge)))
	require.Equal(t, http.StatusUnauthorized, a.login("alice", "wrong", `,"cap-token":"`+r.Token+`"`).Code)
	w := a.login("alice", "wrong", "")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	c2 := decode[errBody](t, w).Captcha
	assert.Len(t, a.challenge(t, c2).Challenge, 8)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	p := small
	sec, err := p.Issue(captchagate.IssueInfo{Expires: time.Unix(300, 0)})
	require.NoError(t, err)
	var sb strings.Builder
	_, err = p.Render(&sb, "id", sec, "json", "")
	require.NoError(t, err)
	var ch capwidget.Challenge
	require.NoError(t, json.Unmarshal([]byte(sb.String()), &ch))
	sol := capwidget.Solve(ch.Challenge)
	check := func(answer string) bool {
		ok, err := p.Check(context.Background(), captchagate.CheckInfo{Secret: sec, Answer: answer})
		require.NoError(t, err)
		return ok
	}
	assert.True(t, check(capwidget.FormatSolutions(sol)))
	assert.True(t, check(" [ "+strings.ReplaceAll(capwidget.FormatSolutions(sol)[1:], ",", " , ")))
	assert.False(t, check(capwidget.FormatSolutions(wrongFor(ch.Challenge, sol))))
	assert.False(t, check(capwidget.FormatSolutions(sol[:3])))
	assert.False(t, check(""))
	assert.False(t, check("[]"))
	ok, _ := p.Check(context.Background(), captchagate.CheckInfo{Secret: sec[:10], Answer: capwidget.FormatSolutions(sol)})
	assert.False(t, ok, "a malformed secret solves nothing")

	// Two issues draw different pairs.
	sec2, _ := p.Issue(captchagate.IssueInfo{Expires: time.Unix(300, 0)})
	ok, _ = p.Check(context.Background(), captchagate.CheckInfo{Secret: sec2, Answer: capwidget.FormatSolutions(sol)})
	assert.False(t, ok)
}

func TestParseSolutions(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"[0]", "[1,2,3]", " [ 9007199254740991 ] "} {
		_, ok := capwidget.ParseSolutions(s)
		assert.True(t, ok, s)
	}
	many := "[" + strings.Repeat("1,", capwidget.MaxCount) + "1]"
	for _, s := range []string{"", "[]", "{}", "1", `["1"]`, "[-1]", "[1.0]", "[1e2]", "[01]", "[9007199254740992]", "[1] x", "[1]]", "[null]", many} {
		_, ok := capwidget.ParseSolutions(s)
		assert.False(t, ok, s)
		assert.False(t, capwidget.ProofOfWork{}.ValidAnswer(s), s)
	}
}

func TestReadProof(t *testing.T) {
	t.Parallel()
	read := func(ctype, body string) (captchagate.Proof, bool) {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Content-Type", ctype)
		return capwidget.Dialect{}.ReadProof(r, []byte(body))
	}
	p, ok := read("application/x-www-form-urlencoded", "user=a&cap-token=T1")
	assert.True(t, ok)
	assert.Equal(t, "T1", p.Token)
	p, ok = read("application/json; charset=utf-8", `{"user":"a","cap-token":"T2"}`)
	assert.True(t, ok)
	assert.Equal(t, "T2", p.Token)
	for _, tc := range [][2]string{
		{"application/json", `{"cap-token":7}`},
		{"application/json", `{"cap-token":""}`},
		{"application/json", `{"other":"x"}`},
		{"application/json", `[`},
		{"text/plain", `cap-token=T`},
		{"application/x-www-form-urlencoded", "cap-token=%zz"},
	} {
		_, ok := read(tc[0], tc[1])
		assert.False(t, ok, tc)
	}
}
