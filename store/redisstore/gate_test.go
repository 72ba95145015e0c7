package redisstore_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
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

const answer = gatetest.Answer

var secret = gatetest.Secret

// loginPolicy counts the username per client (username+IP, reset on
// success: an account-wide key never resets), which is what these tests of
// resets written behind need.
var loginPolicy = captchagate.Policy{
	Name: "login",
	Keys: []captchagate.Key{
		{Source: captchagate.Combine(captchagate.JSONField("username").Fold(), captchagate.ClientIP()), ResetOnSuccess: true},
		{Source: captchagate.ClientIP(), MaxFailures: 100, Window: time.Hour},
	},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

var sendPolicy = captchagate.Policy{
	Name: "sms",
	Keys: []captchagate.Key{
		{Source: captchagate.Phone(captchagate.JSONField("phone")).Source, Rate: 1.0 / 60, Burst: 2, Ceiling: 10, CeilingWindow: 24 * time.Hour},
	},
}

// instance is one app instance: its own client, store and gate, on its own
// httptest server, sharing Redis with the others.
type instance struct {
	srv     *httptest.Server
	gate    *captchagate.Gate
	store   *redisstore.Store
	client  *redis.Client
	reached atomic.Int64 // requests that reached the login handler
}

// newInstance starts an instance. Its requests may wait on Redis for 10s
// (Config.StoreTimeout): these tests count, and a loaded machine must not
// turn into store failures; the fault tests set a budget of their own. A
// hook, if given, sees the commands of the instance's client.
func newInstance(t *testing.T, addr, prefix string, clk *storetest.Clock, mutate func(*captchagate.Config), hooks ...redis.Hook) *instance {
	t.Helper()
	return newInstanceWith(t, addr, redisstore.Options{Prefix: prefix, Now: clk.Now}, clk, mutate, hooks...)
}

// newInstanceWith starts an instance whose store has options o.
func newInstanceWith(t *testing.T, addr string, o redisstore.Options, clk *storetest.Clock, mutate func(*captchagate.Config), hooks ...redis.Hook) *instance {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	for _, h := range hooks {
		c.AddHook(h)
	}
	store, err := redisstore.New(c, o)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	cfg := captchagate.Config{
		Secret: secret, Store: store, Challenge: gatetest.KnownDigits{}, Now: clk.Now, CreateBurst: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := captchagate.New(cfg)
	require.NoError(t, err)
	in := &instance{gate: g, store: store, client: c}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(loginPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.reached.Add(1)
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})))
	mux.Handle("POST /sms", g.Guard(sendPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"sent":true}`))
	})))
	in.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		in.srv.Close()
		g.Close()
		c.Close()
	})
	return in
}

type reply struct {
	status int
	body   map[string]any
	raw    string
}

func (in *instance) post(t *testing.T, path, body string, header ...string) reply {
	t.Helper()
	rp, err := in.tryPost(path, body, header...)
	require.NoError(t, err)
	return rp
}

// tryPost is post for a condition polled by require.Eventually, which runs
// it on a goroutine of its own that may outlive the test: it reports a
// failed request as its error, never to t.
func (in *instance) tryPost(path, body string, header ...string) (reply, error) {
	req, err := http.NewRequest("POST", in.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := in.srv.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	rp := reply{status: resp.StatusCode, raw: string(b)}
	json.Unmarshal(b, &rp.body)
	return rp, nil
}

// answers reports whether a POST of body to path is answered status (for
// require.Eventually; see tryPost).
func (in *instance) answers(path, body string, status int) bool {
	rp, err := in.tryPost(path, body)
	return err == nil && rp.status == status
}

func (rp reply) captchaID(t *testing.T) string {
	t.Helper()
	c, ok := rp.body["captcha"].(map[string]any)
	require.True(t, ok, "no captcha in %s", rp.raw)
	return c["id"].(string)
}

func login(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

var together = gatetest.Together

// alternate returns a picker that hands out a and b in turn.
func alternate(a, b *instance) func() *instance {
	var i atomic.Int64
	return func() *instance {
		if i.Add(1)%2 == 0 {
			return b
		}
		return a
	}
}

// flush waits until what in's store was handed so far (the write-behind of
// its last requests' give-backs and resets) is in Redis.
func (in *instance) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, in.store.Flush(ctx))
}

// Two instances behind a load balancer act as one gate.
func TestTwoInstancesShareOneGate(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "two:", clk, nil)
	b := newInstance(t, srv.Addr, "two:", clk, nil)

	// Failures on A and B add up: 3 + 2 reach the threshold of 5.
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, a.post(t, "/login", login("alice", "wrong")).status)
	}
	for range 2 {
		assert.Equal(t, http.StatusUnauthorized, b.post(t, "/login", login("alice", "wrong")).status)
	}
	rp := a.post(t, "/login", login("alice", "right"))
	require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
	assert.Equal(t, "captcha_required", rp.body["error"])
	id := rp.captchaID(t)
	rpB := b.post(t, "/login", login("alice", "right"))
	require.Equal(t, http.StatusPreconditionRequired, rpB.status, "B sees A's count too")

	// A's captcha renders on B and verifies there.
	resp, err := b.srv.Client().Get(b.srv.URL + "/captcha/" + id + ".png")
	require.NoError(t, err)
	png, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	assert.True(t, strings.HasPrefix(string(png), "\x89PNG"))
	v := b.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
	require.Equal(t, http.StatusOK, v.status, v.raw)
	tok := v.body["captcha_token"].(string)
	// The captcha is used up on A as well.
	again := a.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
	assert.Equal(t, http.StatusForbidden, again.status)

	// The token, minted on B, is consumed once across both instances: of 40
	// concurrent retries (wrong password, so alice stays tripped), one
	// reaches the handler.
	before := a.reached.Load() + b.reached.Load()
	var passed atomic.Int64
	next := alternate(a, b)
	together(40, func() {
		if next().post(t, "/login", login("alice", "wrong"), captchagate.TokenHeader, tok).status == http.StatusUnauthorized {
			passed.Add(1)
		}
	})
	assert.Equal(t, int64(1), passed.Load(), "one retry per token across instances")
	assert.Equal(t, int64(1), a.reached.Load()+b.reached.Load()-before)

	// A captcha from B, solved on A, lets alice in on B; the success resets
	// her counter for both: at once on B, on A once B has written it behind.
	id = b.post(t, "/login", login("alice", "right")).captchaID(t)
	v = a.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
	require.Equal(t, http.StatusOK, v.status, v.raw)
	assert.Equal(t, http.StatusOK, b.post(t, "/login", login("alice", "right"), captchagate.TokenHeader, v.body["captcha_token"].(string)).status)
	b.flush(t)
	assert.Equal(t, http.StatusOK, a.post(t, "/login", login("alice", "right")).status)
}

// What the next request sees of a success's reset, which the store writes
// behind: on the same instance, always; on another, once the writer has sent
// it, which Flush waits for. Here a hook holds B's resets back until the
// test lets them go, so A's first look comes before B's write.
func TestResetWrittenBehind(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	held := newHold(hasCommand("del"))
	t.Cleanup(held.open)
	a := newInstance(t, srv.Addr, "behind:", clk, nil)
	b := newInstanceWith(t, srv.Addr, redisstore.Options{Prefix: "behind:", Now: clk.Now, Timeout: time.Minute}, clk, nil, held)

	// trip fails alice's password five times on in and returns a token for
	// her next try.
	trip := func(t *testing.T, in *instance) string {
		t.Helper()
		for range 5 {
			require.Equal(t, http.StatusUnauthorized, in.post(t, "/login", login("alice", "wrong")).status)
		}
		rp := in.post(t, "/login", login("alice", "right"))
		require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
		v := in.post(t, "/captcha/verify", `{"captcha_id":"`+rp.captchaID(t)+`","captcha_answer":"`+answer+`"}`)
		require.Equal(t, http.StatusOK, v.status, v.raw)
		return v.body["captcha_token"].(string)
	}

	t.Run("same instance", func(t *testing.T) {
		for round := range 10 {
			tok := trip(t, a)
			require.Equal(t, http.StatusOK, a.post(t, "/login", login("alice", "right"), captchagate.TokenHeader, tok).status, "round %d", round)
			// No Flush: A's next counting follows A's reset.
			require.Equal(t, http.StatusOK, a.post(t, "/login", login("alice", "right")).status, "round %d", round)
		}
		a.flush(t)
	})
	t.Run("another instance", func(t *testing.T) {
		tok := trip(t, b)
		require.Equal(t, http.StatusOK, b.post(t, "/login", login("alice", "right"), captchagate.TokenHeader, tok).status)
		<-held.held // B's writer has the reset in hand; Redis has not seen it
		assert.Equal(t, http.StatusPreconditionRequired, a.post(t, "/login", login("alice", "right")).status,
			"A does not see B's reset before B writes it")
		held.open()
		b.flush(t)
		assert.Equal(t, http.StatusOK, a.post(t, "/login", login("alice", "right")).status, "A sees it once B has written it")
	})
}

// Concurrent bad logins spread over two instances never let more than the
// threshold reach the handler.
func TestThresholdAcrossInstancesUnderConcurrency(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "conc:", clk, nil)
	b := newInstance(t, srv.Addr, "conc:", clk, nil)
	next := alternate(a, b)
	for round := 0; round < 5; round++ {
		user := "victim" + string(rune('a'+round))
		before := a.reached.Load() + b.reached.Load()
		together(60, func() {
			next().post(t, "/login", login(user, "wrong"))
		})
		assert.LessOrEqual(t, a.reached.Load()+b.reached.Load()-before, int64(5), "round %d", round)
	}
	// Send rate: burst 2 across both instances.
	var sent atomic.Int64
	together(40, func() {
		if next().post(t, "/sms", `{"phone":"+1 555 0100"}`).status == http.StatusOK {
			sent.Add(1)
		}
	})
	assert.Equal(t, int64(2), sent.Load())
}

// Usernames, phones, emails and addresses reach Redis only as keyed hashes.
func TestNoPersonalDataInRedis(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "pii:", clk, nil)
	user := "alice.liddell@example.com"
	for range 6 {
		a.post(t, "/login", login(user, "wrong"))
	}
	for range 4 {
		a.post(t, "/sms", `{"phone":"+1 555 0199"}`)
	}
	a.flush(t) // the give-backs written behind are in Redis too
	ctx := context.Background()
	keys, err := a.client.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	var dump strings.Builder
	for _, k := range keys {
		dump.WriteString(k + "\n")
		if strings.HasSuffix(k, "{marks}:e") {
			// The spend marks' epoch is kept: one random number (left out
			// of the dump, where its digits could read as a phone's).
			_, err := a.client.Get(ctx, k).Uint64()
			require.NoError(t, err)
			assert.Equal(t, time.Duration(-1), a.client.PTTL(ctx, k).Val(), "no TTL")
			continue
		}
		switch typ := a.client.Type(ctx, k).Val(); typ {
		case "string":
			dump.WriteString(a.client.Get(ctx, k).Val() + "\n")
		case "hash":
			for f, v := range a.client.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + "\n")
			}
		default:
			t.Fatalf("unexpected %s key %s", typ, k)
		}
		ttl, err := a.client.Do(ctx, "PTTL", k).Int64()
		require.NoError(t, err)
		assert.Greater(t, ttl, int64(0), "key %s has no TTL", k)
	}
	for _, raw := range []string{"alice", "liddell", "example.com", "555", "0199", "127.0.0.1", "\x7f\x00\x00\x01"} {
		assert.NotContains(t, strings.ToLower(dump.String()), raw)
	}
}

// A client that hangs up does not cancel the counting of its failure.
func TestCountingOutlivesHangUp(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "hang:", clk, nil)
	h := a.srv.Config.Handler
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("POST", "/login", strings.NewReader(login("bob", "wrong"))).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:4711" // the address a.post comes from
		w := httptest.NewRecorder()
		cancel() // the client is gone before the gate counts
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
	}
	assert.Equal(t, http.StatusPreconditionRequired, a.post(t, "/login", login("bob", "right")).status,
		"all five failures were counted")
}

// faultGate is an instance with a short store budget.
func faultInstance(t *testing.T, srv *redistest.Server, prefix string, mode captchagate.StoreFailMode) *instance {
	return newInstance(t, srv.Addr, prefix, storetest.NewClock(), func(c *captchagate.Config) {
		// The default budget: the first request after a restart reloads the
		// scripts (a second round trip), which under -race on a loaded
		// machine took more than 100ms once in 4 runs.
		c.StoreTimeout = 250 * time.Millisecond
		c.StoreFailure = mode
	})
}

// With Redis stopped, paused or restarted, the gate follows its failure
// policy, answers JSON within its budget, and recovers by itself.
func TestRedisFaults(t *testing.T) {
	srv := redistest.Start(t)
	closed := faultInstance(t, srv, "fault:", captchagate.FailClosed)
	open := faultInstance(t, srv, "fault:", captchagate.FailOpen)

	// A token and a pending captcha minted while Redis is up.
	for range 5 {
		closed.post(t, "/login", login("carol", "wrong"))
	}
	id := closed.post(t, "/login", login("carol", "right")).captchaID(t)
	id2 := closed.post(t, "/login", login("carol", "right")).captchaID(t)
	tok := closed.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`).body["captcha_token"].(string)

	baseline := runtime.NumGoroutine()
	check := func(t *testing.T, state string) {
		// Fail closed: no login passes uncounted, no verification, no token.
		start := time.Now()
		rp := closed.post(t, "/login", login("dave", "right"))
		assert.Equal(t, http.StatusServiceUnavailable, rp.status, "%s: %s", state, rp.raw)
		assert.Equal(t, "service_unavailable", rp.body["error"], state)
		assert.NotContains(t, rp.raw, "redis", "%s: no store error text reaches the client", state)
		assert.NotContains(t, rp.raw, "dial", state)
		rp = closed.post(t, "/login", login("carol", "right"), captchagate.TokenHeader, tok)
		assert.Equal(t, http.StatusServiceUnavailable, rp.status, "%s: a token is never accepted without the store", state)
		rp = closed.post(t, "/captcha/verify", `{"captcha_id":"`+id2+`","captcha_answer":"`+answer+`"}`)
		assert.Equal(t, http.StatusServiceUnavailable, rp.status, "%s: no verification without the store", state)
		resp, err := closed.srv.Client().Get(closed.srv.URL + "/captcha/" + id2 + ".png")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, state)
		// Fail open: the login passes, uncounted; verification still fails.
		assert.Equal(t, http.StatusOK, open.post(t, "/login", login("dave", "right")).status, state)
		rp = open.post(t, "/captcha/verify", `{"captcha_id":"`+id2+`","captcha_answer":"`+answer+`"}`)
		assert.Equal(t, http.StatusServiceUnavailable, rp.status, state)
		// Each request waited at most its budget (a few store calls of 100ms
		// at most, never the client's 5s read timeout); the bound is loose on
		// purpose, it only catches a hang.
		assert.Less(t, time.Since(start), 4*time.Second, state)
	}

	t.Run("stopped", func(t *testing.T) {
		srv.Stop()
		check(t, "stopped")
	})
	t.Run("restarted", func(t *testing.T) {
		srv.Restart()
		// Back by itself: no new client, no new gate. The restart lost the
		// data (no persistence) and the script cache. The first request
		// reconnects and reloads the scripts within its 250ms budget, which
		// a loaded machine (CI under -race, with other tests) can miss:
		// recovery is asked within 10 s, and is then steady.
		deadline := time.Now().Add(10 * time.Second)
		rp := closed.post(t, "/login", login("carol", "right"))
		for rp.status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			rp = closed.post(t, "/login", login("carol", "right"))
		}
		assert.Equal(t, http.StatusOK, rp.status, rp.raw)
		rp = closed.post(t, "/login", login("carol", "right"))
		assert.Equal(t, http.StatusOK, rp.status, "steady once back: %s", rp.raw)
		rp = closed.post(t, "/login", login("erin", "wrong"))
		assert.Equal(t, http.StatusUnauthorized, rp.status, rp.raw)
	})
	t.Run("paused", func(t *testing.T) {
		srv.Pause()
		// A burst of requests while Redis hangs: each one answers within its
		// budget and none waits on another.
		var slow atomic.Int64
		together(20, func() {
			start := time.Now()
			rp := closed.post(t, "/login", login("frank", "right"))
			if rp.status != http.StatusServiceUnavailable || time.Since(start) > 4*time.Second {
				slow.Add(1)
			}
		})
		assert.Zero(t, slow.Load())
		check(t, "paused")
		srv.Resume()
		resumed := time.Now()
		require.Eventually(t, func() bool { return closed.answers("/login", login("frank", "right"), http.StatusOK) },
			30*time.Second, 50*time.Millisecond, "recovers after the pause")
		t.Logf("recovered %v after the pause", time.Since(resumed).Round(time.Millisecond))
	})
	t.Run("no goroutine leak", func(t *testing.T) {
		// Requests in flight during the faults are all finished; what is left
		// are the clients' pools and the servers' idle connections.
		closed.srv.CloseClientConnections()
		open.srv.CloseClientConnections()
		assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline+4 }, 10*time.Second, 50*time.Millisecond,
			"goroutines: %d, baseline %d", runtime.NumGoroutine(), baseline)
	})
}

// Requests keep flowing while Redis stops, comes back empty, and hangs: every
// answer is one the protocol defines (never a 500), no request hangs, a token
// is never accepted without the store, and the gate recovers by itself.
func TestRedisFaultsUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	var tokenAccepted atomic.Int64
	in := newInstance(t, srv.Addr, "load:", storetest.NewClock(), func(c *captchagate.Config) {
		c.StoreTimeout = 100 * time.Millisecond
		c.OnEvent = func(e captchagate.Event) {
			if e.Kind == captchagate.EventTokenAccepted {
				tokenAccepted.Add(1)
			}
		}
	})
	for range 5 {
		in.post(t, "/login", login("grace", "wrong"))
	}
	id := in.post(t, "/login", login("grace", "right")).captchaID(t)
	tok := in.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`).body["captcha_token"].(string)
	require.Equal(t, http.StatusUnauthorized, in.post(t, "/login", login("grace", "wrong"), captchagate.TokenHeader, tok).status,
		"the token's one use")
	require.Equal(t, int64(1), tokenAccepted.Load())

	var done atomic.Bool
	var answered, bad atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				start := time.Now()
				var rp reply
				switch w {
				case 0: // a spent token must never be accepted, whatever Redis does
					rp = in.post(t, "/login", login("grace", "wrong"), captchagate.TokenHeader, tok)
				case 1:
					rp = in.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
				default:
					rp = in.post(t, "/login", login("user"+string(rune('a'+i%20)), "wrong"))
				}
				switch rp.status {
				case http.StatusUnauthorized, http.StatusPreconditionRequired, http.StatusForbidden, http.StatusServiceUnavailable:
				default:
					bad.Add(1)
					t.Logf("unexpected %d %s", rp.status, rp.raw)
				}
				if rp.status != http.StatusUnauthorized && rp.body["error"] == nil {
					bad.Add(1)
					t.Logf("not a JSON error: %d %s", rp.status, rp.raw)
				}
				if time.Since(start) > 4*time.Second {
					bad.Add(1)
					t.Logf("request took %v", time.Since(start))
				}
				answered.Add(1)
			}
		}()
	}
	// Let n more requests complete before each step (counted, not timed).
	flow := func(n int64) {
		target := answered.Load() + n
		require.Eventually(t, func() bool { return answered.Load() >= target }, 30*time.Second, time.Millisecond)
	}
	// The token was spent above, before the load: it is refused throughout.
	flow(40)
	srv.Stop()
	flow(40)
	srv.Restart()
	flow(40)
	srv.Pause()
	flow(8)
	srv.Resume()
	flow(40)
	done.Store(true)
	wg.Wait()
	assert.Zero(t, bad.Load())
	assert.Equal(t, int64(1), tokenAccepted.Load(), "a spent token is never accepted again")
	require.Eventually(t, func() bool { return in.answers("/login", login("henry", "wrong"), http.StatusUnauthorized) },
		10*time.Second, 10*time.Millisecond, "recovered without a restart of the gate")
}
