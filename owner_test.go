package captchagate_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

// ownerApp is a login guarded with device cookies: 5 failures per account
// (and per known device) in 15 minutes, the default failure ceiling of 100
// a day, 1000 per address a day (so the ceiling, not the address, is what
// an attacker with one address meets). The handler calls Succeed on the
// right password.
type ownerApp struct {
	*loginApp
}

func newOwnerApp(t *testing.T, p func(*captchagate.Policy)) *ownerApp {
	t.Helper()
	policy := captchagate.Policy{Name: "login", MaxFailures: 5, Window: 15 * time.Minute,
		Keys: []captchagate.Key{
			captchagate.Username(captchagate.JSONField("username")),
			{Source: captchagate.ClientIP(), MaxFailures: 1000, Window: 24 * time.Hour},
		},
		Devices: &captchagate.Devices{},
	}
	if p != nil {
		p(&policy)
	}
	return &ownerApp{newLoginAppWith(t, policy, func(c *captchagate.Config) { c.CreateBurst = 100_000 })}
}

// deviceCookie returns the device cookie w set, or "".
func deviceCookie(w *httptest.ResponseRecorder) string {
	for _, c := range w.Result().Cookies() {
		if c.Name == "captchagate_device" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// guess is the attacker's attempt with a perfect solver: without proof
// first; with a token from the captcha it is asked for, if any. It
// returns the final status and whether the handler saw the guess.
func (a *ownerApp) guess(t *testing.T, user string, hdr ...string) (int, bool) {
	t.Helper()
	calls := a.calls.Load()
	w := a.login(t, user, "wrong", hdr...)
	if w.Code == http.StatusPreconditionRequired || w.Code == http.StatusForbidden {
		e := decodeError(t, w)
		require.NotNil(t, e.Captcha, w.Body.String())
		tok := solve(t, a.mux, e.Captcha.ID)
		w = a.login(t, user, "wrong", append(hdr, "X-Captcha-Token", tok)...)
	}
	return w.Code, a.calls.Load() > calls
}

// The owner's success resets nothing the attacker counts on: the answers
// an attacker gets for an account are the same whether or not its owner
// signs in between its guesses (free guesses regained per owner login: 0).
// Fails if the account-wide key resets on success again.
func TestOwnerLoginsGiveTheAttackerNothing(t *testing.T) {
	t.Parallel()
	run := func(owner bool) []int {
		a := newOwnerApp(t, nil)
		var seen []int
		for i := range 12 {
			if owner && i%3 == 0 {
				// The owner, from an address and browser of its own.
				require.Equal(t, http.StatusOK, a.ownerLogin(t, "alice", "RemoteAddr", "203.0.113.9:1"))
			}
			seen = append(seen, a.login(t, "alice", "wrong").Code)
		}
		return seen
	}
	without, with := run(false), run(true)
	assert.Equal(t, without, with, "the owner's logins changed what the attacker sees")
	assert.Equal(t, http.StatusPreconditionRequired, without[5], "the sixth guess needs a captcha")
}

// ownerLogin signs the owner in, solving a captcha if asked, and returns
// the final status.
func (a *ownerApp) ownerLogin(t *testing.T, user string, hdr ...string) int {
	t.Helper()
	w := a.login(t, user, "right", hdr...)
	if w.Code == http.StatusPreconditionRequired {
		tok := solve(t, a.mux, decodeError(t, w).Captcha.ID)
		w = a.login(t, user, "right", append(hdr, "X-Captcha-Token", tok)...)
	}
	return w.Code
}

// An attacker with a perfect captcha solver gets at most the failure
// ceiling (100 a day) of guesses at an account, then 429 even with a
// solved captcha; the owner's known device still gets through without a
// captcha, and a new device of the owner's meets the ceiling like the
// attacker. Fails without the failure ceiling (the attacker guesses on),
// or if a known device counts on the account-wide budget.
func TestFailureCeilingStopsASolverNotTheOwner(t *testing.T) {
	t.Parallel()
	a := newOwnerApp(t, nil)
	// The owner signs in once from its own device: a device cookie.
	w := a.login(t, "alice", "right", "RemoteAddr", "203.0.113.9:1")
	require.Equal(t, http.StatusOK, w.Code)
	dev := deviceCookie(w)
	require.NotEmpty(t, dev, "Succeed sets a device cookie")

	guesses := 0
	for range 150 {
		code, reached := a.guess(t, "alice")
		if reached {
			guesses++
		}
		if code == http.StatusTooManyRequests {
			break
		}
	}
	assert.Equal(t, 100, guesses, "guesses with a perfect solver before the ceiling")
	w = a.login(t, "alice", "wrong")
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "86400", w.Header().Get("Retry-After"), "the rest of the ceiling's day")

	// The owner's known device: no captcha, no 429.
	w = a.login(t, "alice", "right", "RemoteAddr", "203.0.113.9:1", "Cookie", dev)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	// A new device of the owner's shares the untrusted budget.
	assert.Equal(t, http.StatusTooManyRequests, a.login(t, "alice", "right", "RemoteAddr", "203.0.113.10:1").Code)
	// The next day the ceiling is over.
	a.clock.Advance(24 * time.Hour)
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong").Code)
}

// A known device has a budget of its own: its failures trip its own
// captcha (not the account's), its success resets it; its cookie is
// worthless for another account, altered, or expired; a status alone (200
// without Succeed) sets no cookie.
func TestDeviceCookies(t *testing.T) {
	t.Parallel()
	a := newOwnerApp(t, nil)
	w := a.login(t, "alice", "right")
	dev := deviceCookie(w)
	require.NotEmpty(t, dev)
	ck := w.Result().Cookies()[0]
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.Equal(t, 30*24*3600, ck.MaxAge)

	// The attacker trips the account.
	for range 6 {
		a.login(t, "alice", "wrong", "RemoteAddr", "198.51.100.1:1")
	}
	require.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "right", "RemoteAddr", "198.51.100.2:1").Code)
	// The known device is not asked.
	require.Equal(t, http.StatusOK, a.login(t, "alice", "right", "Cookie", dev).Code)
	// Its own failures: five, then its own captcha.
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong", "Cookie", dev).Code)
	}
	require.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "right", "Cookie", dev).Code)
	require.Equal(t, http.StatusOK, a.ownerLogin(t, "alice", "Cookie", dev))
	// The success reset the device's counter.
	assert.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong", "Cookie", dev).Code)

	// Bob's account, tripped, with alice's cookie: untrusted.
	for range 6 {
		a.login(t, "bob", "wrong", "RemoteAddr", "198.51.100.3:1")
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "bob", "right", "Cookie", dev).Code, "alice's cookie for bob")
	// Altered: untrusted.
	b := []byte(dev)
	b[len(b)-3] ^= 'A' ^ 'B'
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "right", "Cookie", string(b)).Code, "an altered cookie")
	// Expired: untrusted.
	a.clock.Advance(31 * 24 * time.Hour)
	for range 6 {
		a.login(t, "alice", "wrong", "RemoteAddr", "198.51.100.1:1")
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "right", "Cookie", dev).Code, "an expired cookie")

	// A 200 without Succeed sets no cookie.
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "p", MaxFailures: 5, Devices: &captchagate.Devices{},
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	w = serve(h, "POST", "/", `{"username":"carol"}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, deviceCookie(w))
}

// Configuration errors of the owner's budgets are refused at NewGuard.
func TestOwnerBudgetsConfig(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	user := captchagate.Username(captchagate.JSONField("username"))
	reset := user
	reset.ResetOnSuccess = true
	_, err := g.NewGuard(captchagate.Policy{Name: "a", MaxFailures: 5, Keys: []captchagate.Key{reset}})
	assert.ErrorContains(t, err, "account-wide key")
	_, err = g.NewGuard(captchagate.Policy{Name: "b", MaxFailures: 5, Devices: &captchagate.Devices{},
		Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	assert.ErrorContains(t, err, "no account key")
	_, err = g.NewGuard(captchagate.Policy{Name: "c", MaxFailures: 5, Devices: &captchagate.Devices{}, Keys: []captchagate.Key{user}})
	require.NoError(t, err)
	_, err = g.NewGuard(captchagate.Policy{Name: "d", MaxFailures: 5, Devices: &captchagate.Devices{}, Keys: []captchagate.Key{user}})
	assert.ErrorContains(t, err, "device cookie")
	_, err = g.NewGuard(captchagate.Policy{Name: "e", MaxFailures: 5, Devices: &captchagate.Devices{Cookie: http.Cookie{Name: "bad name"}}, Keys: []captchagate.Key{user}})
	assert.Error(t, err)
}

// Account keys are required by default: a request whose account value the
// guard cannot read is refused, never passed uncounted; Optional opts out.
func TestAccountKeysRequired(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	var calls int
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++; w.WriteHeader(http.StatusUnauthorized) })
	strict := g.Guard(captchagate.Policy{Name: "strict", MaxFailures: 5, Keys: []captchagate.Key{
		captchagate.Phone(captchagate.JSONField("phone")),
		{Source: captchagate.ClientIP(), MaxFailures: 50},
	}})(next)
	opt := captchagate.Phone(captchagate.JSONField("phone"))
	opt.Optional = true
	lax := g.Guard(captchagate.Policy{Name: "lax", MaxFailures: 5, Keys: []captchagate.Key{opt, {Source: captchagate.ClientIP(), MaxFailures: 50}}})(next)
	for _, body := range []string{`{}`, `{"phone":""}`, `{"phone":7}`, `{"Phone ":"+15550100"}`} {
		w := serve(strict, "POST", "/", body, "Content-Type", "application/json")
		assert.Equal(t, http.StatusBadRequest, w.Code, body)
		assert.Equal(t, int(captchagate.CodeMissingKey), decodeError(t, w).ErrorCode, body)
		assert.Equal(t, http.StatusUnauthorized, serve(lax, "POST", "/", body, "Content-Type", "application/json").Code, body)
	}
	assert.Equal(t, 4, calls, "only the lax policy's requests reached the handler")
}

// The explicit mode: the handler passes the values it parsed, and gets the
// middleware's decision, proof handling and counting. A request shape the
// guard could not read makes no difference, since the guard reads nothing
// of the body.
func TestExplicitMode(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	guard, err := g.NewGuard(captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{
		captchagate.Username(captchagate.Arg("username")),
		{Source: captchagate.ClientIP(), MaxFailures: 100},
	}})
	require.NoError(t, err)
	var calls int
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// The app's own parser: a multipart form, say.
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		a, err := guard.Begin(w, r, map[string]string{"username": r.FormValue("user")},
			captchagate.Proof{Token: r.FormValue("token")})
		if err != nil {
			g.Error(w, r, err)
			return
		}
		defer a.End()
		calls++
		if r.FormValue("password") != "right" {
			a.Fail()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.Succeed()
		w.WriteHeader(http.StatusOK)
	})
	post := func(user, pass, tok string) *httptest.ResponseRecorder {
		var b strings.Builder
		fmt.Fprintf(&b, "--X\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n%s\r\n", user)
		fmt.Fprintf(&b, "--X\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n%s\r\n", pass)
		fmt.Fprintf(&b, "--X\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n%s\r\n--X--\r\n", tok)
		return serve(mux, "POST", "/login", b.String(), "Content-Type", "multipart/form-data; boundary=X")
	}
	for _, u := range []string{"alice", "ALICE", " Alice "} {
		w := post(u, "wrong", "")
		require.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
	}
	w := post("alice", "right", "")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, w.Body.String())
	assert.Equal(t, 3, calls)
	tok := solve(t, mux, decodeError(t, w).Captcha.ID)
	// The token is alice's: refused for bob (unspent), then good for her.
	for range 4 {
		post("bob", "wrong", "")
	}
	assert.Equal(t, http.StatusForbidden, post("bob", "right", tok).Code)
	assert.Equal(t, http.StatusOK, post("alice", "right", tok).Code)
	assert.Equal(t, http.StatusForbidden, post("alice", "right", tok).Code, "single use")
	// No username: the missing-key error, nothing counted.
	w = post("", "wrong", "")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Equal(t, int(captchagate.CodeMissingKey), decodeError(t, w).ErrorCode)

	// An Arg key under Wrap is absent, and so refused.
	h := guard.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	assert.Equal(t, http.StatusBadRequest, serve(h, "POST", "/", `{"username":"alice"}`, "Content-Type", "application/json").Code)
}

// Password spraying, one guess at each of 1,000 accounts from 200
// addresses, trips the site-wide key: every request of the policy then
// needs a captcha, a new visitor's from a new address too, but not the
// owner's known device. Fails without the Everyone key (no account and no
// address trips).
func TestSiteWideKeyNoticesSpraying(t *testing.T) {
	t.Parallel()
	a := newOwnerApp(t, func(p *captchagate.Policy) {
		p.Keys = append(p.Keys, captchagate.Key{Source: captchagate.Everyone(), MaxFailures: 500, Window: 15 * time.Minute})
	})
	w := a.login(t, "owner", "right", "RemoteAddr", "192.0.2.201:1")
	require.Equal(t, http.StatusOK, w.Code)
	dev := deviceCookie(w)
	first := -1
	for i := range 1000 {
		code := a.login(t, fmt.Sprint("user", i), "wrong", "RemoteAddr", fmt.Sprintf("10.1.%d.%d:1", i%200/250, i%200)).Code
		if code == http.StatusPreconditionRequired && first < 0 {
			first = i
		}
	}
	assert.Equal(t, 500, first, "the site-wide key tripped at its threshold")
	// The owner's known device is not asked (its own budget is untouched).
	w = a.login(t, "owner", "right", "RemoteAddr", "192.0.2.201:1", "Cookie", dev)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = a.login(t, "newcomer", "right", "RemoteAddr", "192.0.2.200:1")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	tok := solve(t, a.mux, decodeError(t, w).Captcha.ID)
	assert.Equal(t, http.StatusOK, a.login(t, "newcomer", "right", "RemoteAddr", "192.0.2.200:1", "X-Captcha-Token", tok).Code)
}

// SMS pumping across many numbers meets the site-wide send rate (a captcha
// for everyone) and its ceiling (429 past it, captcha or not).
func TestSiteWideSendCeiling(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	sent := 0
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /sms", g.Guard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{
		{Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone, Rate: rate.Every(time.Minute), Burst: 3, Ceiling: 10},
		{Source: captchagate.ClientIP(), Rate: rate.Every(time.Second), Burst: 1000},
		{Source: captchagate.Everyone(), Rate: rate.Every(time.Second), Burst: 50, Ceiling: 80, CeilingWindow: 24 * time.Hour},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent++ })))
	codes := map[int]int{}
	for i := range 200 {
		body := fmt.Sprintf(`{"phone":"+1555%07d"}`, i)
		addr := fmt.Sprintf("10.2.%d.%d:1", i/250, i%250)
		w := serve(mux, "POST", "/sms", body, "Content-Type", "application/json", "RemoteAddr", addr)
		if w.Code == http.StatusPreconditionRequired {
			tok := solve(t, mux, decodeError(t, w).Captcha.ID)
			w = serve(mux, "POST", "/sms", body, "Content-Type", "application/json", "RemoteAddr", addr, "X-Captcha-Token", tok)
		}
		codes[w.Code]++
	}
	assert.Equal(t, 80, sent, "the site-wide ceiling bounds the codes sent, solver or not")
	assert.Equal(t, 120, codes[http.StatusTooManyRequests])
}

// Proof reaches no further than it was issued for: a token bound to one
// account is refused for another without being consumed; a captcha from
// POST new (bound to no key) opens no tripped account; a captcha asked for
// by an address's trip is bound to the account it was asked for. Fails if
// the scope check goes, or if a refused proof is consumed.
func TestProofScope(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, func(c *captchagate.Config) { c.CreateBurst = 1000 })
	c := a.trip(t, "alice")
	tok := solve(t, a.mux, c.ID)
	a.trip(t, "bob")
	assert.Equal(t, http.StatusForbidden, a.login(t, "bob", "right", "X-Captcha-Token", tok).Code)
	assert.Equal(t, "issued for another request", a.events.reason(captchagate.EventTokenRefused))
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", tok).Code, "the refused token was not consumed")

	// An inline answer for bob's captcha from alice's request: refused,
	// unspent.
	w := a.login(t, "bob", "wrong")
	cb := decodeError(t, w).Captcha
	body := fmt.Sprintf(`{"username":"alice","password":"right","captcha_id":%q,"captcha_answer":%q}`, cb.ID, answer)
	assert.Equal(t, http.StatusForbidden, serve(a.mux, "POST", "/login", body, "Content-Type", "application/json").Code)
	assert.Equal(t, http.StatusOK, verify(a.mux, cb.ID, answer).Code, "bob's captcha is still answerable")

	// POST new: bound to no key, it opens no tripped account.
	nt := solve(t, a.mux, newCaptcha(t, a.mux, "login").ID)
	assert.Equal(t, http.StatusForbidden, a.login(t, "alice", "right", "X-Captcha-Token", nt).Code)
	// It still opens a request whose only trip is its address's.
	a2 := newLoginApp(t, nil)
	for i := range 20 {
		a2.login(t, fmt.Sprint("u", i), "wrong")
	}
	require.Equal(t, http.StatusPreconditionRequired, a2.login(t, "carol", "right").Code)
	nt = solve(t, a2.mux, newCaptcha(t, a2.mux, "login").ID)
	assert.Equal(t, http.StatusOK, a2.login(t, "carol", "right", "X-Captcha-Token", nt).Code)
	// A captcha asked for by the address's trip is carol's.
	w = a2.login(t, "carol", "right")
	it := solve(t, a2.mux, decodeError(t, w).Captcha.ID)
	assert.Equal(t, http.StatusForbidden, a2.login(t, "dave", "right", "X-Captcha-Token", it).Code)
	assert.Equal(t, http.StatusOK, a2.login(t, "carol", "right", "X-Captcha-Token", it).Code)
}

// scaledDigits is a Scaler whose difficulty is the level itself.
type scaledDigits struct{ knownDigits }

func (scaledDigits) Difficulty(level int) int64 { return int64(level) }

// With a Scaler challenge, a captcha issued at a lower difficulty than the
// request now needs (asked for early, then the account's failures went on)
// is refused unspent, and the request gets one at its level; without a
// Scaler, levels do not matter. Fails without the level check.
func TestProofAtLowerDifficultyRefused(t *testing.T) {
	t.Parallel()
	for _, scaled := range []bool{true, false} {
		a := newLoginApp(t, func(c *captchagate.Config) {
			if scaled {
				c.Challenge = scaledDigits{}
			}
		})
		early := a.trip(t, "alice") // level 0
		// Four more failures, each through a solved captcha.
		for range 4 {
			w := a.login(t, "alice", "wrong")
			require.Equal(t, http.StatusPreconditionRequired, w.Code)
			tok := solve(t, a.mux, decodeError(t, w).Captcha.ID)
			require.Equal(t, http.StatusUnauthorized, a.login(t, "alice", "wrong", "X-Captcha-Token", tok).Code)
		}
		tok := solve(t, a.mux, early.ID)
		w := a.login(t, "alice", "right", "X-Captcha-Token", tok)
		if !scaled {
			assert.Equal(t, http.StatusOK, w.Code, "levels do not matter to a challenge that does not scale")
			continue
		}
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Equal(t, "issued at a lower difficulty than this request needs", a.events.reason(captchagate.EventTokenRefused))
		fresh := solve(t, a.mux, decodeError(t, w).Captcha.ID)
		assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", fresh).Code, "the fresh captcha is at the request's level")
	}
}
