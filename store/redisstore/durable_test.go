package redisstore_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// waits counts the WAIT commands a client sends.
type waits struct{ n atomic.Int64 }

func (w *waits) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (w *waits) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (w *waits) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if strings.EqualFold(c.Name(), "wait") {
				w.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// A spend counts only once a replica has it: with a replica, the store
// waits for it by default, and a spend the replica does not acknowledge in
// time fails closed (ErrNotDurable); with Replicas: -1 (the control) the
// same spend counts while the replica has not seen it, which is what a
// failover to that replica would accept a second time.
func TestDurableSpends(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	ctx := context.Background()
	life := time.Minute
	mark := func(s *redisstore.Store, m string) (bool, error) {
		_, epoch, err := s.Mark(ctx, 0, nil, life, false)
		require.NoError(t, err, "the epoch (no spend: no wait)")
		fresh, _, err := s.Mark(ctx, epoch, []byte(m), life, false)
		return fresh, err
	}
	open := func(o redisstore.Options) (*redisstore.Store, *waits) {
		c := redis.NewClient(&redis.Options{Addr: master.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		w := new(waits)
		c.AddHook(w)
		s, err := redisstore.New(c, o)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s, w
	}

	// A second's bound: a loaded test machine can take more than the
	// default 100ms to have a healthy replica acknowledge.
	durable, w := open(redisstore.Options{Prefix: "d:", ReplicaTimeout: time.Second})
	fresh, err := mark(durable, "1-spend-mark-0000")
	require.NoError(t, err)
	assert.True(t, fresh)
	assert.Equal(t, int64(1), w.n.Load(), "the spend waited for the replica (found at New)")
	fresh, err = mark(durable, "1-spend-mark-0000")
	require.NoError(t, err)
	assert.False(t, fresh, "spent once")
	_, _, err = durable.Mark(ctx, 0, nil, life, true)
	require.NoError(t, err)
	assert.Equal(t, int64(2), w.n.Load(), "a peek does not wait")

	control, cw := open(redisstore.Options{Prefix: "c:", Replicas: -1})

	replica.Pause()
	start := time.Now()
	_, err = mark(durable, "2-spend-mark-0000")
	assert.ErrorIs(t, err, redisstore.ErrNotDurable, "the replica did not acknowledge: refused")
	assert.Less(t, time.Since(start), 5*time.Second, "within ReplicaTimeout, give or take a loaded machine")
	fresh, err = mark(control, "2-spend-mark-0000")
	require.NoError(t, err)
	assert.True(t, fresh, "the control counts a spend its replica has not seen")
	assert.Zero(t, cw.n.Load(), "the control never waits")
	replica.Resume()

	// Once the replica is back, spends count again.
	fresh, err = mark(durable, "3-spend-mark-0000")
	require.NoError(t, err)
	assert.True(t, fresh)

	// More replicas asked than there are: every spend fails closed.
	greedy, _ := open(redisstore.Options{Prefix: "g:", Replicas: 2, ReplicaTimeout: 20 * time.Millisecond})
	_, err = mark(greedy, "4-spend-mark-0000")
	assert.ErrorIs(t, err, redisstore.ErrNotDurable)

	// A Take (GETDEL) waits too.
	require.NoError(t, durable.Put(ctx, "c:item", []byte("x"), time.Minute))
	before := w.n.Load()
	v, ok, err := durable.Take(ctx, "c:item")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "x", string(v))
	assert.Equal(t, before+1, w.n.Load())
}

// Without a replica, the default store does not wait (nothing to wait
// for), and a client on which WAIT cannot follow the spend on its
// connection is refused Replicas.
func TestDurableDefaults(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	w := new(waits)
	c.AddHook(w)
	s, err := redisstore.New(c, redisstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	_, epoch, err := s.Mark(ctx, 0, nil, time.Minute, false)
	require.NoError(t, err)
	fresh, _, err := s.Mark(ctx, epoch, []byte("1-spend-mark-0000"), time.Minute, false)
	require.NoError(t, err)
	assert.True(t, fresh)
	assert.Zero(t, w.n.Load(), "no replica: no WAIT")

	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { ring.Close() })
	_, err = redisstore.New(ring, redisstore.Options{Replicas: 1})
	assert.ErrorContains(t, err, "Options.Replicas needs")
	rs, err := redisstore.New(ring, redisstore.Options{})
	require.NoError(t, err, "a Ring, by default, does not wait")
	rs.Close()
}

// Through the gate: an answer whose spend the replica does not acknowledge
// is refused (503, service_unavailable), and is never accepted afterwards
// (its mark was set on the master before the refusal); a new captcha
// passes once the replica is back.
func TestDurableAnswerThroughGate(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	clk := storetest.NewClock()
	in := newInstanceWith(t, master.Addr, redisstore.Options{Prefix: "gd:", Now: clk.Now, ReplicaTimeout: time.Second}, clk, nil)
	trip := func() string {
		var rp reply
		for range 6 {
			rp = in.post(t, "/login", login("alice", "wrong"))
		}
		require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
		return rp.captchaID(t)
	}
	verify := func(id string) reply {
		return in.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`)
	}
	id := trip()
	replica.Pause()
	rp := verify(id)
	replica.Resume()
	assert.Equal(t, http.StatusServiceUnavailable, rp.status, "not durable: refused: %s", rp.raw)
	rp = verify(id)
	assert.NotEqual(t, http.StatusOK, rp.status, "refused once, never accepted after: %s", rp.raw)
	rp = in.post(t, "/login", login("alice", "wrong"))
	require.Equal(t, http.StatusPreconditionRequired, rp.status, rp.raw)
	rp = verify(rp.captchaID(t))
	assert.Equal(t, http.StatusOK, rp.status, "a new captcha passes: %s", rp.raw)
}
