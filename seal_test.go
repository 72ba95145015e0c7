package captchagate_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/memstore"
)

// With the in-memory store a captcha costs no store entry: a client asking
// for captchas adds one entry (its creation budget), however many it gets.
// Fails if captchas are stored again.
func TestSealedCaptchasStoreNothing(t *testing.T) {
	t.Parallel()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	// A gate whose store we can count: the default kind, passed in.
	g, err := captchagate.New(captchagate.Config{Secret: testSecret, Store: st, Challenge: knownDigits{}, CreateBurst: 1000})
	require.NoError(t, err)
	g.Guard(loginPolicy)
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	before := st.Len()
	var ids []string
	for range 200 {
		ids = append(ids, newCaptcha(t, mux, "login").ID)
	}
	assert.LessOrEqual(t, st.Len()-before, 1, "200 captchas, one creation bucket")
	// Each is answered once; answering writes no store entry either.
	for _, id := range ids[:50] {
		require.Equal(t, http.StatusOK, verify(mux, id, answer).Code)
	}
	assert.Equal(t, http.StatusForbidden, verify(mux, ids[0], answer).Code, "spent")
}

// A sealed id cannot be altered, and opens only on the gate that sealed it:
// another instance with the same secret and its own in-memory store (whose
// spend marks it cannot see) refuses it.
func TestSealedIDsAreTheGates(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	for _, i := range []int{0, len(c.ID) / 2, len(c.ID) - 1} {
		b := []byte(c.ID)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		w := verify(a.mux, string(b), answer)
		assert.Equal(t, http.StatusForbidden, w.Code, "altered at %d: %s", i, w.Body)
		assert.Nil(t, decodeError(t, w).Captcha, "an altered id is unknown: no fresh captcha")
	}
	other := newLoginApp(t, nil) // same secret, its own store
	w := verify(other.mux, c.ID, answer)
	assert.Equal(t, http.StatusForbidden, w.Code, "another instance refuses it")
	assert.Equal(t, http.StatusOK, verify(a.mux, c.ID, answer).Code, "none of that spent it")
}

// A sealed captcha stays spent for as long as it could be answered, through
// the spend marks' generations, and a refresh spends the old one.
func TestSealedCaptchaSpentForItsLife(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	w := serve(a.mux, "POST", "/captcha/refresh", `{"captcha_id":"`+c.ID+`"}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, http.StatusForbidden, verify(a.mux, c.ID, answer).Code, "refreshed: spent")
	assert.Equal(t, http.StatusNotFound, serve(a.mux, "GET", c.ImageURL, "").Code, "and its picture gone")

	// The marks' first generation began with the first refresh and lasts
	// a captcha's life (5 minutes and a minute of grace): spend one late in
	// it, then let the generation turn over while it could be answered.
	a.clock.Advance(5 * time.Minute)
	d := a.trip(t, "bob")
	require.Equal(t, http.StatusOK, verify(a.mux, d.ID, answer).Code)
	for range 5 {
		a.clock.Advance(time.Minute)
		assert.Equal(t, http.StatusForbidden, verify(a.mux, d.ID, answer).Code, "still spent")
	}
	a.clock.Advance(2 * time.Minute)
	w = verify(a.mux, d.ID, answer)
	assert.Equal(t, http.StatusForbidden, w.Code, "past its life: unknown")
}

// Of many concurrent right answers to one sealed captcha, one mints a
// token.
func TestSealedCaptchaConcurrentAnswers(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	var ok atomic.Int64
	gatetest.Together(50, func() {
		if verify(a.mux, c.ID, answer).Code == http.StatusOK {
			ok.Add(1)
		}
	})
	assert.Equal(t, int64(1), ok.Load())
}

// Tokens are sealed too: minting one stores nothing, it is redeemed once
// (of concurrent retries, one passes), an altered one, a captcha id used as
// a token, and another instance's token are refused. Fails if tokens are
// stored items again (the store grows by one per verification) or if their
// marks are dropped.
func TestSealedTokens(t *testing.T) {
	t.Parallel()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	a := newLoginApp(t, func(c *captchagate.Config) { c.Store = st; c.CreateBurst = 1000 })
	c := a.trip(t, "alice")
	before := st.Len()
	var toks []string
	for range 40 {
		w := a.login(t, "alice", "wrong")
		require.Equal(t, http.StatusPreconditionRequired, w.Code)
		toks = append(toks, solve(t, a.mux, decodeError(t, w).Captcha.ID))
	}
	assert.Equal(t, before, st.Len(), "40 tokens minted, no entry stored")

	// Concurrent retries with one token: one reaches the handler.
	calls := a.calls.Load()
	var passed atomic.Int64
	gatetest.Together(20, func() {
		if a.login(t, "alice", "wrong", "X-Captcha-Token", toks[0]).Code == http.StatusUnauthorized {
			passed.Add(1)
		}
	})
	assert.Equal(t, int64(1), passed.Load())
	assert.Equal(t, calls+1, a.calls.Load())

	// Altered, or a captcha's id where a token goes: unknown.
	b := []byte(toks[1])
	b[len(b)/2] ^= 'A' ^ 'B'
	for _, bad := range []string{string(b), c.ID} {
		w := a.login(t, "alice", "right", "X-Captcha-Token", bad)
		assert.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
		assert.Equal(t, "unknown or already used", a.events.reason(captchagate.EventTokenRefused))
	}
	// Another instance with the same secret refuses it, without spending it.
	other := newLoginApp(t, nil)
	other.trip(t, "alice")
	assert.Equal(t, http.StatusForbidden, other.login(t, "alice", "right", "X-Captcha-Token", toks[1]).Code)
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", toks[1]).Code)
}
