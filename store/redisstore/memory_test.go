package redisstore_test

import (
	"context"
	"encoding/json"
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
	solved       int         // newcomers asked for a captcha who solved it and were let in with the token
	victimSolved bool        // the attacked account, asked for a captcha, solved it and was let in
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
	// solveThrough asks as addr and user, solves the captcha it is asked
	// for, and retries with the token: whether that lets it in.
	captchas := g.Handler()
	solveThrough := func(addr, user string) bool {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request(addr, user, "right"))
		var e struct{ Captcha struct{ ID string } }
		if w.Code != http.StatusPreconditionRequired || json.Unmarshal(w.Body.Bytes(), &e) != nil {
			return false
		}
		v := httptest.NewRequest("POST", "/captcha/verify", strings.NewReader(`{"captcha_id":"`+e.Captcha.ID+`","captcha_answer":"`+answer+`"}`))
		v.Header.Set("Content-Type", "application/json")
		v.RemoteAddr = addr + ":4321"
		wv := httptest.NewRecorder()
		captchas.ServeHTTP(wv, v)
		var tok struct {
			CaptchaToken string `json:"captcha_token"`
		}
		if wv.Code != http.StatusOK || json.Unmarshal(wv.Body.Bytes(), &tok) != nil {
			return false
		}
		r := request(addr, user, "right")
		r.Header.Set(captchagate.TokenHeader, tok.CaptchaToken)
		wr := httptest.NewRecorder()
		h.ServeHTTP(wr, r)
		return wr.Code == http.StatusOK
	}
	// A counter and a bucket that exist before memory is full.
	_, _, err = s.Incr(ctx, "f:before", 1, time.Hour)
	require.NoError(t, err)
	_, _, err = s.Allow(ctx, "r:before", time.Minute, 5, true)
	require.NoError(t, err)
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
		assert.ErrorIs(t, err, captchagate.ErrStoreFull)
		assert.ErrorIs(t, s.Put(ctx, "c:new", []byte("v"), time.Minute), redisstore.ErrFull)
		_, _, err = s.Incr(ctx, "f:new", 0, time.Minute)
		assert.NoError(t, err)
		// What exists goes on counting, both ways; a new bucket is refused.
		n, _, err := s.Incr(ctx, "f:before", 1, time.Hour)
		assert.NoError(t, err)
		assert.Equal(t, int64(2), n)
		n, _, err = s.Incr(ctx, "f:before", -1, time.Hour)
		assert.NoError(t, err)
		assert.Equal(t, int64(1), n)
		ok, _, err := s.Allow(ctx, "r:before", time.Minute, 5, true)
		assert.True(t, ok)
		assert.NoError(t, err)
		_, _, err = s.Allow(ctx, "r:new", time.Minute, 5, true)
		assert.ErrorIs(t, err, captchagate.ErrStoreFull)
	}
	for i := range 20 {
		code := serve("198.51.100."+strconv.Itoa(i+1), "newcomer"+strconv.Itoa(i), "right")
		res.newcomers[code]++
		if code == http.StatusPreconditionRequired && solveThrough("198.51.100."+strconv.Itoa(i+1), "newcomer"+strconv.Itoa(i)) {
			res.solved++
		}
	}
	res.victimSolved = res.victimStatus == http.StatusPreconditionRequired && solveThrough(victimAddr, victim)
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
// memory is full nothing new is written, yet nobody is refused: newcomers
// and flood requests alike are asked for a captcha (sealed: no key), which
// they can solve and be let in with. The evicting policies keep serving
// newcomers by dropping counters, the attacked account's among them: it is
// open again.
func TestEvictionUnderFlood(t *testing.T) {
	const n = 12000 // about three times what fits in floodMaxMemory
	var results []floodResult
	for _, policy := range []string{"noeviction", "allkeys-lru", "volatile-lru", "volatile-ttl"} {
		results = append(results, flood(t, policy, n))
	}
	t.Logf("unique-key flood: %d failed logins, unique usernames and addresses; maxmemory %s", n, floodMaxMemory)
	t.Logf("| maxmemory-policy | flood answers | first refusal after | keys evicted | keys left | used_memory | attacked account (Check) | its next login | it solves and is let in | 20 newcomers | solve and are let in | took |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		t.Logf("| %s | %s | %d | %d | %d | %.2f MB | %s | %d | %v | %s | %d | %v |", r.policy, statuses(r.floodStatus), r.fullAt, r.evicted,
			r.keys, float64(r.usedMemory)/(1<<20), r.victimCheck, r.victimStatus, r.victimSolved, statuses(r.newcomers), r.solved, r.took.Round(10*time.Millisecond))
	}

	safe := results[0]
	assert.Zero(t, safe.evicted, "noeviction evicts nothing")
	assert.NotZero(t, safe.fullAt, "the flood filled memory (else the test proves nothing)")
	assert.Equal(t, "tripped", safe.victimCheck, "noeviction: the attacked account stays tripped")
	assert.NotEqual(t, http.StatusOK, safe.victimStatus, "noeviction: the attacked account is not let in without a captcha")
	assert.Zero(t, safe.newcomers[http.StatusOK]+safe.floodStatus[http.StatusOK], "noeviction: nothing is let through uncounted")
	// At maxmemory nothing new is written, yet nobody is refused: a
	// newcomer (whose counters cannot be created) is asked for a captcha,
	// which is sealed (no key), solves it (a spend mark, in space the marks
	// reserved) and is let in with its sealed token; the attacked account
	// still counts (its counter exists) and passes only with a captcha.
	assert.Zero(t, safe.newcomers[http.StatusServiceUnavailable]+safe.floodStatus[http.StatusServiceUnavailable], "noeviction: no 503")
	assert.Equal(t, 20, safe.newcomers[http.StatusPreconditionRequired]+safe.newcomers[http.StatusUnauthorized]+safe.newcomers[http.StatusOK], "noeviction: newcomers are asked for a captcha or served")
	assert.NotZero(t, safe.newcomers[http.StatusPreconditionRequired], "noeviction: memory was full for newcomers (else the test proves nothing)")
	assert.Equal(t, safe.newcomers[http.StatusPreconditionRequired], safe.solved, "noeviction: every newcomer asked for a captcha solves it and is let in")
	assert.True(t, safe.victimSolved, "noeviction: the attacked account passes with a captcha")
	for _, r := range results[1:] {
		assert.NotZero(t, r.evicted, "%s evicted keys under the flood", r.policy)
	}
}
