package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// floodResult is what a unique-key flood did to a gate on a Redis with a
// small maxmemory under one eviction policy.
type floodResult struct {
	policy       string
	flood        int         // flood requests sent
	floodStatus  map[int]int // their answers
	fullAt       int         // the first flood request answered other than 401, a write refused (0: none)
	evicted      int64       // keys Redis evicted
	victimCheck  string      // the attacked account, by Guard.Check: tripped, open or unavailable
	victimStatus int         // the attacked account's next login, with the right password and no captcha
	newcomers    map[int]int // answers to new users (right password) after the flood
	usedMemory   int64       // Redis's used_memory after the flood
	keys         int64       // DBSIZE after the flood
	took         time.Duration
}

// floodMaxMemory is the maxmemory of the flood test: about 1 MB above an
// empty server's own use.
const floodMaxMemory = "2mb"

// flood runs a unique-key flood against a gate on a fresh Redis with
// maxmemory floodMaxMemory and maxmemory-policy policy: an attacked account
// (alice, tripped by five failures) first, then n failed logins of unique
// usernames from unique addresses, then alice and new users.
func flood(t *testing.T, policy string, n int) floodResult {
	start := time.Now()
	srv := redistest.Start(t)
	admin := client(t, srv)
	ctx := context.Background()
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", policy).Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", floodMaxMemory).Err())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, PoolSize: 16})
	t.Cleanup(func() { c.Close() })
	clk := storetest.NewClock()
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := redisstore.New(c, redisstore.Options{Now: clk.Now, Logger: quietLog})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	g, err := captchagate.New(captchagate.Config{
		Secret: secret, Store: s, Challenge: gatetest.KnownDigits{}, Now: clk.Now, CreateBurst: 1 << 20,
		Logger: quietLog, StoreTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	guard, err := g.NewGuard(loginPolicy)
	require.NoError(t, err)
	h := guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "ok") {
			w.Write([]byte(`{"ok":true}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	request := func(addr, user, pass string) *http.Request {
		q := "/login"
		if pass == "right" {
			q += "?ok"
		}
		r := httptest.NewRequest("POST", q, strings.NewReader(login(user, pass)))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = addr + ":4321"
		return r
	}
	serve := func(addr, user, pass string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request(addr, user, pass))
		return w.Code
	}
	const victim, victimAddr = "alice", "203.0.113.5"
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, serve(victimAddr, victim, "wrong"))
	}
	require.ErrorIs(t, guard.Check(request(victimAddr, victim, "right")), captchagate.ErrCaptchaRequired)

	res := floodResult{policy: policy, flood: n, floodStatus: map[int]int{}, newcomers: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				code := serve(addr, "user"+strconv.Itoa(i), "wrong")
				mu.Lock()
				res.floodStatus[code]++
				if code != http.StatusUnauthorized && res.fullAt == 0 {
					res.fullAt = i + 1
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.Flush(ctx))

	info := func(section, field string) int64 {
		txt := admin.Info(ctx, section).Val()
		for line := range strings.Lines(txt) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return -1
	}
	res.evicted = info("stats", "evicted_keys")
	res.usedMemory = info("memory", "used_memory")
	res.keys = admin.DBSize(ctx).Val()

	switch err := guard.Check(request(victimAddr, victim, "right")); {
	case errors.Is(err, captchagate.ErrCaptchaRequired):
		res.victimCheck = "tripped"
	case err == nil:
		res.victimCheck = "open"
	case errors.Is(err, captchagate.ErrStoreUnavailable):
		res.victimCheck = "unavailable"
	default:
		res.victimCheck = err.Error()
	}
	res.victimStatus = serve(victimAddr, victim, "right")
	if policy == redisstore.SafeEvictionPolicy && res.fullAt > 0 {
		// A write refused for memory is told apart from other failures; a
		// read still works.
		_, _, err := s.Incr(ctx, "f:new", 1, time.Minute)
		assert.ErrorIs(t, err, redisstore.ErrFull)
		assert.ErrorIs(t, s.Put(ctx, "c:new", []byte("v"), time.Minute), redisstore.ErrFull)
		_, _, err = s.Incr(ctx, "f:new", 0, time.Minute)
		assert.NoError(t, err)
	}
	for i := range 20 {
		res.newcomers[serve("198.51.100."+strconv.Itoa(i+1), "newcomer"+strconv.Itoa(i), "right")]++
	}
	res.took = time.Since(start)
	return res
}

// statuses formats a tally of answers, "401×900 503×100".
func statuses(m map[int]int) string {
	var b strings.Builder
	for _, code := range []int{200, 401, 428, 429, 503} {
		if m[code] > 0 {
			fmt.Fprintf(&b, "%d×%d ", code, m[code])
		}
	}
	for code, k := range m {
		switch code {
		case 200, 401, 428, 429, 503:
		default:
			fmt.Fprintf(&b, "%d×%d ", code, k)
		}
	}
	return strings.TrimSpace(b.String())
}

// What a unique-key flood does to the gate's state on a Redis with a small
// maxmemory, under noeviction (the safe setting: New warns on any other)
// and three policies that evict. Under noeviction nothing is evicted: the
// attacked account stays tripped (no login without a captcha), and once
// memory is full every write is refused, so new users get 503 until the
// flood's counters expire. The evicting policies keep serving newcomers by
// dropping counters, the attacked account's among them: it is open again.
func TestEvictionUnderFlood(t *testing.T) {
	const n = 12000 // about three times what fits in floodMaxMemory
	var results []floodResult
	for _, policy := range []string{"noeviction", "allkeys-lru", "volatile-lru", "volatile-ttl"} {
		results = append(results, flood(t, policy, n))
	}
	t.Logf("unique-key flood: %d failed logins, unique usernames and addresses; maxmemory %s", n, floodMaxMemory)
	t.Logf("| maxmemory-policy | flood answers | first refusal after | keys evicted | keys left | used_memory | attacked account (Check) | its next login | 20 newcomers | took |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		t.Logf("| %s | %s | %d | %d | %d | %.2f MB | %s | %d | %s | %v |", r.policy, statuses(r.floodStatus), r.fullAt, r.evicted,
			r.keys, float64(r.usedMemory)/(1<<20), r.victimCheck, r.victimStatus, statuses(r.newcomers), r.took.Round(10*time.Millisecond))
	}

	safe := results[0]
	assert.Zero(t, safe.evicted, "noeviction evicts nothing")
	assert.NotZero(t, safe.fullAt, "the flood filled memory (else the test proves nothing)")
	assert.Equal(t, "tripped", safe.victimCheck, "noeviction: the attacked account stays tripped")
	assert.NotEqual(t, http.StatusOK, safe.victimStatus, "noeviction: the attacked account is not let in without a captcha")
	assert.Zero(t, safe.newcomers[http.StatusOK]+safe.floodStatus[http.StatusOK], "noeviction: nothing is let through uncounted")
	// Today's cost of the safe setting, said honestly: once Redis is full,
	// writes fail (OOM) and new users are refused (503), not asked for a
	// captcha (all 20 in every run so far; a write may squeeze in when
	// Redis frees a client buffer). If this changes, update docs/redis.md.
	assert.NotZero(t, safe.newcomers[http.StatusServiceUnavailable], "noeviction: newcomers get 503 once memory is full")
	for _, r := range results[1:] {
		assert.NotZero(t, r.evicted, "%s evicted keys under the flood", r.policy)
	}
}
