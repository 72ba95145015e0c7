package captchagate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/memstore"
)

// plainStore hides a memstore behind the Store interface, as a third-party
// Store would be: neither the in-process store nor a Batcher, so the guard
// counts on it one call an operation, by HMAC-named keys. It records the
// counter keys it is given.
type plainStore struct {
	captchagate.Store
	mu   sync.Mutex
	keys []string
}

func (s *plainStore) note(key string) {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
}

func (s *plainStore) Incr(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	s.note(key)
	return s.Store.Incr(ctx, key, delta, window)
}

func (s *plainStore) Allow(ctx context.Context, key string, interval time.Duration, burst int, take bool) (bool, time.Duration, error) {
	s.note(key)
	return s.Store.Allow(ctx, key, interval, burst, take)
}

func (s *plainStore) Reset(ctx context.Context, key string) error {
	s.note(key)
	return s.Store.Reset(ctx, key)
}

// The guard counts alike on the in-process store (by hash) and on a plain
// Store (by key): thresholds, give-backs, resets on success, send rates,
// ceilings and Check. (store/redisstore's tests run the Batcher.)
func TestEveryCounterCountsAlike(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"in-process", "plain Store"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var plain *plainStore
			g, clk := newGate(t, func(c *captchagate.Config) {
				if name == "plain Store" {
					plain = &plainStore{Store: memstore.New(memstore.Options{Now: c.Now, CleanupInterval: -1})}
					c.Store = plain
				}
			})
			mux := http.NewServeMux()
			mux.Handle("/captcha/", g.Handler())
			login, err := g.NewGuard(loginPolicy)
			require.NoError(t, err)
			mux.Handle("POST /login", login.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Password") != "right" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(http.StatusOK)
			})))
			sms, err := g.NewGuard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{
				{Source: captchagate.Header("X-Phone"), Rate: rate.Every(time.Minute), Burst: 2, Ceiling: 3, CeilingWindow: time.Hour},
			}})
			require.NoError(t, err)
			mux.Handle("POST /sms", sms.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			try := func(user, pass string, hdr ...string) *httptest.ResponseRecorder {
				return serve(mux, "POST", "/login", `{"username":"`+user+`"}`,
					append([]string{"Content-Type", "application/json", "X-Password", pass}, hdr...)...)
			}
			checkLogin := func(user string) error {
				r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"username":"`+user+`"}`))
				r.Header.Set("Content-Type", "application/json")
				r.RemoteAddr = "192.0.2.1:1234"
				return login.Check(r)
			}

			// Successes give their reservations back: they never trip (the
			// IP key would at 21).
			for range 25 {
				require.Equal(t, http.StatusOK, try("carol", "right").Code)
			}
			// Five failures, then a captcha; Check agrees, for alice only.
			for range 5 {
				require.NoError(t, checkLogin("alice"))
				require.Equal(t, http.StatusUnauthorized, try("alice", "wrong").Code)
			}
			assert.ErrorIs(t, checkLogin("alice"), captchagate.ErrCaptchaRequired)
			assert.NoError(t, checkLogin("bob"))
			w := try("alice", "right")
			require.Equal(t, http.StatusPreconditionRequired, w.Code)
			// A solved captcha lets the success through, which resets
			// nothing account-wide: alice still needs a captcha.
			tok := solve(t, mux, decodeError(t, w).Captcha.ID)
			require.Equal(t, http.StatusOK, try("alice", "right", "X-Captcha-Token", tok).Code)
			assert.ErrorIs(t, checkLogin("alice"), captchagate.ErrCaptchaRequired)
			assert.Equal(t, http.StatusPreconditionRequired, try("alice", "wrong").Code)

			// The send rate asks for a captcha past its burst; the ceiling
			// refuses past three sends, captcha or not.
			send := func(hdr ...string) *httptest.ResponseRecorder {
				return serve(mux, "POST", "/sms", "", append([]string{"X-Phone", "+15550100"}, hdr...)...)
			}
			require.Equal(t, http.StatusOK, send().Code)
			require.Equal(t, http.StatusOK, send().Code)
			w = send()
			require.Equal(t, http.StatusPreconditionRequired, w.Code)
			tok = solve(t, mux, decodeError(t, w).Captcha.ID)
			require.Equal(t, http.StatusOK, send("X-Captcha-Token", tok).Code)
			w = send()
			require.Equal(t, http.StatusTooManyRequests, w.Code)
			assert.Equal(t, "3600", w.Header().Get("Retry-After"))
			clk.Advance(time.Hour)
			assert.Equal(t, http.StatusOK, send().Code, "a new window, the rate refilled")

			if plain == nil {
				return
			}
			// The plain Store saw the guard's counters named by their kind
			// and a keyed hash, and no raw value.
			plain.mu.Lock()
			defer plain.mu.Unlock()
			kinds := map[string]int{}
			for _, k := range plain.keys {
				kinds[k[:2]]++
				if strings.Contains("fxr", k[:1]) {
					assert.Len(t, k, 24, k) // the letter, ':' and 16 bytes in base64url
				}
				assert.NotContains(t, k, "alice")
				assert.NotContains(t, k, "5550100")
			}
			for _, kind := range []string{"f:", "x:", "r:"} {
				assert.NotZero(t, kinds[kind], kind)
			}
		})
	}
}
