// Package storetest is the conformance suite of captchagate.Store. Every
// backend runs it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) captchagate.Store {
//			return mybackend.New(..., now)
//		})
//	}
//
// The factory receives the suite's clock; a backend that cannot take an
// injected clock (one that uses its server's time) should say so by calling
// t.Skip for the time-dependent subtests, which are named "Expiry...".
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// Clock is the suite's injectable time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Factory returns a fresh, empty store that reads time from now.
type Factory func(t *testing.T, now func() time.Time) captchagate.Store

// Run runs the conformance suite against stores made by f.
func Run(t *testing.T, f Factory) {
	ctx := context.Background()
	setup := func(t *testing.T) (captchagate.Store, *Clock) {
		c := NewClock()
		return f(t, c.Now), c
	}

	t.Run("Incr", func(t *testing.T) {
		s, c := setup(t)
		n, reset, err := s.Incr(ctx, "k", 0, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n, "a zero delta reads")
		assert.True(t, reset.IsZero(), "and creates nothing")
		n, reset, err = s.Incr(ctx, "k", -1, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n, "a negative delta never creates a counter")
		assert.True(t, reset.IsZero())
		n, reset, err = s.Incr(ctx, "k", 1, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		assert.WithinDuration(t, c.Now().Add(time.Minute), reset, 0)
		n, _, _ = s.Incr(ctx, "k", 2, time.Hour)
		assert.Equal(t, int64(3), n, "the window is set when the counter is created")
		n, _, _ = s.Incr(ctx, "k", -5, time.Minute)
		assert.Zero(t, n, "never below zero")
		n, _, _ = s.Incr(ctx, "other", 1, time.Minute)
		assert.Equal(t, int64(1), n, "keys are independent")
		require.NoError(t, s.Reset(ctx, "other"))
		n, _, _ = s.Incr(ctx, "other", 0, time.Minute)
		assert.Zero(t, n)
		require.NoError(t, s.Reset(ctx, "missing"), "resetting a missing key is no error")
	})

	t.Run("GiveBack", func(t *testing.T) {
		s, _ := setup(t)
		n, _, err := s.Incr(ctx, "k", 1, time.Minute)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		n, _, err = s.Incr(ctx, "k", -1, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n)
		n, reset, err := s.Incr(ctx, "k", 0, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.True(t, reset.IsZero(), "a counter given back to zero is deleted: a read finds none")
		s.Incr(ctx, "k", 3, time.Minute)
		s.Incr(ctx, "k", -5, time.Minute)
		_, reset, _ = s.Incr(ctx, "k", 0, time.Minute)
		assert.True(t, reset.IsZero(), "so is one given back past zero")
		s.Incr(ctx, "k", 2, time.Minute)
		n, reset, _ = s.Incr(ctx, "k", -1, time.Minute)
		assert.Equal(t, int64(1), n)
		assert.False(t, reset.IsZero(), "above zero it stays")
	})

	t.Run("ExpiryGiveBack", func(t *testing.T) {
		s, c := setup(t)
		s.Incr(ctx, "k", 1, time.Minute)
		c.Advance(30 * time.Second)
		s.Incr(ctx, "k", -1, time.Minute)
		n, reset, _ := s.Incr(ctx, "k", 1, time.Minute)
		assert.Equal(t, int64(1), n)
		assert.WithinDuration(t, c.Now().Add(time.Minute), reset, 0,
			"the counter given back to zero was deleted: the next count starts a new window")
	})

	t.Run("ExpiryIncr", func(t *testing.T) {
		s, c := setup(t)
		s.Incr(ctx, "k", 4, time.Minute)
		c.Advance(time.Minute - time.Nanosecond)
		n, _, _ := s.Incr(ctx, "k", 0, time.Minute)
		assert.Equal(t, int64(4), n)
		c.Advance(time.Nanosecond)
		n, _, _ = s.Incr(ctx, "k", 0, time.Minute)
		assert.Zero(t, n, "expired exactly at the deadline, with no janitor")
		n, reset, _ := s.Incr(ctx, "k", 1, time.Minute)
		assert.Equal(t, int64(1), n, "a new window starts")
		assert.WithinDuration(t, c.Now().Add(time.Minute), reset, 0)
	})

	t.Run("Allow", func(t *testing.T) {
		s, c := setup(t)
		for i := 0; i < 3; i++ {
			ok, _, err := s.Allow(ctx, "b", time.Second, 3, true)
			require.NoError(t, err)
			assert.True(t, ok, "burst %d", i)
		}
		ok, wait, _ := s.Allow(ctx, "b", time.Second, 3, false)
		assert.False(t, ok)
		assert.Equal(t, time.Second, wait)
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
		assert.False(t, ok)
		c.Advance(time.Second)
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, false)
		assert.True(t, ok, "peeking takes nothing")
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
		assert.True(t, ok, "one token per interval")
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
		assert.False(t, ok)
		c.Advance(time.Hour)
		for i := 0; i < 3; i++ {
			ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
			assert.True(t, ok, "full again after a long pause, but no more than burst")
		}
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
		assert.False(t, ok)
	})

	t.Run("Return", func(t *testing.T) {
		s, c := setup(t)
		rs, ok := s.(captchagate.Returner)
		if !ok {
			t.Skip("not a captchagate.Returner")
		}
		takes := func() (n int) {
			for {
				ok, _, err := s.Allow(ctx, "b", time.Second, 3, true)
				require.NoError(t, err)
				if !ok {
					return n
				}
				n++
			}
		}
		require.NoError(t, rs.Return(ctx, "none", time.Second), "returning to no bucket")
		require.Equal(t, 3, takes())
		require.NoError(t, rs.Return(ctx, "b", time.Second))
		assert.Equal(t, 1, takes(), "one token back")
		for range 5 {
			require.NoError(t, rs.Return(ctx, "b", time.Second))
		}
		assert.Equal(t, 3, takes(), "never more than burst")
		c.Advance(500 * time.Millisecond)
		require.NoError(t, rs.Return(ctx, "b", time.Second))
		ok, _, _ = s.Allow(ctx, "b", time.Second, 3, true)
		assert.True(t, ok, "given back half an interval later")
	})

	t.Run("Items", func(t *testing.T) {
		s, _ := setup(t)
		_, found, err := s.Get(ctx, "i")
		require.NoError(t, err)
		assert.False(t, found)
		v := []byte("value")
		require.NoError(t, s.Put(ctx, "i", v, time.Minute))
		v[0] = 'X' // the store keeps its own copy
		got, found, err := s.Get(ctx, "i")
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, "value", string(got))
		got, found, _ = s.Take(ctx, "i")
		assert.True(t, found)
		assert.Equal(t, "value", string(got))
		_, found, _ = s.Take(ctx, "i")
		assert.False(t, found, "taken once")
		_, found, _ = s.Get(ctx, "i")
		assert.False(t, found)
		require.NoError(t, s.Put(ctx, "i", []byte("a"), time.Minute))
		require.NoError(t, s.Put(ctx, "i", []byte("b"), time.Minute))
		got, _, _ = s.Get(ctx, "i")
		assert.Equal(t, "b", string(got), "Put replaces")
	})

	t.Run("ExpiryItems", func(t *testing.T) {
		s, c := setup(t)
		require.NoError(t, s.Put(ctx, "i", []byte("v"), time.Minute))
		c.Advance(time.Minute - time.Nanosecond)
		_, found, _ := s.Get(ctx, "i")
		assert.True(t, found)
		c.Advance(time.Nanosecond)
		_, found, _ = s.Get(ctx, "i")
		assert.False(t, found, "expired exactly at the deadline")
		_, found, _ = s.Take(ctx, "i")
		assert.False(t, found)
	})

	t.Run("ConcurrentTake", func(t *testing.T) {
		s, _ := setup(t)
		for round := 0; round < 20; round++ {
			key := fmt.Sprint("t", round)
			require.NoError(t, s.Put(ctx, key, []byte("v"), time.Minute))
			var wins atomic.Int64
			gatetest.Together(50, func() {
				if _, found, err := s.Take(ctx, key); err == nil && found {
					wins.Add(1)
				}
			})
			assert.Equal(t, int64(1), wins.Load(), "round %d", round)
		}
	})

	t.Run("ConcurrentIncr", func(t *testing.T) {
		s, _ := setup(t)
		seen := make([]atomic.Bool, 201)
		gatetest.Together(200, func() {
			n, _, err := s.Incr(ctx, "c", 1, time.Minute)
			if err == nil && n >= 1 && n <= 200 {
				seen[n].Store(true)
			}
		})
		n, _, _ := s.Incr(ctx, "c", 0, time.Minute)
		assert.Equal(t, int64(200), n, "no lost update")
		for i := 1; i <= 200; i++ {
			assert.True(t, seen[i].Load(), "every count is returned exactly once: %d missing", i)
		}
	})

	t.Run("ConcurrentAllow", func(t *testing.T) {
		s, _ := setup(t)
		var ok atomic.Int64
		gatetest.Together(100, func() {
			if allowed, _, err := s.Allow(ctx, "a", time.Hour, 5, true); err == nil && allowed {
				ok.Add(1)
			}
		})
		assert.Equal(t, int64(5), ok.Load())
	})
}
