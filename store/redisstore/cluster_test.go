package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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

// clusterPolicy counts failures per username only (every request of these
// tests comes from 127.0.0.1, so an address key would trip under load).
var clusterPolicy = captchagate.Policy{
	Name:        "login",
	Keys:        []captchagate.Key{{Source: captchagate.JSONField("username").Fold(), ResetOnSuccess: true}},
	MaxFailures: 5,
	Window:      15 * time.Minute,
}

// clusterClient returns a Cluster client of c that honours context
// deadlines.
func clusterClient(t testing.TB, c *redistest.Cluster, o *redis.ClusterOptions) *redis.ClusterClient {
	if o == nil {
		o = &redis.ClusterOptions{}
	}
	o.Addrs, o.ContextTimeoutEnabled = c.Addrs(), true
	cc := redis.NewClusterClient(o)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// clusterInstance is an app instance (gate, store, server) on a Cluster
// client of its own. It counts the store errors and 503s it answered.
type clusterInstance struct {
	*instance
	cc          *redis.ClusterClient
	storeErrors atomic.Int64
	unavailable atomic.Int64
}

// newClusterInstance starts an instance on cc with store options o; the
// login policy is clusterPolicy.
func newClusterInstance(t *testing.T, cc *redis.ClusterClient, o redisstore.Options, clk *storetest.Clock, mutate func(*captchagate.Config)) *clusterInstance {
	t.Helper()
	return newClusterInstanceWith(t, cc, o, clk, clusterPolicy, mutate)
}

// newClusterInstanceWith starts an instance whose login policy is policy.
func newClusterInstanceWith(t *testing.T, cc *redis.ClusterClient, o redisstore.Options, clk *storetest.Clock, policy captchagate.Policy, mutate func(*captchagate.Config)) *clusterInstance {
	t.Helper()
	if o.Now == nil {
		o.Now = clk.Now
	}
	if o.ReplicaTimeout == 0 {
		// Spends wait for a replica (durable spends): a second, not the
		// default 100 ms, for a loaded machine (-race, parallel packages).
		o.ReplicaTimeout = time.Second
	}
	store, err := redisstore.New(cc, o)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	ci := &clusterInstance{cc: cc}
	cfg := captchagate.Config{
		Secret: secret, Store: store, Challenge: gatetest.KnownDigits{}, Now: clk.Now, CreateBurst: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: 10 * time.Second,
		OnEvent: func(e captchagate.Event) {
			if e.Kind == captchagate.EventStoreError {
				ci.storeErrors.Add(1)
			}
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := captchagate.New(cfg)
	require.NoError(t, err)
	in := &instance{gate: g, store: store}
	ci.instance = in
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.reached.Add(1)
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})))
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusServiceUnavailable {
				ci.unavailable.Add(1)
			}
		})
	}
	in.srv = httptest.NewServer(count(mux))
	t.Cleanup(func() {
		in.srv.Close()
		g.Close()
	})
	return ci
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// keysByMaster returns the keys matching pattern on each master of c.
func keysByMaster(t *testing.T, c *redistest.Cluster, pattern string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range c.Masters() {
		rdb := redis.NewClient(&redis.Options{Addr: m})
		keys, err := rdb.Keys(context.Background(), pattern).Result()
		rdb.Close()
		require.NoError(t, err)
		out[m] = keys
	}
	return out
}

// checkNoCrossSlot asserts that no node of c answered CROSSSLOT.
func checkNoCrossSlot(t *testing.T, c *redistest.Cluster) {
	t.Helper()
	assert.Zero(t, c.ErrorStats()["CROSSSLOT"], "CROSSSLOT answers")
}

// verify answers captcha id on in and returns the reply.
func (in *instance) verify(t *testing.T, id string) reply {
	t.Helper()
	return in.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
}

// The store on a real Cluster (three masters, three replicas): the
// conformance suite, two gates sharing it, keys spread over the masters,
// a slot resharded under load, and scripts flushed under load.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	cc := clusterClient(t, c, nil)

	t.Run("conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, now func() time.Time) captchagate.Store {
			// Take waits for a replica (durable spends); its default
			// bound, 100 ms, was too short once under -race on a loaded
			// machine.
			s, err := redisstore.New(cc, redisstore.Options{Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), Now: now,
				ReplicaTimeout: time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		})
	})

	t.Run("two instances", func(t *testing.T) {
		clk := storetest.NewClock()
		a := newClusterInstance(t, clusterClient(t, c, nil), redisstore.Options{Prefix: "two:"}, clk, nil)
		b := newClusterInstance(t, clusterClient(t, c, nil), redisstore.Options{Prefix: "two:"}, clk, nil)
		twoGateFlow(t, a.instance, b.instance)
		assert.Zero(t, a.storeErrors.Load()+b.storeErrors.Load(), "store errors")

		// The spend marks live in one slot, on one master.
		marks := keysByMaster(t, c, "two:{marks}*")
		home := c.MasterOfKey("two:{marks}:e")
		for m, keys := range marks {
			if m == home {
				assert.NotEmpty(t, keys, "the marks on %s, the master of {marks}", m)
			} else {
				assert.Empty(t, keys, "marks on %s", m)
			}
		}
	})

	t.Run("keys spread over the masters", func(t *testing.T) {
		clk := storetest.NewClock()
		a := newClusterInstance(t, cc, redisstore.Options{Prefix: "spread:"}, clk, nil)
		const users = 300
		var next atomic.Int64
		together(16, func() {
			for i := int(next.Add(1)); i <= users; i = int(next.Add(1)) {
				assert.Equal(t, http.StatusUnauthorized, a.post(t, "/login", login("user"+strconv.Itoa(i), "wrong")).status)
			}
		})
		a.flush(t)
		byMaster := keysByMaster(t, c, "spread:*")
		total := 0
		slots := map[int]bool{}
		var dist []string
		for _, m := range c.Masters() {
			keys := byMaster[m]
			total += len(keys)
			for _, k := range keys {
				slots[redistest.Slot(k)] = true
			}
			dist = append(dist, m+": "+strconv.Itoa(len(keys)))
			assert.NotEmpty(t, keys, "master %s holds none of the store's keys", m)
		}
		assert.Equal(t, users, total, "one counter a username")
		t.Logf("%d counters of %d usernames over %d slots; per master: %s", total, users, len(slots), strings.Join(dist, ", "))
		assert.Zero(t, a.storeErrors.Load())
	})

	t.Run("reshard under load", func(t *testing.T) { reshardUnderLoad(t, c, cc) })

	t.Run("reshard many slots under load", func(t *testing.T) {
		clk := storetest.NewClock()
		a := newClusterInstance(t, cc, redisstore.Options{Prefix: "many:"}, clk, nil)
		// Keys in the slots that move: a first round of the load.
		stop := runLoad(t, a.instance, "many", 4)
		time.Sleep(300 * time.Millisecond)
		stats := c.ErrorStats()
		from := c.MasterOf(0)
		to := c.Masters()[1]
		if to == from {
			to = c.Masters()[0]
		}
		const slots = 500
		start := time.Now()
		keys := 0
		for slot := range slots {
			require.Equal(t, from, c.MasterOf(slot))
			m := c.BeginMigration(slot, from, to)
			for n := m.Move(50); n > 0; n = m.Move(50) {
				keys += n
			}
			m.Finish()
		}
		took := time.Since(start)
		time.Sleep(200 * time.Millisecond)
		statuses := stop()
		a.flush(t)
		after := c.ErrorStats()
		t.Logf("%d slots (%d keys) moved %s → %s in %v under load: ASK %d, MOVED %d; load %v",
			slots, keys, from, to, took.Round(time.Millisecond), after["ASK"]-stats["ASK"], after["MOVED"]-stats["MOVED"], statuses)
		assert.Positive(t, keys, "the load had keys in the slots that moved")
		assert.Positive(t, after["MOVED"]-stats["MOVED"], "requests met MOVED")
		assert.Zero(t, a.storeErrors.Load(), "store errors")
		assert.Zero(t, a.unavailable.Load(), "503s")
	})

	t.Run("SCRIPT FLUSH under load", func(t *testing.T) {
		clk := storetest.NewClock()
		a := newClusterInstance(t, cc, redisstore.Options{Prefix: "flush:"}, clk, nil)
		before := c.ErrorStats()["NOSCRIPT"]
		stop := runLoad(t, a.instance, "flush", 4)
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			for _, m := range c.Masters() {
				_, err := redistest.Do(m, "SCRIPT", "FLUSH")
				require.NoError(t, err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		statuses := stop()
		a.flush(t)
		noScript := c.ErrorStats()["NOSCRIPT"] - before
		t.Logf("requests %v; NOSCRIPT answers %d", statuses, noScript)
		assert.Positive(t, noScript, "the scripts were flushed while in use")
		assert.Zero(t, a.storeErrors.Load(), "store errors")
		assert.Zero(t, a.unavailable.Load(), "503s")
		// A captcha is answered after the flush: the mark script is back.
		id := tripAndCaptcha(t, a.instance, "after-flush")
		assert.Equal(t, http.StatusOK, a.verify(t, id).status)
		assert.Equal(t, http.StatusForbidden, a.verify(t, id).status, "once")
	})

	checkNoCrossSlot(t, c)
}

// twoGateFlow is the login flow across two instances: failures add up,
// a captcha issued by one is answered on the other and only once, and a
// token is accepted once across both.
func twoGateFlow(t *testing.T, a, b *instance) {
	t.Helper()
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, a.post(t, "/login", login("alice", "wrong")).status)
	}
	for range 2 {
		assert.Equal(t, http.StatusUnauthorized, b.post(t, "/login", login("alice", "wrong")).status)
	}
	rp := a.post(t, "/login", login("alice", "right"))
	require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
	id := rp.captchaID(t)
	require.Equal(t, http.StatusPreconditionRequired, b.post(t, "/login", login("alice", "right")).status, "B sees A's count")

	v := b.verify(t, id)
	require.Equal(t, http.StatusOK, v.status, v.raw)
	tok := v.body["captcha_token"].(string)
	assert.Equal(t, http.StatusForbidden, a.verify(t, id).status, "the captcha is spent on A too")
	assert.Equal(t, http.StatusForbidden, b.verify(t, id).status, "and on B")

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

	id = b.post(t, "/login", login("alice", "right")).captchaID(t)
	v = a.verify(t, id)
	require.Equal(t, http.StatusOK, v.status, v.raw)
	assert.Equal(t, http.StatusOK, b.post(t, "/login", login("alice", "right"), captchagate.TokenHeader, v.body["captcha_token"].(string)).status)
	b.flush(t)
	assert.Equal(t, http.StatusOK, a.post(t, "/login", login("alice", "right")).status, "the success reset alice for both")
}

// tripAndCaptcha fails user's password five times on in and returns the
// captcha the sixth attempt is asked for.
func tripAndCaptcha(t *testing.T, in *instance, user string) string {
	t.Helper()
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, in.post(t, "/login", login(user, "wrong")).status)
	}
	rp := in.post(t, "/login", login(user, "right"))
	require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
	return rp.captchaID(t)
}

// runLoad sends wrong passwords for users tag0, tag1, ... (one attempt
// each: none trips) from workers goroutines until the returned stop is called, which returns the answers
// by status.
func runLoad(t *testing.T, in *instance, tag string, workers int) (stop func() map[int]int) {
	var done atomic.Bool
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !done.Load(); i += workers {
				st := in.post(t, "/login", login(tag+strconv.Itoa(i), "wrong")).status
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}
		}()
	}
	return func() map[int]int {
		done.Store(true)
		wg.Wait()
		return statuses
	}
}

// A slot holding a tripped counter moves to another master while requests
// run: they meet ASK while its keys move and MOVED after, with no store
// error, and the counter arrives intact (the account stays tripped).
func reshardUnderLoad(t *testing.T, c *redistest.Cluster, cc *redis.ClusterClient) {
	clk := storetest.NewClock()
	a := newClusterInstance(t, cc, redisstore.Options{Prefix: "reshard:"}, clk, nil)
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, a.post(t, "/login", login("victim", "wrong")).status)
	}
	a.flush(t)
	var victimKey string
	for _, keys := range keysByMaster(t, c, "reshard:*") {
		for _, k := range keys {
			require.Empty(t, victimKey, "one key: the victim's counter")
			victimKey = k
		}
	}
	require.NotEmpty(t, victimKey)
	slot := redistest.Slot(victimKey)
	from := c.MasterOf(slot)
	to := c.Masters()[0]
	if to == from {
		to = c.Masters()[1]
	}
	tripped := func() bool {
		return a.post(t, "/login", login("victim", "right")).status == http.StatusPreconditionRequired
	}
	require.True(t, tripped())

	stats := c.ErrorStats()
	seen := func(kind string) int { return c.ErrorStats()[kind] - stats[kind] }
	stopLoad := runLoad(t, a.instance, "reshard", 4)
	var victimDone atomic.Bool
	var victimRefused, victimOther atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the victim tries the right password throughout
		defer wg.Done()
		for !victimDone.Load() {
			if tripped() {
				victimRefused.Add(1)
			} else {
				victimOther.Add(1)
			}
		}
	}()

	m := c.BeginMigration(slot, from, to)
	moved := 0
	for n := m.Move(10); n > 0; n = m.Move(10) {
		moved += n
	}
	require.Eventually(t, func() bool { return seen("ASK") > 0 }, 10*time.Second, 10*time.Millisecond,
		"the victim's counter was asked for on the target while the slot migrated")
	asks := seen("ASK")
	m.Finish()
	require.Eventually(t, func() bool { return seen("MOVED") > 0 }, 10*time.Second, 10*time.Millisecond,
		"a request met MOVED once the slot moved")
	time.Sleep(200 * time.Millisecond) // some load on the new owner
	victimDone.Store(true)
	wg.Wait()
	statuses := stopLoad()
	a.flush(t)

	t.Logf("slot %d (%d keys) moved %s → %s under load: ASK %d, MOVED %d; load %v; victim refused %d, other %d",
		slot, moved, from, to, asks, seen("MOVED"), statuses, victimRefused.Load(), victimOther.Load())
	assert.Equal(t, to, c.MasterOf(slot))
	assert.Zero(t, a.storeErrors.Load(), "store errors")
	assert.Zero(t, a.unavailable.Load(), "503s")
	assert.Zero(t, victimOther.Load(), "the victim's account stayed tripped throughout")
	assert.True(t, tripped(), "and after")
	rdb := redis.NewClient(&redis.Options{Addr: to})
	defer rdb.Close()
	assert.Equal(t, int64(1), rdb.Exists(context.Background(), victimKey).Val(), "the counter is on its new master")
	n, _, err := a.store.Incr(context.Background(), strings.TrimPrefix(victimKey, "reshard:"), 0, time.Minute) // reads
	require.NoError(t, err)
	assert.Equal(t, int64(5), n, "the counter, intact")
	assert.False(t, slices.Contains(keysByMaster(t, c, "reshard:*")[from], victimKey), "nothing left behind")
}
