package captchagate_test

// Attacks that broke other captcha libraries, each a test that fails if its
// defence is removed. docs/security.md maps them to the threat model.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/memstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// Forged, truncated, bit-flipped and replayed tokens never open the gate.
func TestForgedTokensAreRefused(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "alice")
	tok := solve(t, a.mux, c.ID)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	require.NoError(t, err)
	raw[5] ^= 1 // one bit of the token's bytes
	flip := base64.RawURLEncoding.EncodeToString(raw)
	calls := a.calls.Load()
	for name, forged := range map[string]string{
		"bit flipped": flip,
		"truncated":   tok[:len(tok)-1],
		"extended":    tok + "A",
		"empty":       " ",
		"all zero":    strings.Repeat("A", len(tok)),
		"not base64":  strings.Repeat("!", len(tok)),
		"huge":        strings.Repeat("A", 100000),
	} {
		w := a.login(t, "alice", "right", captchagate.TokenHeader, forged)
		assert.Equal(t, http.StatusForbidden, w.Code, name)
		assert.Equal(t, "captcha_invalid", decodeError(t, w).Error, name)
	}
	assert.Equal(t, calls, a.calls.Load(), "no forged token reached the handler")
	// The real token still works once (none of the forgeries consumed it),
	// then never again.
	assert.Equal(t, http.StatusOK, a.login(t, "alice", "right", captchagate.TokenHeader, tok).Code)
	for range 5 {
		a.login(t, "alice", "wrong")
	}
	assert.Equal(t, http.StatusForbidden, a.login(t, "alice", "right", captchagate.TokenHeader, tok).Code, "replay")
}

// A solved captcha cannot be replayed, a wrong answer burns it (no second
// guess on one id), and empty or whitespace answers never verify, for known
// and unknown ids alike.
func TestCaptchaReplayAndEmptyAnswers(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "bob")
	for _, ans := range []string{"", " ", "\t\n"} {
		w := verify(a.mux, c.ID, ans)
		assert.Equal(t, http.StatusBadRequest, w.Code, "%q", ans)
		w = verify(a.mux, forgedID, ans)
		assert.Equal(t, http.StatusBadRequest, w.Code, "unknown id, %q", ans)
	}
	assert.Equal(t, http.StatusOK, verify(a.mux, c.ID, answer).Code, "empty answers did not burn it")
	assert.Equal(t, http.StatusForbidden, verify(a.mux, c.ID, answer).Code, "replay of a solved captcha")

	c = a.trip(t, "carol")
	assert.Equal(t, http.StatusForbidden, verify(a.mux, c.ID, "000000").Code)
	assert.Equal(t, http.StatusForbidden, verify(a.mux, c.ID, answer).Code, "wrong then right on one id")
	assert.Equal(t, http.StatusForbidden, verify(a.mux, forgedID, answer).Code, "unknown id")
}

// N parallel correct inline answers on one captcha: one request passes. N
// parallel wrong ones: none. N parallel bad logins under the threshold: the
// counter rises by exactly N.
func TestParallelAnswersAndCounts(t *testing.T) {
	t.Parallel()
	for round := 0; round < 5; round++ {
		a := newLoginApp(t, nil)
		c := a.trip(t, "dave")
		before := a.calls.Load()
		// A wrong password keeps dave tripped, so only the answer can let a
		// request through.
		body := fmt.Sprintf(`{"username":"dave","password":"wrong","captcha_id":%q,"captcha_answer":%q}`, c.ID, answer)
		together(40, func() {
			serve(a.mux, "POST", "/login", body, "Content-Type", "application/json")
		})
		assert.Equal(t, int64(1), a.calls.Load()-before, "round %d: one of 40 correct answers", round)

		c = a.trip(t, "erin")
		before = a.calls.Load()
		body = fmt.Sprintf(`{"username":"erin","password":"right","captcha_id":%q,"captcha_answer":"000000"}`, c.ID)
		together(40, func() {
			serve(a.mux, "POST", "/login", body, "Content-Type", "application/json")
		})
		assert.Equal(t, before, a.calls.Load(), "round %d: no wrong answer passes", round)
	}

	// Exactly N failures counted: with a threshold of 100 and 60 parallel
	// failures, 40 more pass and the 41st needs a captcha.
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "p", MaxFailures: 100, Keys: []captchagate.Key{{Source: captchagate.JSONField("u")}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	together(60, func() { serve(h, "POST", "/", `{"u":"x"}`) })
	for i := 0; i < 40; i++ {
		require.Equal(t, http.StatusUnauthorized, serve(h, "POST", "/", `{"u":"x"}`).Code, "failure %d", 61+i)
	}
	assert.Equal(t, http.StatusPreconditionRequired, serve(h, "POST", "/", `{"u":"x"}`).Code)
}

// A client cannot move another client's counter by naming its address.
func TestCannotMoveAnotherClientsCounter(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "p", MaxFailures: 2, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	for range 10 {
		serve(h, "POST", "/", "", "RemoteAddr", "198.51.100.66:4000",
			"X-Forwarded-For", "192.0.2.10", "X-Real-Ip", "192.0.2.10", "Forwarded", "for=192.0.2.10")
	}
	assert.Equal(t, http.StatusUnauthorized, serve(h, "POST", "/", "", "RemoteAddr", "192.0.2.10:1").Code,
		"the victim's counter did not move")
	assert.Equal(t, http.StatusPreconditionRequired, serve(h, "POST", "/", "", "RemoteAddr", "198.51.100.66:4001").Code,
		"the attacker's own did")
}

// Responses do not tell whether an account exists: an account the app knows
// and a name it does not get the same statuses, headers and body shape, and
// the captcha first appears at the same attempt.
func TestNoAccountEnumeration(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	accounts := map[string]string{"alice": "wonderland"}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(loginPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if pw, known := accounts[req.Username]; !known || pw != req.Password {
			w.WriteHeader(http.StatusUnauthorized) // one answer for both
			return
		}
		w.WriteHeader(http.StatusOK)
	})))
	shape := func(w *httptest.ResponseRecorder) string {
		if w.Body.Len() == 0 {
			return fmt.Sprint(w.Code, "(no body)")
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m))
		var keys []string
		for k, v := range m {
			keys = append(keys, k)
			if c, ok := v.(map[string]any); ok {
				for ck := range c {
					keys = append(keys, k+"."+ck)
				}
			}
		}
		var hdr []string
		for k := range w.Header() {
			hdr = append(hdr, k)
		}
		sort.Strings(keys)
		sort.Strings(hdr)
		return fmt.Sprint(w.Code, keys, hdr, m["error_code"], m["error_description"])
	}
	// Each attempt from its own address, so only the account key counts.
	attempts := func(user string) []string {
		var out []string
		for i := range 8 {
			w := serve(mux, "POST", "/login", `{"username":"`+user+`","password":"wrong"}`,
				"Content-Type", "application/json", "RemoteAddr", fmt.Sprintf("198.51.100.%d:1", i+1))
			out = append(out, shape(w))
		}
		return out
	}
	known, unknown := attempts("alice"), attempts("no-such-user-7f3a")
	assert.Equal(t, known, unknown)
	assert.True(t, strings.HasPrefix(known[5], "428"), "the sixth attempt of either needs a captcha: %v", known)
}

// Huge headers and absurd query parameters get a clear answer, never a 500.
func TestHostileHeadersAndQueries(t *testing.T) {
	t.Parallel()
	a := newLoginApp(t, nil)
	c := a.trip(t, "frank")
	big := strings.Repeat("x", 1<<20)
	for _, path := range []string{
		"/captcha/" + c.ID + ".wav?lang=" + big[:10000],
		"/captcha/" + c.ID + ".png?width=99999999&height=-1&lang=en&lang=zz",
		"/captcha/" + big[:5000] + ".png",
		"/captcha/" + c.ID + ".wav?lang=%ff%00",
		"/captcha/refresh?captcha_id=" + big[:5000],
	} {
		method := "GET"
		if strings.Contains(path, "refresh") {
			method = "POST"
		}
		w := serve(a.mux, method, path, "")
		assert.Less(t, w.Code, 500, path[:min(len(path), 60)])
		if w.Code >= 400 {
			decodeError(t, w)
		}
	}
	w := serve(a.mux, "GET", "/captcha/"+c.ID+".png?width=99999999", "")
	require.Equal(t, http.StatusOK, w.Code)
	w = a.login(t, "frank", "right", "X-Captcha-Token", big, "X-Device", big)
	assert.Equal(t, http.StatusForbidden, w.Code)
}

// Floods: captcha creations from rotating clients and unique failing keys
// keep the in-memory store within its bound while other routes answer.
// Default 100k requests each (10k with -short); CAPTCHAGATE_FLOOD=1000000
// for the full million. The heap is reported.
func TestFloodsStayBounded(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	if v := os.Getenv("CAPTCHAGATE_FLOOD"); v != "" {
		fmt.Sscan(v, &n)
	}
	const maxEntries = 20_000
	clk := storetest.NewClock()
	store := memstore.New(memstore.Options{MaxEntries: maxEntries, Now: clk.Now, CleanupInterval: -1})
	defer store.Close()
	g, _ := newGate(t, func(c *captchagate.Config) {
		c.Store = store
		c.Now = clk.Now
		c.CreateBurst = 5
	})
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{
		{Source: captchagate.JSONField("username")}}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var statuses [600]atomic.Int64
	var next atomic.Int64
	// Another route keeps answering during the floods: it is asked until the
	// flood ends, and only the answers given while it ran count.
	var healthOK, healthDuring, healthFailed atomic.Int64
	flooding := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-flooding
		for next.Load() <= int64(n) {
			ok := serve(mux, "GET", "/health", "").Code == http.StatusOK
			if next.Load() > int64(n) {
				break // the flood ended while this one ran
			}
			healthDuring.Add(1)
			if ok {
				healthOK.Add(1)
			} else {
				healthFailed.Add(1)
			}
			runtime.Gosched()
		}
	}()
	flood := func(i int) {
		// A new client address for each creation request; a new username
		// for each failing login.
		ip := fmt.Sprintf("%d.%d.%d.%d:1", 10+i>>24&0x7f, i>>16&0xff, i>>8&0xff, i&0xff)
		w := serve(mux, "POST", "/captcha/new", `{"policy":"login"}`, "Content-Type", "application/json", "RemoteAddr", ip)
		statuses[w.Code].Add(1)
		w = serve(mux, "POST", "/login", fmt.Sprintf(`{"username":"u%d"}`, i), "Content-Type", "application/json")
		statuses[w.Code].Add(1)
	}
	workers := 4
	close(flooding)
	together(workers, func() {
		for {
			i := int(next.Add(1))
			if i > n {
				return
			}
			flood(i)
		}
	})
	<-done
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - int64(base)
	t.Logf("%d creations from rotating clients + %d unique failing keys: store entries %d (bound %d), heap grew %.1f MB; statuses 200:%d 401:%d 503:%d",
		n, n, store.Len(), maxEntries, float64(grown)/1e6, statuses[200].Load(), statuses[401].Load(), statuses[503].Load())
	assert.LessOrEqual(t, store.Len(), maxEntries, "the store holds at most its bound")
	assert.Less(t, grown, int64(64<<20), "heap stays bounded (entries are refused, not kept)")
	t.Logf("health checks during the flood: %d", healthDuring.Load())
	assert.GreaterOrEqual(t, healthDuring.Load(), int64(10), "the other route was asked while the flood ran")
	assert.Zero(t, healthFailed.Load(), "the other route answered every time")
	assert.Equal(t, healthDuring.Load(), healthOK.Load())
	assert.Zero(t, statuses[500].Load())
	// Once the flood's entries expire, newcomers are served again.
	clk.Advance(time.Hour)
	assert.Equal(t, http.StatusOK, serve(mux, "POST", "/captcha/new", `{"policy":"login"}`, "Content-Type", "application/json", "RemoteAddr", "203.0.113.5:1").Code)
}
