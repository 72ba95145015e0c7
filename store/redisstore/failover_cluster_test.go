package redisstore_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
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
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// usersByMaster finds, for each master of c, n usernames whose counter
// lives there: it fails each candidate's password once on in (prefix is
// in's store prefix) and looks for the one new key.
func usersByMaster(t *testing.T, c *redistest.Cluster, in *instance, prefix string, n int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	seen := map[string]bool{}
	masters := c.Masters()
	full := func() bool {
		for _, m := range masters {
			if len(out[m]) < n {
				return false
			}
		}
		return true
	}
	for i := 0; !full(); i++ {
		require.Less(t, i, 50*n*len(masters), "no spread of usernames over the masters")
		user := fmt.Sprintf("u%d", i)
		require.Equal(t, http.StatusUnauthorized, in.post(t, "/login", login(user, "wrong")).status)
		in.flush(t)
		var found []string
		for m, keys := range keysByMaster(t, c, prefix+"*") {
			for _, k := range keys {
				if !strings.Contains(k, "{marks}") && !seen[k] {
					seen[k] = true
					found = append(found, m)
				}
			}
		}
		require.Len(t, found, 1, "one new key for %s", user)
		if len(out[found[0]]) < n {
			out[found[0]] = append(out[found[0]], user)
		}
	}
	return out
}

// failoverPolicy never trips: a reset written behind that fails while a
// master is down leaves its count one higher, and the load below repeats
// its users' logins many times a second; the test looks at store errors,
// not at thresholds.
var failoverPolicy = captchagate.Policy{
	Name:        "login",
	Keys:        []captchagate.Key{{Source: captchagate.JSONField("username").Fold(), ResetOnSuccess: true}},
	MaxFailures: 1 << 30,
}

// outcome is one guarded request of the failover load.
type outcome struct {
	dead       bool // its key lives on the master that is killed
	start, end time.Time
	status     int
	body       string
}

// A master killed under a load of guarded requests: requests whose keys
// live on the other masters see no error at all, those on the killed one
// get the fail policy's answer (FailClosed: a captcha asked for, or 503) until its replica has
// taken over, and are served again within about 2 s of the failover (5 s
// allowed here).
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{NodeTimeout: 1500 * time.Millisecond})
	cc := clusterClient(t, c, nil)
	clk := storetest.NewClock()
	var killedAt atomic.Int64 // unix ns
	var eventsMu sync.Mutex
	events := map[string]int{} // store error events by class (X-Class)
	in := newClusterInstanceWith(t, cc, redisstore.Options{Prefix: "fo:"}, clk, failoverPolicy, func(cfg *captchagate.Config) {
		cfg.StoreTimeout = time.Second
		cfg.StoreFailure = captchagate.FailClosed
		cfg.OnEvent = func(e captchagate.Event) {
			if e.Kind != captchagate.EventStoreError {
				return
			}
			class := "unknown"
			if e.Request != nil {
				class = e.Request.Header.Get("X-Class")
			}
			eventsMu.Lock()
			events[class]++
			if class == "healthy" && events[class] <= 5 {
				t.Logf("store error on a healthy master's key, %v after the kill: %v",
					time.Since(time.Unix(0, killedAt.Load())).Round(time.Millisecond), e.Err)
			}
			eventsMu.Unlock()
		}
	})
	users := usersByMaster(t, c, in.instance, "fo:", 2)
	// Kill a master that does not hold the spend marks.
	marksHome := c.MasterOfKey("fo:{marks}:e")
	var dead string
	for _, m := range c.Masters() {
		if m != marksHome {
			dead = m
			break
		}
	}
	t.Logf("masters %v; killing %s (marks on %s)", c.Masters(), dead, marksHome)

	var mu sync.Mutex
	var outcomes []outcome
	var done atomic.Bool
	var wg sync.WaitGroup
	for m, us := range users {
		for _, u := range us {
			class := "healthy"
			if m == dead {
				class = "dead"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !done.Load() {
					o := outcome{dead: m == dead, start: time.Now()}
					// The right password: counted, then reset on success.
					rp := in.post(t, "/login", login(u, "right"), "X-Class", class)
					o.end, o.status, o.body = time.Now(), rp.status, rp.raw
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(time.Second)
	killed := time.Now()
	killedAt.Store(killed.UnixNano())
	c.Kill(dead)
	failedOver := c.WaitFailover(dead, 30*time.Second)
	time.Sleep(6 * time.Second)
	done.Store(true)
	wg.Wait()

	// Classes: healthy keys; keys on the dead master before the kill, from
	// the kill to the failover, and after it.
	var healthyBad, healthyN int
	var deadBefore, deadDuring, deadAfter, deadBadStatus int
	var deadRefused int
	var lastFailure time.Time
	statuses := map[string]map[int]int{"healthy": {}, "dead": {}}
	for _, o := range outcomes {
		if !o.dead {
			healthyN++
			statuses["healthy"][o.status]++
			if o.status != http.StatusOK {
				healthyBad++
				if healthyBad <= 5 {
					t.Logf("healthy key: %d at %v after the kill: %s", o.status, o.start.Sub(killed).Round(time.Millisecond), o.body)
				}
			}
			continue
		}
		statuses["dead"][o.status]++
		switch {
		case o.end.Before(killed):
			deadBefore++
		case o.start.Before(failedOver):
			deadDuring++
		default:
			deadAfter++
		}
		switch {
		case o.status == http.StatusOK:
		case o.status == http.StatusServiceUnavailable && strings.Contains(o.body, `"service_unavailable"`),
			o.status == http.StatusPreconditionRequired && strings.Contains(o.body, `"captcha_required"`):
			// FailClosed: a counter the store could not count trips its
			// key (a captcha is asked for), or the request gets 503.
			deadRefused++
			if o.start.After(lastFailure) {
				lastFailure = o.start
			}
		default:
			deadBadStatus++
			t.Logf("dead key: %d %s", o.status, o.body)
		}
	}
	recovery := max(lastFailure.Sub(failedOver), 0)
	eventsMu.Lock()
	t.Logf("failover %v after the kill; keys on the dead master served again %v after the failover (last failure %v after the kill)",
		failedOver.Sub(killed).Round(time.Millisecond), recovery.Round(time.Millisecond), lastFailure.Sub(killed).Round(time.Millisecond))
	t.Logf("healthy keys: %d requests, %d not served, statuses %v; dead master's keys: %d before the kill, %d until the failover, %d after, statuses %v; store error events by class %v",
		healthyN, healthyBad, statuses["healthy"], deadBefore, deadDuring, deadAfter, statuses["dead"], events)
	eventsMu.Unlock()

	assert.Positive(t, healthyN)
	assert.Zero(t, healthyBad, "requests whose keys live on healthy masters were all served")
	eventsMu.Lock()
	assert.Zero(t, events["healthy"], "store errors on healthy masters' keys")
	eventsMu.Unlock()
	assert.Zero(t, deadBadStatus, "keys on the dead master: served, or FailClosed's answers (428, 503), nothing else")
	assert.Positive(t, deadRefused, "the dead master's keys met the fail policy")
	assert.Positive(t, deadAfter, "requests after the failover")
	assert.Less(t, recovery, 5*time.Second, "served again within about 2 s of the failover")
	checkNoCrossSlot(t, c)
}

// Spends survive a failover: with a replica held behind (paused, its
// master's output buffer holding megabytes for it), captchas and tokens
// spent on the master of {marks} are replayed after that master dies and
// the replica takes over. With the store's default (a spend acknowledged by
// a replica, WAIT) none is accepted twice; with Replicas: -1 (no WAIT, the
// control) some are.
func TestClusterDurableSpends(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"durable (default)", 0}, {"control (Replicas -1)", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			doubles, firsts, replayed, n := spendAcrossFailover(t, tc.replicas)
			t.Logf("%s: %d of %d spends accepted while the replica lagged, %d accepted again after the failover",
				tc.name, firsts, n, doubles)
			assert.Equal(t, n, replayed, "the failover lost every mark of the lag: each replay is accepted once")
			if tc.replicas == -1 {
				assert.Positive(t, doubles, "the control shows the lost spends")
			} else {
				assert.Zero(t, firsts, "a spend no replica acknowledged is refused")
				assert.Zero(t, doubles, "no captcha or token is accepted twice")
			}
		})
	}
}

// spendAcrossFailover spends captchas and tokens while the replica of the
// marks' master lags, kills that master, lets the replica take over, and
// replays every answer and token. It returns how many were accepted both
// times, the first time, and on the replay, and how many were spent.
func spendAcrossFailover(t *testing.T, replicas int) (doubles, firsts, replayed, n int) {
	const perKind = 12
	c := redistest.StartCluster(t, redistest.ClusterOptions{NodeTimeout: 1500 * time.Millisecond})
	cc := clusterClient(t, c, nil)
	clk := storetest.NewClock()
	var reasonsMu sync.Mutex
	reasons := map[string]int{}
	var verified, tokensAccepted atomic.Int64
	// Two instances sharing the store's keys: in mints and replays, with
	// WAIT bounded at a second (on a loaded machine the default 100 ms was
	// once too short for a healthy replica); lag spends while the replica
	// lags, with WAIT's default bound.
	instance := func(o redisstore.Options) *clusterInstance {
		o.Prefix, o.Replicas = "ds:", replicas
		return newClusterInstance(t, cc, o, clk, func(cfg *captchagate.Config) {
			cfg.StoreTimeout = 3 * time.Second
			cfg.CaptchaTTL = time.Hour
			cfg.TokenTTL = time.Hour
			cfg.OnEvent = func(e captchagate.Event) {
				switch e.Kind {
				case captchagate.EventCaptchaVerified:
					verified.Add(1)
				case captchagate.EventTokenAccepted:
					tokensAccepted.Add(1)
				}
				if e.Kind == captchagate.EventCaptchaRejected || e.Kind == captchagate.EventTokenRefused || e.Kind == captchagate.EventStoreError {
					reasonsMu.Lock()
					reasons[e.Kind.String()+": "+e.Reason+errText(e.Err)]++
					reasonsMu.Unlock()
				}
			}
		})
	}
	in := instance(redisstore.Options{ReplicaTimeout: time.Second})
	lag := instance(redisstore.Options{ReplicaTimeout: 100 * time.Millisecond}) // the default
	defer func() {
		reasonsMu.Lock()
		t.Logf("refusals: %v", reasons)
		reasonsMu.Unlock()
	}()

	// Before the lag: captchas to answer, tokens to spend, and the marks'
	// epoch, all replicated.
	var ids, toks []string
	for i := range perKind {
		ids = append(ids, tripAndCaptcha(t, in.instance, fmt.Sprintf("c%d", i)))
		id := tripAndCaptcha(t, in.instance, fmt.Sprintf("t%d", i))
		v := in.verify(t, id)
		require.Equal(t, http.StatusOK, v.status, v.raw)
		toks = append(toks, v.body["captcha_token"].(string))
	}
	in.flush(t)
	home := c.MasterOfKey("ds:{marks}:e")
	replica := c.ReplicaOf(home)
	if replica == "" {
		nodes, _ := redistest.Do(c.Addrs()[0], "CLUSTER", "NODES")
		t.Fatalf("no replica of %q:\n%v", home, nodes)
	}
	c.WaitHealthy(10 * time.Second)

	// Hold the replica behind: paused, with more written to its master
	// after than the kernel's socket buffers hold (the replica's receive
	// buffer, the master's send buffer, both delivered after the master's
	// death), so the spends below wait in the master's output buffer for
	// the replica and die with it.
	c.Pause(replica)
	resumed := false
	defer func() {
		if !resumed {
			c.Resume(replica)
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: home})
	defer rdb.Close()
	ctx := context.Background()
	junk := strings.Repeat("x", 1<<20)
	for i := range backlogMB(t) {
		require.NoError(t, rdb.Set(ctx, fmt.Sprintf("junk:{marks}:%d", i), junk, time.Hour).Err())
	}

	statuses := map[string]map[int]int{}
	phase := "spent"
	// accepted answers captcha i, or sends token i, and reports whether the
	// gate accepted it (its event: a token's user may no longer be tripped
	// after the failover, so the status alone does not tell).
	accepted := func(in *clusterInstance, kind string, i int) bool {
		var st int
		var ok bool
		if kind == "captcha" {
			before := verified.Load()
			st = in.verify(t, ids[i]).status
			ok = verified.Load() > before
		} else {
			// A wrong password with the token, for the user it was solved for.
			before := tokensAccepted.Load()
			st = in.post(t, "/login", login(fmt.Sprintf("t%d", i), "wrong"), captchagate.TokenHeader, toks[i]).status
			ok = tokensAccepted.Load() > before
		}
		if statuses[phase+" "+kind] == nil {
			statuses[phase+" "+kind] = map[int]int{}
		}
		statuses[phase+" "+kind][st]++
		return ok
	}
	first := map[string][]bool{}
	for _, kind := range []string{"captcha", "token"} {
		for i := range perKind {
			ok := accepted(lag, kind, i)
			first[kind] = append(first[kind], ok)
			if ok {
				firsts++
			}
		}
	}

	// The master dies with the spends in its output buffer; the replica
	// takes over.
	c.Kill(home)
	c.Resume(replica)
	resumed = true
	deadline := time.Now().Add(10 * time.Second)
	for c.MasterOfKey("ds:{marks}:e") != replica && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c.MasterOfKey("ds:{marks}:e") != replica {
		require.NoError(t, c.Takeover(replica))
	}
	c.WaitFailover(home, 30*time.Second)
	if replicas >= 0 {
		// The old master comes back empty, as a replica of its
		// replacement, so that spends can be acknowledged again.
		c.Restart(home)
		c.WaitHealthy(30 * time.Second)
	}
	require.Eventually(t, func() bool {
		_, _, err := in.store.Mark(ctx, 0, nil, time.Hour, true) // reads the epoch, writes nothing
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "the store reaches the marks' new master")

	phase = "replayed"
	for _, kind := range []string{"captcha", "token"} {
		for i := range perKind {
			ok := accepted(in, kind, i)
			if ok {
				replayed++
			}
			if ok && first[kind][i] {
				doubles++
			}
		}
	}
	t.Logf("replays accepted after the failover: %d of %d; statuses %v", replayed, 2*perKind, statuses)
	return doubles, firsts, replayed, 2 * perKind
}

// The master of the spend marks ({marks}) killed: answers are refused while
// it is down (never accepted without the store) and accepted again once the
// slot has a master that a replica acknowledges: within about 2 s of the
// failover when each master has two replicas (one is left to the new
// master), and, with one replica each, only once the old master is back as
// the new master's replica: until then the default durable spends fail
// closed, since no replica can acknowledge them.
func TestClusterFailoverOfMarks(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d replicas a master", replicas), func(t *testing.T) {
			c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: replicas, NodeTimeout: 1500 * time.Millisecond})
			cc := clusterClient(t, c, nil)
			clk := storetest.NewClock()
			in := newClusterInstance(t, cc, redisstore.Options{Prefix: "fm:"}, clk, func(cfg *captchagate.Config) {
				cfg.StoreTimeout = time.Second
				cfg.CaptchaTTL = time.Hour
			})
			// Captchas to answer, one an attempt: a refused spend may have
			// marked its captcha.
			first := tripAndCaptcha(t, in.instance, "marks-victim")
			require.Equal(t, http.StatusOK, in.verify(t, first).status, "the marks' epoch exists before the kill")
			var ids []string
			for range 150 {
				rp := in.post(t, "/login", login("marks-victim", "right"))
				require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
				ids = append(ids, rp.captchaID(t))
			}
			home := c.MasterOfKey("fm:{marks}:e")
			statuses := map[string]map[int]int{"down": {}, "failed over": {}, "replica back": {}}
			next := 0
			answer := func(phase string) int {
				require.Less(t, next, len(ids), "out of captchas")
				st := in.verify(t, ids[next]).status
				next++
				statuses[phase][st]++
				return st
			}

			killed := time.Now()
			c.Kill(home)
			var failedOver time.Time
			done := make(chan struct{})
			go func() {
				defer close(done)
				failedOver = c.WaitFailover(home, 30*time.Second)
			}()
		down:
			for {
				select {
				case <-done:
					break down
				case <-time.After(100 * time.Millisecond):
					assert.NotEqual(t, http.StatusOK, answer("down"), "an answer accepted while the marks' master is down")
				}
			}
			// A spend also needs the other replica to follow the new master
			// (0.07-1.05 s on a quiet machine): allow a loaded CI machine
			// under -race 15 s, as the Sentinel test does 30.
			var served time.Time
			for time.Since(failedOver) < 3*time.Second || (replicas == 2 && served.IsZero() && time.Since(failedOver) < 15*time.Second) {
				if answer("failed over") == http.StatusOK && served.IsZero() {
					served = time.Now()
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("failover %v after the kill", failedOver.Sub(killed).Round(time.Millisecond))
			if replicas == 2 {
				require.False(t, served.IsZero(), "answers accepted after the failover: %v", statuses)
				t.Logf("answers accepted again %v after the failover; answers by phase %v",
					max(served.Sub(failedOver), 0).Round(time.Millisecond), statuses)
				assert.Less(t, served.Sub(failedOver), 15*time.Second)
				return
			}
			assert.True(t, served.IsZero(), "with no replica left, no spend is acknowledged: answers refused")
			restarted := time.Now()
			c.Restart(home)
			c.WaitHealthy(30 * time.Second)
			healthy := time.Now()
			deadline := healthy.Add(5 * time.Second)
			for served.IsZero() && time.Now().Before(deadline) {
				if answer("replica back") == http.StatusOK {
					served = time.Now()
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("old master back as a replica %v after its restart; answers accepted again %v after that; answers by phase %v",
				healthy.Sub(restarted).Round(time.Millisecond), served.Sub(healthy).Round(time.Millisecond), statuses)
			assert.False(t, served.IsZero(), "answers accepted once a replica acknowledges spends")
		})
	}
}

// backlogMB returns how many MB to write to a master to fill the socket
// buffers between it and a paused replica, with 16 MB to spare: the
// maxima of net.ipv4.tcp_rmem and tcp_wmem (32 and 4 MB on Linux's usual
// settings), or 64 MB if they cannot be read.
func backlogMB(t *testing.T) int {
	total := 0
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"} {
		b, err := os.ReadFile(f)
		fields := strings.Fields(string(b))
		if err != nil || len(fields) != 3 {
			return 64
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil {
			return 64
		}
		total += n
	}
	mb := total>>20 + 16
	t.Logf("backlog: %d MB", mb)
	return mb
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
