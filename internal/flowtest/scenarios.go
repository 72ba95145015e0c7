package flowtest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

// The scenarios below are the client's side of what every adapter of the
// guard to a router must pass; the adapter's test mounts the routes on its
// router, each as the scenario's doc comment says, and runs the scenario
// against the server's base URL.

// Guarded counts the runs of a guarded handler, so a scenario can tell
// that the handler never ran for a request the guard answered.
type Guarded interface{ Load() int32 }

// LoginOnce is the whole login flow at base+"/login" (guarded by
// LoginPolicy, answering 200 to Right and 401 with wrongBody, trimmed, to
// anything else): wrong passwords trip the guard, the client gets a
// captcha, loads its image, answers it, and signs in with the token, which
// works once. calls counts the handler's runs: never for a request the
// guard answered. No token in the gate's log, and the guard saw every
// outcome.
func (e *Env) LoginOnce(t *testing.T, base, wrongBody string, calls Guarded) {
	t.Helper()
	for i := 1; i <= 5; i++ {
		a := Post(t, base+"/login", Wrong)
		require.Equal(t, http.StatusUnauthorized, a.Status, "wrong password %d", i)
		require.Equal(t, wrongBody, strings.TrimSpace(a.Raw))
	}
	a := Post(t, base+"/login", Wrong)
	require.Equal(t, http.StatusPreconditionRequired, a.Status, "the sixth: %s", a.Raw)
	assert.Equal(t, 4001, a.Body.Code)
	assert.Equal(t, int32(5), calls.Load(), "the handler did not run for the guard's answer")
	assert.Equal(t, http.StatusPreconditionRequired, Post(t, base+"/login", Right).Status, "the right password needs the captcha too")

	tok := e.Solve(t, base, a)
	in := Post(t, base+"/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusOK, in.Status, in.Raw)
	assert.True(t, in.Body.OK)

	again := Post(t, base+"/login", Right, captchagate.TokenHeader, tok)
	assert.Equal(t, http.StatusForbidden, again.Status, "a token works once: %s", again.Raw)
	assert.Equal(t, "captcha_invalid", again.Body.Error)
	assert.Equal(t, int32(6), calls.Load())
	assert.NotContains(t, e.Log.String(), "saw no outcome", "the guard sees every outcome")
	assert.NotContains(t, e.Log.String(), tok, "no token in the log")
}

// SendCodePolicy counts an SMS send route by phone: 2 sends at once, then
// one a minute, and 3 an hour at the most.
var SendCodePolicy = captchagate.Policy{Name: "send-code", Keys: []captchagate.Key{{
	Source: captchagate.JSONField("phone"), Identity: captchagate.IdentityPhone,
	Rate: rate.Every(time.Minute), Burst: 2, Ceiling: 3, CeilingWindow: time.Hour,
}}}

// SendCode is the SMS flow at base+"/send-code" (guarded by SendCodePolicy,
// answering 200; sent counts its runs): past its send rate the client needs
// a captcha (a token lets it send), past the ceiling it gets 429 with
// Retry-After even with a token; after the ceiling's window it sends again.
func (e *Env) SendCode(t *testing.T, base string, sent Guarded) {
	t.Helper()
	const phone = `{"phone":"+1 202 555 0143"}`
	for i := 1; i <= 2; i++ {
		require.Equal(t, http.StatusOK, Post(t, base+"/send-code", phone).Status, "send %d, within the burst", i)
	}
	first := Post(t, base+"/send-code", phone)
	second := Post(t, base+"/send-code", phone)
	tokA, tokB := e.Solve(t, base, first), e.Solve(t, base, second)
	assert.Equal(t, int32(2), sent.Load(), "nothing sent past the rate without a captcha")

	a := Post(t, base+"/send-code", phone, captchagate.TokenHeader, tokA)
	require.Equal(t, http.StatusOK, a.Status, "the third send, with a captcha: %s", a.Raw)
	c := Post(t, base+"/send-code", phone, captchagate.TokenHeader, tokB)
	assert.Equal(t, http.StatusTooManyRequests, c.Status, "past the ceiling, even with a token: %s", c.Raw)
	assert.Equal(t, "too_many_requests", c.Body.Error)
	assert.NotEmpty(t, c.RetryAfter)
	assert.Equal(t, int32(3), sent.Load())

	e.Clock.Advance(time.Hour + time.Minute)
	assert.Equal(t, http.StatusOK, Post(t, base+"/send-code", phone).Status, "a new ceiling window")
}

// ItemPolicy counts failures by the route's id parameter (r.PathValue),
// 3 before a captcha.
var ItemPolicy = captchagate.Policy{Name: "unlock", MaxFailures: 3, Keys: []captchagate.Key{{
	Source: captchagate.SourceFunc("item", func(r *http.Request) (string, bool) {
		v := r.PathValue("id")
		return v, v != ""
	}),
}}}

// PerItem is the flow at base+"/items/{id}/unlock" (guarded by ItemPolicy,
// answering 403): failures on one item trip that item only.
func PerItem(t *testing.T, base string) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		require.Equal(t, http.StatusForbidden, Post(t, base+"/items/1/unlock", `{}`).Status, "item 1, try %d", i)
	}
	assert.Equal(t, http.StatusPreconditionRequired, Post(t, base+"/items/1/unlock", `{}`).Status, "item 1 tripped")
	assert.Equal(t, http.StatusForbidden, Post(t, base+"/items/2/unlock", `{}`).Status, "item 2 counts on its own")
}

// InGroup is the login flow on a gate made with Config.Prefix
// "/auth/captcha/", its Handler and base+"/auth/login" (guarded by
// LoginPolicy, answering 200 to Right and 401 to anything else) mounted in
// a route group at /auth: the URLs sent to the client work, and the gate
// warns of nothing.
func (e *Env) InGroup(t *testing.T, base string) {
	t.Helper()
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, Post(t, base+"/auth/login", Wrong).Status)
	}
	a := Post(t, base+"/auth/login", Wrong)
	require.NotNil(t, a.Body.Captcha, a.Raw)
	assert.True(t, strings.HasPrefix(a.Body.Captcha.ImageURL, "/auth/captcha/"), a.Body.Captcha.ImageURL)
	tok := e.Solve(t, base, a)
	assert.Equal(t, http.StatusOK, Post(t, base+"/auth/login", Right, captchagate.TokenHeader, tok).Status)
	assert.NotContains(t, e.Log.String(), "outside Config.Prefix")
}
