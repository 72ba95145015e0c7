package redisstore_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
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

// event counts the gate's events of one kind.
func countEvents(kind captchagate.EventKind, n *atomic.Int64) func(*captchagate.Config) {
	return func(c *captchagate.Config) {
		c.OnEvent = func(e captchagate.Event) {
			if e.Kind == kind {
				n.Add(1)
			}
		}
	}
}

// sample is one answered request of a load.
type sample struct {
	at     time.Time // when the answer arrived
	status int
}

// Sentinel: the master is killed under a load of guarded requests. Until
// the sentinels have promoted the replica, a gate that fails closed
// answers 503 and one that fails open lets logins through; within about
// 2 s of the failover (5 s allowed) every request is counted again, with no
// new client and no new gate.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{})
	clk := storetest.NewClock()
	budget := func(mode captchagate.StoreFailMode) func(*captchagate.Config) {
		return func(c *captchagate.Config) {
			c.StoreTimeout = 250 * time.Millisecond
			c.StoreFailure = mode
		}
	}
	closed := sentinelInstance(t, s, redisstore.Options{Prefix: "sfo:", Now: clk.Now}, budget(captchagate.FailClosed))
	open := sentinelInstance(t, s, redisstore.Options{Prefix: "sfo:", Now: clk.Now}, budget(captchagate.FailOpen))

	var (
		done          atomic.Bool
		mu            sync.Mutex
		closedSamples []sample
		openSamples   []sample
		bad           atomic.Int64
		wg            sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				var rp reply
				if w == 3 {
					// Fail open: the login passes (uncounted) when the
					// store fails; a success resets the user's counter.
					rp = open.post(t, "/login", login("olive", "right"))
					switch rp.status {
					case http.StatusOK:
					default:
						bad.Add(1)
						t.Logf("fail open: unexpected %d %s", rp.status, rp.raw)
					}
					mu.Lock()
					openSamples = append(openSamples, sample{time.Now(), rp.status})
					mu.Unlock()
					continue
				}
				rp = closed.post(t, "/login", login("user"+string(rune('a'+(w*7+i)%20)), "right"))
				switch rp.status {
				case http.StatusOK, http.StatusServiceUnavailable:
				default:
					bad.Add(1)
					t.Logf("fail closed: unexpected %d %s", rp.status, rp.raw)
				}
				mu.Lock()
				closedSamples = append(closedSamples, sample{time.Now(), rp.status})
				mu.Unlock()
			}
		}()
	}
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(closedSamples)
	}
	n := answered()
	require.Eventually(t, func() bool { return answered() >= n+100 }, 30*time.Second, time.Millisecond, "warm-up")

	old := s.Master()
	killed := time.Now()
	s.Kill(old)
	now := s.WaitFailover(old)
	failedOver := s.FailoverAt()
	// Load on until two seconds pass without a 503 (at most 10 s after the
	// failover).
	lastUnavailable := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		var last time.Time
		for _, x := range closedSamples {
			if x.status == http.StatusServiceUnavailable && x.at.After(last) {
				last = x.at
			}
		}
		return last
	}
	for time.Since(failedOver) < 10*time.Second {
		if time.Since(lastUnavailable()) > 2*time.Second && time.Since(failedOver) > 2*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	done.Store(true)
	wg.Wait()

	var before, during, after, unavailable int
	recovered := time.Time{}
	for _, x := range closedSamples {
		switch {
		case x.at.Before(killed):
			before++
			assert.NotEqual(t, http.StatusServiceUnavailable, x.status, "a 503 before the kill")
		case x.at.Before(failedOver):
			during++
		default:
			after++
		}
		if x.status == http.StatusServiceUnavailable {
			unavailable++
			if x.at.After(recovered) {
				recovered = x.at
			}
		}
	}
	recovery := time.Duration(0)
	if recovered.After(failedOver) {
		recovery = recovered.Sub(failedOver)
	}
	var openFailed int
	for _, x := range openSamples {
		if x.status != http.StatusOK {
			openFailed++
		}
	}
	t.Logf("Sentinel failover: master %s killed, %s promoted %v later; fail-closed gate: %d requests before the kill, "+
		"%d during the failover, %d after it; %d answered 503, the last %v after the failover; fail-open gate: %d requests, %d not let through",
		old, now, failedOver.Sub(killed).Round(time.Millisecond), before, during, after, unavailable,
		recovery.Round(time.Millisecond), len(openSamples), openFailed)
	assert.Zero(t, bad.Load(), "every answer is one the fail policy defines")
	assert.Zero(t, openFailed, "the fail-open gate let every login through")
	assert.Less(t, recovery, 5*time.Second, "recovered within about 2 s of the failover")
	assert.Positive(t, unavailable, "the dead master was noticed: the fail-closed gate answered 503 meanwhile")
	require.Eventually(t, func() bool {
		return closed.post(t, "/login", login("henry", "right")).status == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "counting again on the new master")
	sort.Slice(closedSamples, func(i, j int) bool { return closedSamples[i].at.Before(closedSamples[j].at) })
	last := closedSamples[len(closedSamples)-1]
	assert.NotEqual(t, http.StatusServiceUnavailable, last.status)
}
