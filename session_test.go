package captchagate_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// sessionApp puts every request in the session named by its X-Test-Session
// header, as a session layer would.
func sessionApp(t *testing.T) (*loginApp, http.Handler) {
	a := newLoginApp(t, nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Test-Session"); id != "" {
			r = captchagate.WithSession(r, &captchagate.Session{ID: []byte(id + "-0123456789abcdef"), Pending: r.Header.Get("X-Test-Pending")})
		}
		a.mux.ServeHTTP(w, r)
	})
	return a, h
}

func TestSessionBindsCaptchasAndTokens(t *testing.T) {
	t.Parallel()
	a, h := sessionApp(t)
	login := func(user, pass string, hdr ...string) *httptest.ResponseRecorder {
		return serve(h, "POST", "/login", `{"username":"`+user+`","password":"`+pass+`"}`,
			append([]string{"Content-Type", "application/json"}, hdr...)...)
	}
	for range 5 {
		login("alice", "wrong", "X-Test-Session", "A")
	}
	w := login("alice", "right", "X-Test-Session", "A")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	id := decodeError(t, w).Captcha.ID

	// A token minted from session A's captcha opens the gate only in A.
	tok := solve(t, h, id)
	for _, other := range [][]string{{"X-Test-Session", "B"}, {}} {
		w = login("alice", "right", append([]string{captchagate.TokenHeader, tok}, other...)...)
		assert.Equal(t, http.StatusForbidden, w.Code, "session %v", other)
		assert.Equal(t, 4002, decodeError(t, w).ErrorCode)
		assert.Equal(t, "issued for another request", a.events.reason(captchagate.EventTokenRefused))
		w = login("alice", "right", "X-Test-Session", "A")
		require.Equal(t, http.StatusPreconditionRequired, w.Code)
		id = decodeError(t, w).Captcha.ID
		tok = solve(t, h, id)
	}
	assert.Equal(t, http.StatusOK, login("alice", "right", captchagate.TokenHeader, tok, "X-Test-Session", "A").Code)

	// An inline answer takes the captcha id from the session's Pending.
	for range 5 {
		login("bob", "wrong", "X-Test-Session", "C")
	}
	w = login("bob", "right", "X-Test-Session", "C")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	id = decodeError(t, w).Captcha.ID
	body := `{"username":"bob","password":"right","captcha_answer":"` + answer + `"}`
	w = serve(h, "POST", "/login", body, "Content-Type", "application/json", "X-Test-Session", "D", "X-Test-Pending", id)
	assert.Equal(t, http.StatusForbidden, w.Code, "another session naming the captcha as pending is refused")
	id = decodeError(t, w).Captcha.ID
	w = serve(h, "POST", "/login", body, "Content-Type", "application/json", "X-Test-Session", "C", "X-Test-Pending", id)
	assert.Equal(t, http.StatusForbidden, w.Code, "the captcha was reissued for session D, not C")
	id = decodeError(t, w).Captcha.ID
	w = serve(h, "POST", "/login", body, "Content-Type", "application/json", "X-Test-Session", "C", "X-Test-Pending", id)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, int64(5+5+1+1), a.calls.Load())
}

func TestSessionErrorHandler(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	var got error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = captchagate.WithSession(r, &captchagate.Session{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(299)
		}})
		a.mux.ServeHTTP(w, r)
	})
	w := serve(h, "POST", "/captcha/verify", `{"captcha_id":"x"}`, "Content-Type", "application/json")
	assert.Equal(t, 299, w.Code)
	assert.True(t, errors.Is(got, captchagate.ErrInvalidRequest))
	assert.Nil(t, captchagate.SessionFrom(httptest.NewRequest("GET", "/", nil)))
}

func TestRefreshAndLookup(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "carol")
	r := httptest.NewRequest("GET", "/", nil)
	got, err := a.gate.Lookup(r, c.ID)
	require.NoError(t, err)
	assert.Equal(t, c.ImageURL, got.ImageURL)
	n, err := a.gate.Refresh(r, c.ID)
	require.NoError(t, err)
	assert.NotEqual(t, c.ID, n.ID)
	assert.Equal(t, 4, n.RefreshesLeft)
	_, err = a.gate.Lookup(r, c.ID)
	assert.True(t, errors.Is(err, captchagate.ErrNotFound), "the old id is gone: %v", err)
	_, err = a.gate.Refresh(r, c.ID)
	assert.True(t, errors.Is(err, captchagate.ErrNotFound))
	_, err = a.gate.Lookup(r, "short")
	assert.True(t, errors.Is(err, captchagate.ErrInvalidRequest))
	a.clock.Advance(10 * 60e9)
	_, err = a.gate.Lookup(r, n.ID)
	assert.True(t, errors.Is(err, captchagate.ErrNotFound), "expired")
}
