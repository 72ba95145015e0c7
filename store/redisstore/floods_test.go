package redisstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// guarded is a login handler guarded by policy on a gate whose store is s:
// the password "right" succeeds, any other fails (401).
func guarded(t *testing.T, s captchagate.Store, clk *storetest.Clock, policy captchagate.Policy, mutate func(*captchagate.Config)) http.Handler {
	t.Helper()
	cfg := captchagate.Config{
		Secret: secret, Store: s, Challenge: gatetest.KnownDigits{}, Now: clk.Now, CreateBurst: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := captchagate.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	return g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "ok") {
			w.Write([]byte(`{"ok":true}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
}

// try sends one login for user from addr (host only) to h and returns the
// status; pass "right" succeeds.
func try(h http.Handler, addr, user, pass string) int {
	q := "/login"
	if pass == "right" {
		q += "?ok"
	}
	r := httptest.NewRequest("POST", q, strings.NewReader(login(user, pass)))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = addr + ":4321"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// keysUnder counts the keys of c under prefix, and those of them that
// captchas cost: the creation budget of the client's address (prefix +
// "n:", one per address) and the spend marks (prefix + "{marks}:"); it
// fails the test on a stored captcha or token ("c:", "t:").
func keysUnder(t *testing.T, c *redis.Client, prefix string) (all, captchas int) {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		all++
		k := iter.Val()
		// Captchas are sealed in their ids: none is stored.
		assert.False(t, strings.HasPrefix(k, prefix+"c:") || strings.HasPrefix(k, prefix+"t:"), "a stored captcha or token: %s", k)
		if strings.HasPrefix(k, prefix+"n:") || strings.HasPrefix(k, prefix+"{marks}:") {
			captchas++
		}
	}
	require.NoError(t, iter.Err())
	return all, captchas
}

// A flood of refused requests with unique usernames leaves no counter behind
// in Redis: each request's reservations are given back to zero, and a
// counter given back to zero is deleted in the same script. Refused by a
// ceiling (429), nothing is left at all; refused for a captcha (428), only
// the address's creation budget and the spend marks' epoch: captchas are
// sealed in their ids.
func TestRefusedFloodLeavesNoKeys(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	const flood = 400
	attacker := "192.0.2.7"
	user := captchagate.Username(captchagate.JSONField("username"))
	cases := []struct {
		name     string
		ip       captchagate.Key
		refused  int
		captchas bool
	}{
		{"ceiling", captchagate.Key{Source: captchagate.ClientIP(), Ceiling: 3, CeilingWindow: time.Hour}, http.StatusTooManyRequests, false},
		{"tripped", captchagate.Key{Source: captchagate.ClientIP(), MaxFailures: 3, Window: time.Hour}, http.StatusPreconditionRequired, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := storetest.NewClock()
			prefix := "flood-" + tc.name + ":"
			s, err := redisstore.New(c, redisstore.Options{Prefix: prefix, Now: clk.Now})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			h := guarded(t, s, clk, captchagate.Policy{Name: "login", Keys: []captchagate.Key{user, tc.ip}, MaxFailures: 5, Window: 15 * time.Minute}, nil)
			// Three failures from the attacker's address reach the handler
			// and stay counted: its address is now at its ceiling, or
			// tripped.
			for i := range 3 {
				require.Equal(t, http.StatusUnauthorized, try(h, attacker, "first"+strconv.Itoa(i), "wrong"))
			}
			require.NoError(t, s.Flush(context.Background()))
			baseline, _ := keysUnder(t, c, prefix)
			require.NotZero(t, baseline)

			for i := range flood {
				require.Equal(t, tc.refused, try(h, attacker, "user"+strconv.Itoa(i), "wrong"), "request %d", i)
			}
			require.NoError(t, s.Flush(context.Background()))
			all, captchas := keysUnder(t, c, prefix)
			t.Logf("%s: %d refused requests; keys %d before, %d after, of which %d are the address's creation budget and the marks' epoch", tc.name, flood, baseline, all, captchas)
			assert.Equal(t, baseline, all-captchas, "counter keys left behind by refused requests")
			if !tc.captchas {
				assert.Zero(t, captchas)
			}
			// The counts that stand are intact: the address is still refused,
			// and a newcomer from elsewhere is served.
			assert.Equal(t, tc.refused, try(h, attacker, "another", "wrong"))
			assert.Equal(t, http.StatusOK, try(h, "198.51.100.1", "newcomer", "right"))
		})
	}
}

// Store.Incr with a negative delta that brings a counter to zero deletes it:
// the counter is absent afterwards (a read reports no window), and the next
// increment starts a new window.
func TestGiveBackToZeroDeletes(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)
	_, _, err := s.Incr(ctx, "f:a", 2, time.Minute)
	require.NoError(t, err)
	n, _, err := s.Incr(ctx, "f:a", -1, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Equal(t, int64(1), c.Exists(ctx, s.Key("f:a")).Val(), "a count above zero stays")
	n, reset, err := s.Incr(ctx, "f:a", -5, time.Minute)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.True(t, reset.IsZero(), "no counter left")
	assert.Zero(t, c.Exists(ctx, s.Key("f:a")).Val(), "the key is gone")

	// Through the Batcher too: an increment and its give-back in one
	// pipeline leave nothing.
	ops := []captchagate.Op{
		{Kind: captchagate.OpIncr, Key: "f:b", Delta: 1, Window: time.Minute},
		{Kind: captchagate.OpIncr, Key: "f:b", Delta: -1, Window: time.Minute},
	}
	s.Do(ctx, ops)
	require.NoError(t, ops[1].Err)
	assert.Zero(t, c.Exists(ctx, s.Key("f:b")).Val())

	clk.Advance(30 * time.Second)
	_, reset, err = s.Incr(ctx, "f:a", 1, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, clk.Now().Add(time.Minute).UnixMicro(), reset.UnixMicro(), "a new window")
}
