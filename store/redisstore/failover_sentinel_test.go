package redisstore_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
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

// spendPolicy asks for a captcha once its user has failed once, and never
// resets: after one failure every request of the user needs a solved
// captcha or a token, so each accepted answer and token is a spend.
var spendPolicy = captchagate.Policy{
	Name:        "spend",
	Keys:        []captchagate.Key{{Source: captchagate.JSONField("username")}},
	MaxFailures: 1,
	Window:      time.Hour,
}

// failoverClient returns a Sentinel-aware client of s that honours context
// deadlines and never re-sends a command.
func failoverClient(t testing.TB, s *redistest.Sentinel) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName(), SentinelAddrs: s.SentinelAddrs(),
		ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 250 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// sentinelInstance is an instance (see gate_test.go) on a failover client
// of s: see gateOn.
func sentinelInstance(t *testing.T, s *redistest.Sentinel, o redisstore.Options, mutate func(*captchagate.Config)) *instance {
	t.Helper()
	return gateOn(t, failoverClient(t, s), o, mutate)
}

// gateOn is an instance (see gate_test.go) on c, whose store has options
// o: the login route (loginPolicy) and the spend route (spendPolicy), both
// answering 200 to the password "right", and the captcha handler. c is
// the caller's to close.
func gateOn(t *testing.T, c *redis.Client, o redisstore.Options, mutate func(*captchagate.Config)) *instance {
	t.Helper()
	store, err := redisstore.New(c, o)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	cfg := captchagate.Config{
		Secret: secret, Store: store, Challenge: gatetest.KnownDigits{}, Now: o.Now, CreateBurst: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: 2 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := captchagate.New(cfg)
	require.NoError(t, err)
	in := &instance{gate: g, store: store, client: c}
	handler := func(w http.ResponseWriter, r *http.Request) {
		in.reached.Add(1)
		var req struct{ Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	mux.Handle("POST /login", g.Guard(loginPolicy)(http.HandlerFunc(handler)))
	mux.Handle("POST /spend", g.Guard(spendPolicy)(http.HandlerFunc(handler)))
	in.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		in.srv.Close()
		g.Close()
	})
	return in
}

// sample is one answered request of a load.
type sample struct {
	at     time.Time // when the answer arrived
	status int
}

// Sentinel: the master is killed under a load of guarded requests, with
// two replicas. Until the sentinels have promoted one, a gate that fails
// closed answers 503 and one that fails open lets logins through; within
// about 2 s of the failover (5 s allowed) every login is counted again and
// every captcha answer is spent (durably: the other replica follows the
// new master), with no new client and no new gate.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 2})
	clk := storetest.NewClock()
	budget := func(mode captchagate.StoreFailMode) func(*captchagate.Config) {
		return func(c *captchagate.Config) {
			c.Now = clk.Now
			c.StoreTimeout = 250 * time.Millisecond
			c.StoreFailure = mode
			c.CreateBurst = 1 << 20 // the answering worker asks for a captcha per request, for as long as the test runs
		}
	}
	closed := sentinelInstance(t, s, redisstore.Options{Prefix: "sfo:", Now: clk.Now}, budget(captchagate.FailClosed))
	open := sentinelInstance(t, s, redisstore.Options{Prefix: "sfo:", Now: clk.Now}, budget(captchagate.FailOpen))
	require.Equal(t, http.StatusUnauthorized, closed.post(t, "/spend", login("sam", "wrong")).status, "sam needs a captcha from now on")

	// Each worker records its answers: logins on the fail-closed gate (200,
	// or 503 when the store fails), logins on the fail-open gate (always
	// 200), and captcha answers on the fail-closed gate (a captcha for sam,
	// then its answer: 200, or 503 when the store fails).
	const (
		loginClosed = iota
		loginOpen
		answers
	)
	var (
		done    atomic.Bool
		mu      sync.Mutex
		samples [3][]sample
		bad     atomic.Int64
		wg      sync.WaitGroup
	)
	record := func(kind, status int) {
		mu.Lock()
		samples[kind] = append(samples[kind], sample{time.Now(), status})
		mu.Unlock()
	}
	for w, kind := range []int{loginClosed, loginClosed, loginClosed, loginOpen, answers} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				var rp reply
				switch kind {
				case loginClosed:
					rp = closed.post(t, "/login", login("user"+string(rune('a'+(w*7+i)%20)), "right"))
				case loginOpen:
					rp = open.post(t, "/login", login("olive", "right"))
				case answers:
					if rp = closed.post(t, "/spend", login("sam", "right")); rp.status == http.StatusPreconditionRequired {
						rp = closed.post(t, "/captcha/verify", `{"captcha_id":"`+rp.captchaID(t)+`","captcha_answer":"`+answer+`"}`)
					}
				}
				switch {
				case rp.status == http.StatusOK:
				case rp.status == http.StatusServiceUnavailable && kind != loginOpen:
				default:
					bad.Add(1)
					t.Logf("worker %d: unexpected %d %s", w, rp.status, rp.raw)
				}
				record(kind, rp.status)
			}
		}()
	}
	count := func(kind int) int {
		mu.Lock()
		defer mu.Unlock()
		return len(samples[kind])
	}
	n := count(answers)
	require.Eventually(t, func() bool { return count(answers) >= n+20 }, 30*time.Second, time.Millisecond, "warm-up")

	old := s.Master()
	killed := time.Now()
	s.Kill(old)
	now := s.WaitFailover(old)
	failedOver := s.FailoverAt()
	// lastFailure returns when the last 503 of kind arrived.
	lastFailure := func(kind int) time.Time {
		mu.Lock()
		defer mu.Unlock()
		var last time.Time
		for _, x := range samples[kind] {
			if x.status != http.StatusOK && x.at.After(last) {
				last = x.at
			}
		}
		return last
	}
	// Load on until two seconds pass without a 503 (at most 10 s after the
	// failover).
	for time.Since(failedOver) < 10*time.Second {
		quiet := min(time.Since(lastFailure(loginClosed)), time.Since(lastFailure(answers)), time.Since(failedOver))
		if quiet > 2*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	done.Store(true)
	wg.Wait()

	// figures returns, for kind, the answers before the kill, between the
	// kill and the failover, and after; how many failed; how long after the
	// failover the last failure arrived (0 if none did after it); and the
	// outage: from the kill to the first success after the last failure.
	figures := func(kind int) (before, during, after, failed int, recovery, outage time.Duration) {
		var lastFailed time.Time
		for _, x := range samples[kind] {
			switch {
			case x.at.Before(killed):
				before++
				assert.Equal(t, http.StatusOK, x.status, "before the kill")
			case x.at.Before(failedOver):
				during++
			default:
				after++
			}
			if x.status != http.StatusOK {
				failed++
				recovery = max(recovery, x.at.Sub(failedOver))
				lastFailed = x.at
			}
		}
		for _, x := range samples[kind] {
			if x.status == http.StatusOK && x.at.After(lastFailed) && x.at.After(killed) {
				outage = x.at.Sub(killed)
				break
			}
		}
		return
	}
	t.Logf("Sentinel failover: master %s killed, %s promoted %v later", old, now, failedOver.Sub(killed).Round(time.Millisecond))
	for kind, name := range []string{"logins, fail closed", "logins, fail open", "captcha answers, fail closed"} {
		before, during, after, failed, recovery, outage := figures(kind)
		t.Logf("%s: %d before the kill, %d during the failover, %d after it; %d refused (503), the last %v after the failover; "+
			"served again %v after the kill", name, before, during, after, failed, recovery.Round(time.Millisecond), outage.Round(time.Millisecond))
		switch kind {
		case loginOpen:
			assert.Zero(t, failed, "the fail-open gate lets every login through")
		case loginClosed:
			assert.Positive(t, failed, "%s: the dead master was noticed (503 meanwhile)", name)
			assert.Less(t, recovery, 5*time.Second, "%s: recovered within about 2 s of the failover", name)
		case answers:
			// A spend also needs a replica to acknowledge it: the other
			// replica, once the sentinels have pointed it at the new master
			// and it has synced (0-1.3 s on a quiet machine, 10 s once on a
			// loaded CI machine under -race). Until then answers fail closed.
			assert.Positive(t, failed, "%s: the dead master was noticed (503 meanwhile)", name)
			assert.Less(t, recovery, 30*time.Second, "%s: recovered once the other replica follows the new master", name)
		}
	}
	assert.Zero(t, bad.Load(), "every answer is one the fail policy defines")
	assert.Equal(t, http.StatusOK, closed.post(t, "/login", login("henry", "right")).status, "counting on the new master")
}

// lagResult is what spendAcrossLaggingFailover saw of n captcha answers
// and n tokens: accepted before the failover (while the replicas lagged),
// refused then as the store failed (503), accepted when replayed after
// it, and accepted both times.
type lagResult struct {
	n, before, unavailable, after, twice int
}

// spendAcrossLaggingFailover holds the replicas of a Sentinel deployment
// behind (SIGSTOP, then a write backlog larger than the sockets' buffers,
// so that what follows waits in the master's output buffer), spends n
// captcha answers and n tokens through a gate whose store has options o,
// kills the master, lets the replicas go, waits for the failover and
// replays every answer and token.
func spendAcrossLaggingFailover(t *testing.T, o redisstore.Options, n int) lagResult {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 2})
	clk := storetest.NewClock()
	o.Prefix, o.Now = "lag:", clk.Now
	in := sentinelInstance(t, s, o, func(c *captchagate.Config) {
		c.Now = clk.Now
		c.StoreFailure = captchagate.FailClosed
	})
	const user = "uma"
	require.Equal(t, http.StatusUnauthorized, in.post(t, "/spend", login(user, "wrong")).status, "uma needs a captcha from now on")
	verifyBody := func(id string) string {
		return `{"captcha_id":"` + id + `","captcha_answer":"` + answer + `"}`
	}
	answers := make([]string, n) // unspent captchas
	tokens := make([]string, n)
	for i := range n {
		rp := in.post(t, "/spend", login(user, "right"))
		require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
		answers[i] = verifyBody(rp.captchaID(t))
		rp = in.post(t, "/spend", login(user, "right"))
		require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
		v := in.post(t, "/captcha/verify", verifyBody(rp.captchaID(t)))
		require.Equal(t, http.StatusOK, v.status, v.raw)
		tokens[i] = v.body["captcha_token"].(string)
	}
	// Every replica has all of that: the counter, the marks' epoch.
	old := s.Master()
	acked, err := s.Do(old, "WAIT", "2", "5000")
	require.NoError(t, err)
	require.Equal(t, int64(2), acked)

	// Hold the replicas behind.
	replicas := s.Replicas()
	for _, r := range replicas {
		s.Pause(r)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			s.Resume(r)
		}
	})
	// The backlog: 1 MB writes until at least 4 MB wait in the master's
	// output buffer of every replica (beyond what the sockets hold), under
	// the buffer's limit for replicas (256 MB; 64 MB for a minute).
	backlog := func() (least int) {
		list, err := s.Do(old, "CLIENT", "LIST", "TYPE", "replica")
		require.NoError(t, err)
		least = -1
		for line := range strings.Lines(list.(string)) {
			for f := range strings.FieldsSeq(line) {
				if v, ok := strings.CutPrefix(f, "omem="); ok {
					omem, err := strconv.Atoi(v)
					require.NoError(t, err)
					if least < 0 || omem < least {
						least = omem
					}
				}
			}
		}
		return least
	}
	chunk := strings.Repeat("x", 1<<20)
	written := 0
	for ; written < 48 && backlog() < 4<<20; written++ {
		_, err := s.Do(old, "SET", "backlog:"+strconv.Itoa(written), chunk)
		require.NoError(t, err)
	}
	held := backlog()
	t.Logf("backlog: %d MB written, %d bytes wait in the master's output buffer of each replica", written, held)
	require.GreaterOrEqual(t, held, 4<<20, "the backlog waits in the master's output buffer")

	// Spend every answer and token, all at once.
	type outcome struct{ answer, token int }
	spend := func() []outcome {
		out := make([]outcome, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				out[i].answer = in.post(t, "/captcha/verify", answers[i]).status
			}()
			go func() {
				defer wg.Done()
				out[i].token = in.post(t, "/spend", login(user, "right"), captchagate.TokenHeader, tokens[i]).status
			}()
		}
		wg.Wait()
		return out
	}
	first := spend()

	// The master dies with the spends in its output buffer; the replicas
	// get what their sockets held, then the sentinels promote one.
	killed := time.Now()
	s.Kill(old)
	for _, r := range replicas {
		s.Resume(r)
	}
	now := s.WaitFailover(old)
	t.Logf("failover: %s promoted %v after the kill", now, s.FailoverAt().Sub(killed).Round(time.Millisecond))
	// The other replica follows the new master, so that spends can be
	// acknowledged again.
	require.Eventually(t, func() bool {
		info, err := s.Do(now, "INFO", "replication")
		return err == nil && strings.Contains(info.(string), "state=online")
	}, 30*time.Second, 20*time.Millisecond, "a replica online on the new master")
	require.Eventually(t, func() bool { return in.answers("/login", login("probe", "right"), http.StatusOK) },
		10*time.Second, 20*time.Millisecond, "the gate counts on the new master")
	rp := in.post(t, "/spend", login(user, "right"))
	require.Equal(t, http.StatusPreconditionRequired, rp.status, "the new master kept uma's failure: %s", rp.raw)

	second := spend()
	r := lagResult{n: 2 * n}
	for i := range n {
		for _, st := range [][2]int{{first[i].answer, second[i].answer}, {first[i].token, second[i].token}} {
			if st[0] == http.StatusOK {
				r.before++
			}
			if st[0] == http.StatusServiceUnavailable {
				r.unavailable++
			}
			if st[1] == http.StatusOK {
				r.after++
			}
			if st[0] == http.StatusOK && st[1] == http.StatusOK {
				r.twice++
			}
		}
	}
	t.Logf("%d spends (%d answers, %d tokens) while the replicas lagged: %d accepted, %d refused as unacknowledged (503); "+
		"replayed after the failover: %d accepted, %d of them accepted twice", r.n, n, n, r.before, r.unavailable, r.after, r.twice)
	return r
}

// Spends survive a failover: with the replicas held behind when the master
// dies, no captcha answer or token is accepted twice, as the store (by
// default, with a replica connected at New) counts a spend only once a
// replica has acknowledged it. The control, without that (Replicas -1),
// accepts the spends of the lag window again after the switch.
func TestSentinelSpendsSurviveFailover(t *testing.T) {
	const n = 15
	t.Run("durable", func(t *testing.T) {
		r := spendAcrossLaggingFailover(t, redisstore.Options{}, n)
		assert.Zero(t, r.twice, "no answer or token accepted twice")
		assert.Equal(t, r.n, r.unavailable, "with every replica held behind, no spend is acknowledged: each fails closed")
		assert.Positive(t, r.after, "the store works after the failover: the spends refused before are accepted once")
	})
	t.Run("control", func(t *testing.T) {
		r := spendAcrossLaggingFailover(t, redisstore.Options{Replicas: -1}, n)
		assert.Positive(t, r.twice, "without durable spends, a spend of the lag window is accepted again after the failover")
	})
}

// The cost of a durable spend: a spend mark set (the write of every answer
// and token a gate accepts) with WAIT for the replica (Replicas 1) and
// without (Replicas -1), on a master with one healthy replica; one spend at
// a time, and 50 at once.
func BenchmarkSentinelSpend(b *testing.B) {
	s := redistest.StartSentinel(b, redistest.SentinelOptions{})
	c := redis.NewClient(&redis.Options{Addr: s.Master(), ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: 64})
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	life := 6 * time.Minute
	var seq atomic.Uint64
	spend := func(b *testing.B, store *redisstore.Store, epoch uint64) {
		mark := make([]byte, 16)
		i := seq.Add(1)
		binary.LittleEndian.PutUint64(mark, i*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(mark[8:], i)
		// A false "spent" (the Bloom filter, about one in 2,000) costs the
		// same round trip.
		if _, _, err := store.Mark(ctx, epoch, mark, life, false); err != nil {
			b.Errorf("spend %d: %v", i, err)
		}
	}
	for _, replicas := range []int{1, -1} {
		store, err := redisstore.New(c, redisstore.Options{Prefix: fmt.Sprintf("spend%d:", prefixes.Add(1)), Replicas: replicas})
		require.NoError(b, err)
		b.Cleanup(func() { store.Close() })
		_, epoch, err := store.Mark(ctx, 0, nil, life, false)
		require.NoError(b, err)
		b.Run(fmt.Sprintf("replicas=%d/clients=1", replicas), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				spend(b, store, epoch)
			}
		})
		b.Run(fmt.Sprintf("replicas=%d/clients=50", replicas), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(25) // 50 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					spend(b, store, epoch)
				}
			})
		})
	}
}

// With one replica, durable spends (the default) after a failover: the new
// master has no replica until the old one comes back, so no spend can be
// acknowledged and every answer and token is refused (503, fail closed)
// while counting goes on; once the old master is back as a replica, spends
// count again, with no new client and no new gate.
func TestSentinelSpendsNeedAReplica(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{})
	clk := storetest.NewClock()
	in := sentinelInstance(t, s, redisstore.Options{Prefix: "one:", Now: clk.Now}, func(c *captchagate.Config) {
		c.Now = clk.Now
		c.StoreFailure = captchagate.FailClosed
	})
	const user = "ursula"
	require.Equal(t, http.StatusUnauthorized, in.post(t, "/spend", login(user, "wrong")).status)
	verify := func() int {
		t.Helper()
		rp := in.post(t, "/spend", login(user, "right"))
		require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
		return in.post(t, "/captcha/verify", `{"captcha_id":"`+rp.captchaID(t)+`","captcha_answer":"`+answer+`"}`).status
	}
	require.Equal(t, http.StatusOK, verify(), "a spend the replica acknowledged")

	old := s.Master()
	s.Kill(old)
	s.WaitFailover(old)
	require.Eventually(t, func() bool { return in.answers("/login", login("probe", "right"), http.StatusOK) },
		10*time.Second, 20*time.Millisecond, "counting on the new master")
	assert.Equal(t, http.StatusServiceUnavailable, verify(), "no replica to acknowledge the spend: refused")

	restarted := time.Now()
	s.Rejoin(old)
	// Polled on Eventually's own goroutine: no t in it (see tryPost).
	verified := func() bool {
		rp, err := in.tryPost("/spend", login(user, "right"))
		c, _ := rp.body["captcha"].(map[string]any)
		id, _ := c["id"].(string)
		if err != nil || rp.status != http.StatusPreconditionRequired || id == "" {
			return false
		}
		return in.answers("/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`, http.StatusOK)
	}
	require.Eventually(t, verified, 30*time.Second, 100*time.Millisecond,
		"spends count again once the old master is back as a replica")
	t.Logf("spends refused from the failover until the old master was back as a replica, %v after its restart",
		time.Since(restarted).Round(time.Millisecond))
}
