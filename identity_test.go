package captchagate_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/idaas"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// A phone key keeps its meaning (normalised, a Sender, reset on success)
// when a send rate is added, however it is written: before issue 15 the
// README's own SMS pattern, {Source: Phone(src).Source, Rate: ...}, dropped
// Sender and ResetOnSuccess. A plain source is the control.
func TestPhoneKeyKeepsFlagsWithRate(t *testing.T) {
	t.Parallel()
	src := captchagate.JSONField("phone")
	for _, tc := range []struct {
		name  string
		key   func(r rate.Limit, burst int) captchagate.Key
		phone bool
	}{
		{"Phone, then a rate", func(r rate.Limit, burst int) captchagate.Key {
			k := captchagate.Phone(src)
			k.Rate, k.Burst = r, burst
			return k
		}, true},
		{"IdentityPhone in a literal", func(r rate.Limit, burst int) captchagate.Key {
			return captchagate.Key{Source: src, Identity: captchagate.IdentityPhone, Rate: r, Burst: burst}
		}, true},
		{"Phone's Source in a literal", func(r rate.Limit, burst int) captchagate.Key {
			return captchagate.Key{Source: captchagate.Phone(src).Source, Rate: r, Burst: burst}
		}, true},
		{"plain source", func(r rate.Limit, burst int) captchagate.Key {
			return captchagate.Key{Source: src, Rate: r, Burst: burst}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spy := &gatetest.SliderSpy{}
			g, _ := newGate(t, func(c *captchagate.Config) { c.Challenge, c.Dialects = spy, []captchagate.Dialect{idaas.Dialect{}} })
			mux := http.NewServeMux()
			mux.Handle("/captcha/", g.Handler())
			// One code per number, then a captcha.
			mux.Handle("POST /send", g.Guard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{tc.key(rate.Every(time.Minute), 1)}})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
			// Codes checked per number: two wrong ones, then a captcha.
			mux.Handle("POST /check", g.Guard(captchagate.Policy{Name: "check", MaxFailures: 2, Keys: []captchagate.Key{tc.key(1, 100)}})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var v struct{ Code string }
					json.NewDecoder(r.Body).Decode(&v)
					if v.Code != "123456" {
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
					w.WriteHeader(http.StatusNoContent)
				})))
			call := func(path, phone string, more ...string) *httptest.ResponseRecorder {
				body := map[string]string{"phone": phone}
				for i := 0; i+1 < len(more); i += 2 {
					body[more[i]] = more[i+1]
				}
				b, _ := json.Marshal(body)
				return serve(mux, "POST", path, string(b), "Content-Type", "application/json")
			}

			// Normalised: two spellings of one number share the send rate.
			require.Equal(t, http.StatusNoContent, call("/send", "+1 555-0100").Code)
			w := call("/send", "+1 (555) 0100")
			if !tc.phone {
				require.Equal(t, http.StatusNoContent, w.Code, "a plain source counts each spelling apart")
				w = call("/send", "+1 (555) 0100")
			}
			require.Equal(t, http.StatusPreconditionRequired, w.Code, w.Body.String())

			// A Sender: the seed verify binds the token to the number.
			c := decodeError(t, w).Captcha
			require.NotNil(t, c)
			serve(mux, "GET", c.ImageURL, "")
			x, ok := spy.Gap(c.ID)
			require.True(t, ok)
			code, e, tok := seedVerify(mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": "+15550100"})
			if tc.phone {
				require.Equal(t, http.StatusOK, code, "%+v", e)
				assert.Equal(t, http.StatusNoContent, call("/send", "+1 (555) 0100", "captcha_token", tok).Code)
			} else {
				assert.Equal(t, http.StatusBadRequest, code)
				assert.Equal(t, 4118, e.ErrorCode, "no Sender key")
			}

			// No reset on success for a number's key (account-wide):
			// wrong, right, wrong leaves two failures, so the next wrong
			// code needs a captcha.
			const n = "+1 555 0199"
			require.Equal(t, http.StatusUnauthorized, call("/check", n, "code", "000000").Code)
			require.Equal(t, http.StatusNoContent, call("/check", n, "code", "123456").Code)
			require.Equal(t, http.StatusUnauthorized, call("/check", n, "code", "000000").Code)
			assert.Equal(t, http.StatusPreconditionRequired, call("/check", n, "code", "000000").Code)
		})
	}
}

// Username and Email identities in a Key literal fold the value and reset
// on success; an Email is a Sender too, a Username is not.
func TestIdentityInLiteral(t *testing.T) {
	t.Parallel()
	j := func(v string) req { return req{body: `{"user":"` + v + `"}`, ctype: "application/json"} }
	for _, id := range []captchagate.Identity{captchagate.IdentityUsername, captchagate.IdentityEmail} {
		k := captchagate.Key{Source: captchagate.JSONField("user"), Identity: id}
		assert.True(t, sameKeyOf(t, k, nil, j("Alice@Example.org"), j("alice@example.org")), "identity %d folds", id)
	}
	// Phone's normalisation runs before the Source's own Normalize.
	k := captchagate.Key{
		Source:   captchagate.JSONField("user").Normalize(func(s string) string { return strings.TrimPrefix(s, "+") }),
		Identity: captchagate.IdentityPhone,
	}
	assert.True(t, sameKeyOf(t, k, nil, j("+1 555-0100"), j("1 (555) 0100")))
	assert.False(t, sameKeyOf(t, k, nil, j("+1 555-0100"), j("1 (555) 0101")))

	g, _ := newGate(t, nil)
	_, err := g.NewGuard(captchagate.Policy{Name: "bad", MaxFailures: 1, Keys: []captchagate.Key{
		{Source: captchagate.JSONField("user"), Identity: 9},
	}})
	assert.ErrorContains(t, err, "unknown Identity")
	// An address is no account: an Identity there would reset its counter
	// on every success (the attacker's own logins).
	for _, src := range []captchagate.Source{captchagate.ClientIP(), captchagate.ClientNet(24, 48)} {
		_, err = g.NewGuard(captchagate.Policy{Name: "addr", MaxFailures: 1, Keys: []captchagate.Key{
			{Source: src, Identity: captchagate.IdentityUsername},
		}})
		assert.ErrorContains(t, err, "Identity on an address key")
	}

	// Senders: only a policy with an Email (or Phone) key can bind one.
	spy := &gatetest.SliderSpy{}
	g, _ = newGate(t, func(c *captchagate.Config) { c.Challenge, c.Dialects = spy, []captchagate.Dialect{idaas.Dialect{}} })
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	for id, policy := range map[captchagate.Identity]string{captchagate.IdentityUsername: "user", captchagate.IdentityEmail: "email"} {
		g.Guard(captchagate.Policy{Name: policy, MaxFailures: 3, Keys: []captchagate.Key{{Source: captchagate.JSONField("user"), Identity: id}}})
		c := newCaptcha(t, mux, policy)
		serve(mux, "GET", c.ImageURL, "")
		x, ok := spy.Gap(c.ID)
		require.True(t, ok)
		code, e, _ := seedVerify(mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": "alice@example.org"})
		if id == captchagate.IdentityEmail {
			assert.Equal(t, http.StatusOK, code, "%+v", e)
		} else {
			assert.Equal(t, 4118, e.ErrorCode, "a username is not a Sender")
		}
	}
}
