package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/memstore"
	"github.com/captchagate/captchagate/store/storetest"
)

var _ captchagate.Store = (*memstore.Store)(nil)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) captchagate.Store {
		s := memstore.New(memstore.Options{Now: now})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoundedUnderFlood(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s := memstore.New(memstore.Options{MaxEntries: 6400, Now: clk.Now, CleanupInterval: -1})
	defer s.Close()

	// The victim's counter is in before the flood.
	_, _, err := s.Incr(ctx, "victim", 3, time.Hour)
	require.NoError(t, err)
	full := 0
	for i := 0; i < 100_000; i++ {
		if _, _, err := s.Incr(ctx, fmt.Sprint("flood", i), 1, time.Hour); err == memstore.ErrFull {
			full++
		} else {
			require.NoError(t, err)
		}
		if err := s.Put(ctx, fmt.Sprint("item", i), []byte("x"), time.Hour); err != nil {
			require.ErrorIs(t, err, memstore.ErrFull)
		}
	}
	assert.LessOrEqual(t, s.Len(), 6400)
	assert.Greater(t, full, 90_000, "the flood is refused, not stored")
	n, _, err := s.Incr(ctx, "victim", 0, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "a flood never evicts a live counter")
	n, _, err = s.Incr(ctx, "victim", 1, time.Hour)
	require.NoError(t, err, "existing keys still count when full")
	assert.Equal(t, int64(4), n)

	// Once entries expire, room is made again (at most one sweep a second
	// per shard).
	clk.Advance(2 * time.Hour)
	for i := 0; i < 3000; i++ {
		_, _, err = s.Incr(ctx, fmt.Sprint("after", i), 1, time.Hour)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, s.Len(), 6400)
}

func TestJanitorAndClose(t *testing.T) {
	clk := storetest.NewClock()
	s := memstore.New(memstore.Options{Now: clk.Now, CleanupInterval: time.Millisecond})
	require.NoError(t, s.Put(context.Background(), "a", []byte("x"), time.Second))
	clk.Advance(time.Hour)
	require.Eventually(t, func() bool { return s.Len() == 0 }, 5*time.Second, time.Millisecond, "the janitor drops expired entries")
	require.Contains(t, stacks(), "memstore.(*Store).janitor")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.Eventually(t, func() bool { return !strings.Contains(stacks(), "memstore.(*Store).janitor") },
		5*time.Second, time.Millisecond, "Close stops the janitor")
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
