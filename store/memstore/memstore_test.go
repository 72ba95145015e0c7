package memstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
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

// At the bound nothing is refused but items, nothing reads lower than it
// counted, and Len stays under MaxEntries.
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
		n, _, err := s.Incr(ctx, fmt.Sprint("flood", i), 1, time.Hour)
		require.NoError(t, err, "a counter is never refused")
		require.GreaterOrEqual(t, n, int64(1))
		_, _, err = s.Allow(ctx, fmt.Sprint("bucket", i), time.Second, 5, true)
		require.NoError(t, err, "a bucket is never refused (it may be read emptier than it is)")
		if err := s.Put(ctx, fmt.Sprint("item", i), []byte("x"), time.Hour); err != nil {
			require.ErrorIs(t, err, memstore.ErrFull)
			full++
		}
	}
	assert.LessOrEqual(t, s.Len(), 6400)
	assert.Greater(t, full, 90_000, "items are refused once shards hold only items, never evicted")
	n, _, err := s.Incr(ctx, "victim", 0, time.Hour)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(3), "a flood never makes a counter read lower")
	m, _, err := s.Incr(ctx, "victim", 1, time.Hour)
	require.NoError(t, err, "existing keys still count when full")
	assert.Equal(t, n+1, m)

	// Once entries expire, room is made again and the spill is forgotten
	// (at most one sweep a second per shard).
	clk.Advance(2 * time.Hour)
	for i := 0; i < 3000; i++ {
		n, _, err = s.Incr(ctx, fmt.Sprint("after", i), 1, time.Hour)
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "an exact count again")
	}
	assert.LessOrEqual(t, s.Len(), 6400)
}

// A reference model with unbounded memory: at any bound, a counter reads at
// least its true count (increments less give-backs, within one window: an
// evicted counter keeps its count in the spill, not its window's start), and
// a bucket allows a request only when the reference bucket has a token.
func TestNeverUndercounts(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock()
	s := memstore.New(memstore.Options{MaxEntries: 640, Now: clk.Now, CleanupInterval: -1})
	defer s.Close()
	type window struct {
		n   int64
		end time.Time
	}
	counts := map[string]*window{}
	tats := map[string]time.Time{}
	rng := rand.New(rand.NewPCG(1, 2))
	const interval, burst = time.Minute, 3
	for step := range 200_000 {
		now := clk.Now()
		k := fmt.Sprint("k", rng.IntN(5000))
		switch rng.IntN(4) {
		case 0, 1: // count
			w := counts[k]
			if w == nil || !now.Before(w.end) {
				w = &window{end: now.Add(time.Hour)}
				counts[k] = w
			}
			w.n++
			n, _, err := s.Incr(ctx, k, 1, time.Hour)
			require.NoError(t, err)
			require.GreaterOrEqual(t, n, w.n, "step %d: %s", step, k)
		case 2: // give back
			if w := counts[k]; w != nil && now.Before(w.end) && w.n > 0 {
				if w.n--; w.n == 0 {
					delete(counts, k) // given back to zero: deleted
				}
				_, _, err := s.Incr(ctx, k, -1, time.Hour)
				require.NoError(t, err)
			}
			n, _, _ := s.Incr(ctx, k, 0, time.Hour)
			if w := counts[k]; w != nil && now.Before(w.end) {
				require.GreaterOrEqual(t, n, w.n, "step %d: %s", step, k)
			}
		case 3: // take a token
			k = fmt.Sprint("b", rng.IntN(2000))
			ok, _, err := s.Allow(ctx, k, interval, burst, true)
			require.NoError(t, err)
			tat := tats[k]
			if tat.Before(now) {
				tat = now
			}
			refOK := tat.Add(interval).Sub(now) <= interval*burst
			if ok {
				require.True(t, refOK, "step %d: %s allowed past its reference bucket", step, k)
				tats[k] = tat.Add(interval)
			}
		}
		if step%50 == 0 {
			clk.Advance(time.Duration(rng.IntN(400)) * time.Millisecond) // 800s in all, under the window
		}
	}
	assert.LessOrEqual(t, s.Len(), 640)
	clk.Advance(time.Hour)
	n, _, _ := s.Incr(ctx, "k1", 1, time.Hour)
	assert.Equal(t, int64(1), n, "the spill is forgotten with its windows")
}

// A flood of counts given back (the requests refused) leaves Len where it
// was, at any fill.
func TestGivenBackLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{MaxEntries: 6400, CleanupInterval: -1})
	defer s.Close()
	for i := range 1000 {
		s.Incr(ctx, fmt.Sprint("resident", i), 1, time.Hour)
	}
	base := s.Len()
	for i := range 100_000 {
		k := fmt.Sprint("refused", i)
		_, _, err := s.Incr(ctx, k, 1, time.Hour)
		require.NoError(t, err)
		_, _, err = s.Incr(ctx, k, -1, time.Hour)
		require.NoError(t, err)
	}
	assert.Equal(t, base, s.Len())
}

// Under a flood of unique keys the heap stays bounded: it grows with
// MaxEntries, not with the flood.
func TestHeapBoundedUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a million keys")
	}
	ctx := context.Background()
	const maxEntries = 20_000
	before := heap()
	s := memstore.New(memstore.Options{MaxEntries: maxEntries, CleanupInterval: -1})
	defer s.Close()
	var buf [24]byte
	flood := func(from, to int) {
		for i := from; i < to; i++ {
			k := strconv.AppendInt(append(buf[:0], "f:"...), int64(i), 36)
			if _, _, err := s.Incr(ctx, string(k), 1, time.Hour); err != nil {
				t.Fatal(err)
			}
			k[0] = 'r'
			if _, _, err := s.Allow(ctx, string(k), time.Second, 5, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	flood(0, 100_000)
	at100k := heap()
	flood(100_000, 1_000_000)
	at1M := heap()
	t.Logf("heap: %d B before, %d B after 100k unique keys, %d B after 1M (%.0f B an entry of MaxEntries %d); Len %d",
		before, at100k, at1M, float64(at1M-before)/maxEntries, maxEntries, s.Len())
	assert.LessOrEqual(t, s.Len(), maxEntries)
	assert.Less(t, at1M-before, uint64(maxEntries*200), "at most 200 B an entry of the bound")
	// The maps churn (deleted slots are reused or pruned, tables split now
	// and then): 1.03 MB after 100k, 1.21 MB after 1M, 1.29 MB after 3M,
	// 1.32 MB after 10M in one run.
	assert.Less(t, float64(at1M), float64(at100k)*1.3, "ten times the flood, hardly more heap")
	runtime.KeepAlive(s)
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
