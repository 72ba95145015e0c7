package redisstore_test

import (
	"context"
	"fmt"
	"os"
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

// client returns a client of srv that honours context deadlines.
func client(t testing.TB, srv *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

var prefixes atomic.Int64

// newStore returns a store with a prefix of its own on srv.
func newStore(t testing.TB, c redis.UniversalClient, now func() time.Time) *redisstore.Store {
	s, err := redisstore.New(c, redisstore.Options{Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	storetest.Run(t, func(t *testing.T, now func() time.Time) captchagate.Store {
		return newStore(t, c, now)
	})
}

func TestNew(t *testing.T) {
	_, err := redisstore.New(nil, redisstore.Options{})
	assert.ErrorContains(t, err, "nil client")

	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	_, err = redisstore.New(plain, redisstore.Options{})
	assert.ErrorContains(t, err, "ContextTimeoutEnabled", "a client that ignores deadlines is refused")

	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	_, err = redisstore.New(cluster, redisstore.Options{})
	assert.ErrorContains(t, err, "ContextTimeoutEnabled")

	ok := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer ok.Close()
	s, err := redisstore.New(ok, redisstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "captchagate:c:x", s.Key("c:x"), "default prefix")

	_, err = redisstore.New(ok, redisstore.Options{Prefix: "{app}:"})
	assert.ErrorContains(t, err, "must not contain")
}

// Every key the store writes carries a TTL, whatever the operation.
func TestEveryKeyHasTTL(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)
	_, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
	require.NoError(t, err)
	_, _, err = s.Incr(ctx, "f:a", -1, time.Minute)
	require.NoError(t, err)
	_, _, err = s.Incr(ctx, "f:a", 1, time.Minute)
	require.NoError(t, err)
	_, _, err = s.Allow(ctx, "r:a", time.Second, 3, true)
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, "c:a", []byte("v"), time.Minute))
	require.NoError(t, s.Put(ctx, "c:b", []byte("v"), time.Nanosecond))
	// A counter that expired by the store's clock but not yet in Redis starts
	// a new window with a new TTL.
	clk.Advance(2 * time.Minute)
	_, _, err = s.Incr(ctx, "f:a", 1, time.Hour)
	require.NoError(t, err)

	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		ttl, err := c.Do(ctx, "PTTL", k).Int64()
		require.NoError(t, err)
		assert.NotEqual(t, int64(-1), ttl, "key %s has no TTL", k) // -2: expired meanwhile
	}
	ttl, _ := c.PTTL(ctx, s.Key("f:a")).Result()
	assert.Greater(t, ttl, 59*time.Minute, "the new window's TTL")
}

// After a restart (or SCRIPT FLUSH) Redis has forgotten the scripts; the
// store reloads them without failing a call.
func TestScriptsReloadAfterFlush(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	s := newStore(t, c, time.Now)
	_, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	n, _, err := s.Incr(ctx, "f:a", 1, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	ok, _, err := s.Allow(ctx, "r:a", time.Second, 1, true)
	require.NoError(t, err)
	assert.True(t, ok)
}

// A store call never outlives its context's deadline, even when Redis does
// not answer at all.
func TestDeadlineWhilePaused(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	s := newStore(t, c, time.Now)
	_, _, err := s.Incr(context.Background(), "f:a", 1, time.Minute) // connect first
	require.NoError(t, err)
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = s.Incr(ctx, "f:a", 1, time.Minute)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, _, err = s.Take(ctx, "c:a")
	require.Error(t, err)
}

// quiet drops go-redis's own log lines (dial failures during the fault
// tests, which are expected there).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

func getenv(k string) string { return os.Getenv(k) }

// A counter is a packed string of 12 bytes (its window's end and its
// count), and a counter an earlier version wrote as a hash {n, e} is read
// and rewritten packed, its window and TTL kept: an upgrade loses no count.
func TestCounterFormat(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	clk := storetest.NewClock()
	s := newStore(t, c, clk.Now)

	n, reset, err := s.Incr(ctx, "f:new", 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	raw, err := c.Get(ctx, s.Key("f:new")).Bytes()
	require.NoError(t, err)
	assert.Len(t, raw, 12)
	assert.Equal(t, "embstr", c.ObjectEncoding(ctx, s.Key("f:new")).Val(), "kept in the key's object")
	got, err := s.CountIn(ctx, c, "f:new")
	require.NoError(t, err)
	assert.Equal(t, int64(1), got)
	assert.True(t, clk.Now().Add(time.Minute).Equal(reset))

	for _, delta := range []int64{1, 0, -1} {
		end := clk.Now().Add(10 * time.Minute)
		require.NoError(t, c.HSet(ctx, s.Key("f:old"), "n", 3, "e", end.UnixMicro()).Err())
		require.NoError(t, c.PExpire(ctx, s.Key("f:old"), 10*time.Minute).Err())
		n, reset, err := s.Incr(ctx, "f:old", delta, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, 3+delta, n, "delta %d: the old count goes on", delta)
		assert.True(t, end.Equal(reset), "delta %d: in the old window", delta)
		assert.Equal(t, "string", c.Type(ctx, s.Key("f:old")).Val(), "delta %d: rewritten packed", delta)
		ttl := c.PTTL(ctx, s.Key("f:old")).Val()
		assert.InDelta(t, float64(10*time.Minute), float64(ttl), float64(5*time.Second), "delta %d: its TTL kept", delta)
		require.NoError(t, c.Del(ctx, s.Key("f:old")).Err())
	}
}
