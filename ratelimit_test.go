package captchagate_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

const loginLimits = `"login/json:username/failures";q=5;w=900, "login/json:username/failure_ceiling";q=100;w=86400, ` +
	`"login/ip/failures";q=20;w=3600`

// An item of RateLimit-Policy or RateLimit: a Structured Field String with
// integer parameters (RFC 9651).
var sfItem = regexp.MustCompile(`^"[^"\\]*"(;[a-z]+=[0-9]+)+$`)

func items(t *testing.T, v string) []string {
	t.Helper()
	if v == "" {
		return nil
	}
	list := strings.Split(v, ", ")
	for _, it := range list {
		require.Regexp(t, sfItem, it)
	}
	return list
}

// On a 428 the headers name the limit that asks for the captcha; an
// account's says nothing of when its window started unless the app asks.
func TestRateLimitOnCaptcha(t *testing.T) {
	for _, accounts := range []bool{false, true} {
		a := newLoginApp(t, func(c *captchagate.Config) { c.RateLimitHeaders.Accounts = accounts })
		a.login(t, "alice", "wrong")
		a.clock.Advance(100 * time.Second)
		for range 4 {
			a.login(t, "alice", "wrong")
		}
		w := a.login(t, "alice", "wrong")
		require.Equal(t, http.StatusPreconditionRequired, w.Code)
		assert.Equal(t, items(t, loginLimits), items(t, w.Header().Get("RateLimit-Policy")))
		want := `"login/json:username/failures";r=0;t=900` // the whole window: nothing learnt
		if accounts {
			want = `"login/json:username/failures";r=0;t=800` // the rest of alice's window
		}
		assert.Equal(t, []string{want}, items(t, w.Header().Get("RateLimit")), "accounts=%v", accounts)
		assert.Empty(t, w.Header().Get("Retry-After"), "a captcha, not a wait, lets it through")
	}

	// An address's limit is no account's: its reset as counted.
	a := newLoginApp(t, nil)
	for i := range 20 {
		require.Equal(t, http.StatusUnauthorized, a.login(t, "u"+string(rune('a'+i)), "wrong").Code)
		a.clock.Advance(time.Minute)
	}
	w := a.login(t, "zed", "wrong")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	assert.Equal(t, []string{`"login/ip/failures";r=0;t=2400`}, items(t, w.Header().Get("RateLimit")))
}

// On a 429 RateLimit's t and Retry-After agree; for an account's ceiling
// both are the whole window unless the app asks for the rest of it.
func TestRateLimitOnCeiling(t *testing.T) {
	for _, accounts := range []bool{false, true} {
		g, clk := newGate(t, func(c *captchagate.Config) { c.RateLimitHeaders.Accounts = accounts })
		phone := captchagate.Phone(captchagate.JSONField("phone"))
		phone.Ceiling, phone.CeilingWindow = 2, time.Hour
		gd, err := g.NewGuard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{phone,
			{Source: captchagate.ClientIP(), Ceiling: 3, CeilingWindow: time.Hour}}})
		require.NoError(t, err)
		h := gd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		send := func(number string) *http.Response {
			w := serve(h, "POST", "/sms", `{"phone":"`+number+`"}`, "Content-Type", "application/json")
			return w.Result()
		}
		send("+15550001")
		clk.Advance(10 * time.Minute)
		send("+15550001")
		r := send("+15550001")
		require.Equal(t, http.StatusTooManyRequests, r.StatusCode)
		assert.Equal(t, `"sms/json:phone/ceiling";q=2;w=3600, "sms/ip/ceiling";q=3;w=3600`, r.Header.Get("RateLimit-Policy"))
		if accounts {
			assert.Equal(t, `"sms/json:phone/ceiling";r=0;t=3000`, r.Header.Get("RateLimit"))
			assert.Equal(t, "3000", r.Header.Get("Retry-After"))
		} else {
			assert.Equal(t, `"sms/json:phone/ceiling";r=0;t=3600`, r.Header.Get("RateLimit"))
			assert.Equal(t, "3600", r.Header.Get("Retry-After"))
		}
		// The address's ceiling (the refused request was given back): as
		// counted.
		require.Equal(t, http.StatusNoContent, send("+15550002").StatusCode)
		r = send("+15550003")
		require.Equal(t, http.StatusTooManyRequests, r.StatusCode)
		assert.Equal(t, `"sms/ip/ceiling";r=0;t=3000`, r.Header.Get("RateLimit"))
		assert.Equal(t, "3000", r.Header.Get("Retry-After"))
	}
}

// With Allowed, responses let through say what is left of each limit,
// except an account's; Off sends nothing.
func TestRateLimitAllowedAndOff(t *testing.T) {
	a := newLoginApp(t, func(c *captchagate.Config) { c.RateLimitHeaders.Allowed = true })
	w := a.login(t, "alice", "wrong")
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, loginLimits, w.Header().Get("RateLimit-Policy"))
	assert.Equal(t, []string{`"login/ip/failures";r=19;t=3600`}, items(t, w.Header().Get("RateLimit")))

	a = newLoginApp(t, func(c *captchagate.Config) { c.RateLimitHeaders.Allowed, c.RateLimitHeaders.Accounts = true, true })
	a.login(t, "alice", "wrong")
	w = a.login(t, "alice", "wrong")
	assert.ElementsMatch(t, []string{`"login/json:username/failures";r=3;t=900`,
		`"login/json:username/failure_ceiling";r=98;t=86400`, `"login/ip/failures";r=18;t=3600`},
		items(t, w.Header().Get("RateLimit")))

	a = newLoginApp(t, nil)
	w = a.login(t, "alice", "wrong")
	assert.Empty(t, w.Header().Get("RateLimit-Policy"), "not on allowed responses by default")

	a = newLoginApp(t, func(c *captchagate.Config) { c.RateLimitHeaders.Off = true })
	for range 5 {
		a.login(t, "alice", "wrong")
	}
	w = a.login(t, "alice", "wrong")
	require.Equal(t, http.StatusPreconditionRequired, w.Code)
	assert.Empty(t, w.Header().Get("RateLimit-Policy"))
	assert.Empty(t, w.Header().Get("RateLimit"))
}
