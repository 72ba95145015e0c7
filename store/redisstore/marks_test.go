package redisstore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
	"github.com/captchagate/captchagate/store/storetest"
)

// Spend marks: set once, kept for a life across generations, and refused
// in any other epoch; a Redis that lost its data has a new epoch.
func TestMarks(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	clk := storetest.NewClock()
	s, err := redisstore.New(rdb, redisstore.Options{Now: clk.Now, MarkCapacity: 1000})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	life := 6 * time.Minute
	mark := func(m string, epoch uint64, peek bool) (bool, uint64) {
		fresh, cur, err := s.Mark(ctx, epoch, []byte(m), life, peek)
		require.NoError(t, err)
		return fresh, cur
	}
	_, none := mark("", 0, true)
	assert.Zero(t, none, "peek creates no epoch")
	_, e := mark("", 0, false)
	require.NotZero(t, e)
	_, e2 := mark("", 0, false)
	assert.Equal(t, e, e2, "one epoch")

	a, b := "mark-aaaaaaaaaaaa", "mark-bbbbbbbbbbbb"
	fresh, _ := mark(a, e, true)
	assert.True(t, fresh, "unset")
	fresh, _ = mark(a, e, false)
	assert.True(t, fresh, "set")
	fresh, _ = mark(a, e, false)
	assert.False(t, fresh, "set once")
	fresh, _ = mark(a, e, true)
	assert.False(t, fresh, "peek sees it")
	fresh, _ = mark(b, e, false)
	assert.True(t, fresh, "another mark")
	fresh, cur := mark(b, e+1, false)
	assert.False(t, fresh, "another epoch")
	assert.Equal(t, e, cur)

	// Kept for a life, across the turn of generations.
	clk.Advance(life - time.Second)
	fresh, _ = mark(a, e, false)
	assert.False(t, fresh, "still spent a life later")

	// Redis loses its data: the old epoch is refused, a new one begins.
	require.NoError(t, rdb.FlushAll(ctx).Err())
	fresh, cur = mark(a, e, false)
	assert.False(t, fresh, "a spent mark is not revived")
	assert.NotEqual(t, e, cur)
	assert.NotZero(t, cur)
	fresh, _ = mark(a, cur, false)
	assert.True(t, fresh, "in the new epoch")
}

// Two instances share a Redis that loses its data (FLUSHALL, as after an
// empty restart). A captcha issued and answered before is never accepted
// again; an instance that only issues follows the new epoch within
// epochRefresh (10 s), so its captchas answer on the other instance again.
func TestEpochAfterDataLoss(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "epoch:", clk, nil)
	b := newInstance(t, srv.Addr, "epoch:", clk, nil)
	trip := func(in *instance, user string) string {
		for range 5 {
			in.post(t, "/login", login(user, "wrong"))
		}
		return in.post(t, "/login", login(user, "right")).captchaID(t)
	}
	verify := func(in *instance, id string) int {
		return in.post(t, "/captcha/verify", `{"captcha_id":"`+id+`","captcha_answer":"`+answer+`"}`).status
	}
	spent := trip(b, "alice")
	require.Equal(t, http.StatusOK, verify(a, spent), "issued by b, answered on a")
	require.Equal(t, http.StatusForbidden, verify(a, spent))

	require.NoError(t, a.client.FlushAll(context.Background()).Err())
	assert.Equal(t, http.StatusForbidden, verify(a, spent), "a spent captcha is not revived")
	stale := trip(b, "bob") // b has not read the new epoch yet
	assert.Equal(t, http.StatusForbidden, verify(a, stale), "sealed in the lost epoch")
	clk.Advance(11 * time.Second)
	fresh := trip(b, "carol")
	assert.Equal(t, http.StatusOK, verify(a, fresh), "b follows the new epoch")
}

// New refuses a Redis that cannot compile a script with flags (before
// 7.0, "#!lua flags=allow-oom" is a Lua syntax error): the error Redis 6.2
// answers is told apart from other failures.
func TestNewNeedsScriptFlags(t *testing.T) {
	err := redisstore.TooOld(errors.New("ERR Error compiling script (new function): user_script:1: unexpected symbol near '#'"))
	assert.ErrorContains(t, err, "Redis 7.0 or later is required")
	assert.NoError(t, redisstore.TooOld(errors.New("NOPERM this user has no permissions to run the 'script|load' command")))
	assert.NoError(t, redisstore.TooOld(nil))
}
