package redisstore_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// ownerGate is one instance of an app whose login counts the account
// (a failure ceiling of 10), a site-wide key (20 failures) and device
// cookies, on a Redis shared with the other instances.
func ownerGate(t *testing.T, addr string, clk *storetest.Clock) http.Handler {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	st, err := redisstore.New(c, redisstore.Options{Prefix: "owner:", Now: clk.Now})
	require.NoError(t, err)
	g, err := captchagate.New(captchagate.Config{Secret: secret, Store: st, Challenge: gatetest.KnownDigits{}, Now: clk.Now,
		CreateBurst: 1000, StoreTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close(); st.Close(); c.Close() })
	user := captchagate.Username(captchagate.JSONField("username"))
	user.FailureCeiling = 10
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(captchagate.Policy{Name: "login", MaxFailures: 3, Window: 15 * time.Minute,
		Keys: []captchagate.Key{user, {Source: captchagate.Everyone(), MaxFailures: 20}}, Devices: &captchagate.Devices{},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		captchagate.Succeed(r)
	})))
	return mux
}

func ownerLogin(h http.Handler, user, pass string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/login", strings.NewReader(login(user, pass)))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// solveOn answers the captcha of w's body on h and returns the token.
func solveOn(t *testing.T, h http.Handler, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct{ Captcha struct{ ID string } }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), w.Body.String())
	r := httptest.NewRequest("POST", "/captcha/verify", strings.NewReader(`{"captcha_id":"`+e.Captcha.ID+`","captcha_answer":"`+answer+`"}`))
	r.Header.Set("Content-Type", "application/json")
	v := httptest.NewRecorder()
	h.ServeHTTP(v, r)
	require.Equal(t, http.StatusOK, v.Code, v.Body.String())
	var tok struct {
		Token string `json:"captcha_token"`
	}
	require.NoError(t, json.Unmarshal(v.Body.Bytes(), &tok))
	return tok.Token
}

// Issue 17's defences behave alike on Redis across instances: a device
// cookie from one instance is honoured by another; the account's failure
// ceiling, its canonical forms and the site-wide key count across
// instances; a token minted on one is refused unspent on another for another
// account and accepted there for its own.
func TestOwnerBudgetsAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a, b := ownerGate(t, srv.Addr, clk), ownerGate(t, srv.Addr, clk)

	w := ownerLogin(a, "alice", "right")
	require.Equal(t, http.StatusOK, w.Code)
	var dev string
	for _, c := range w.Result().Cookies() {
		dev = c.Name + "=" + c.Value
	}
	require.NotEmpty(t, dev)

	// The attacker trips alice over both instances, in her name's forms.
	for i, u := range []string{"alice", "ALICE", " Alice "} {
		require.Equal(t, http.StatusUnauthorized, ownerLogin([]http.Handler{a, b}[i%2], u, "wrong").Code)
	}
	w = ownerLogin(b, "alice", "right")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	assert.Equal(t, http.StatusOK, ownerLogin(b, "alice", "right", "Cookie", dev).Code, "A's device cookie on B")

	// A token from A for alice: refused on B for bob (tripped too), unspent.
	tok := solveOn(t, a, w)
	for range 4 {
		ownerLogin(a, "bob", "wrong")
	}
	assert.Equal(t, http.StatusForbidden, ownerLogin(b, "bob", "right", "X-Captcha-Token", tok).Code)
	assert.Equal(t, http.StatusOK, ownerLogin(b, "alice", "right", "X-Captcha-Token", tok).Code)

	// The failure ceiling (10) across instances, with a perfect solver.
	guesses := 3 // alice's three failures above
	for i := 0; i < 20; i++ {
		h := []http.Handler{a, b}[i%2]
		w := ownerLogin(h, "alice", "wrong")
		if w.Code == http.StatusPreconditionRequired {
			w = ownerLogin(h, "alice", "wrong", "X-Captcha-Token", solveOn(t, h, w))
		}
		if w.Code == http.StatusTooManyRequests {
			break
		}
		require.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
		guesses++
	}
	assert.Equal(t, 10, guesses, "guesses at alice before the ceiling, over two instances")
	assert.Equal(t, http.StatusOK, ownerLogin(a, "alice", "right", "Cookie", dev).Code, "the known device is past the ceiling")

	// The site-wide key (20 failures), reached over both instances.
	for i := range 20 {
		ownerLogin([]http.Handler{a, b}[i%2], fmt.Sprint("sprayed", i), "wrong")
	}
	assert.Equal(t, http.StatusPreconditionRequired, ownerLogin(a, "newcomer", "right").Code, "the site is under attack")
}
