// Package memstore is the in-memory store of captchagate, and its default.
//
// It is safe for concurrent use, checks expiry on every read, and holds at most
// Options.MaxEntries counters, buckets and items in all. A counter given back
// to zero is deleted in the same step, so a refused request leaves nothing
// behind.
//
// At the bound it degrades to over-counting, never to refusing and never to
// forgetting: a write that needs a new entry first drops expired ones (at most
// one sweep a second per shard), then evicts one from a sample: an expired
// counter or bucket, else the counter of lowest count (for a new counter, only
// one counting no more than the newcomer will) or the bucket that has used the
// fewest tokens. An evicted counter or bucket moves to a sketch of fixed size
// (a count-min sketch of counts, a max-sketch of buckets' arrival times) that
// can only over-count: a counter never reads lower than its count, and a
// bucket never fuller than it was. A newcomer that finds no room lives in the
// sketch. So a flood of unique keys cannot erase the counter of a victim, and
// newcomers during the flood read high: asked for a captcha, never refused
// with an error. The sketch forgets when the windows spilled into it end;
// giving back or resetting a spilled counter does not lower it.
//
// Items (captchas, tokens) are never evicted while live: losing one would
// refuse a user who solved a captcha, or let a spent one be used again. A new
// item makes room by moving a counter or a bucket to the sketch; in a shard
// that holds only live items, Put fails with ErrFull.
//
// A failure counter takes 16 bytes of map slot (about 36 bytes of heap per
// tracked key at a million keys, BenchmarkMemoryPerKey): its window's end is
// kept to the millisecond and its count saturates at MaxCount. The entries
// are spread over 64 shards that each hold MaxEntries/64, so with uneven keys
// one shard can fill a little before the whole store does.
//
// State lives in one process: behind a load balancer each instance counts on
// its own. Use a shared store (Redis) when running more than one instance.
package memstore

import (
	"context"
	"time"

	"github.com/captchagate/captchagate/internal/memhash"
)

// ErrFull is returned by Put when a new item finds a shard of the store
// holding only live items, up to its part of Options.MaxEntries. Counters and
// buckets never fail.
var ErrFull = memhash.ErrFull

// MaxCount is the largest count a counter holds; Incr saturates there.
const MaxCount = 1<<24 - 1

// MaxCount is memhash's: both array lengths are non-negative only if equal.
var _ = [MaxCount - memhash.MaxCount][memhash.MaxCount - MaxCount]struct{}{}

// Options configures a Store. The zero value is usable.
type Options struct {
	// MaxEntries bounds the number of entries (counters, buckets and items
	// together), exactly. Default 1<<20; at least 64 (one per shard). A
	// shard that reaches its part allocates its sketch once: at most 32
	// bytes an entry of its part.
	MaxEntries int
	// CleanupInterval is how often the janitor drops expired entries.
	// Default one minute; a negative value disables the janitor.
	CleanupInterval time.Duration
	// Now returns the current time. Default: the wall clock when the store
	// was made plus the monotonic time since (cheaper than time.Now, and
	// windows do not jump with the wall clock). Tests inject a clock.
	Now func() time.Time
}

// Store is the in-memory store. Create it with New and stop its janitor with
// Close.
//
// Its state is internal/memhash's, which the gate's guard counts on directly
// (by hash, at one clock reading per request).
type Store memhash.Store

// New returns a Store and starts its janitor.
func New(o Options) *Store {
	if o.CleanupInterval == 0 {
		o.CleanupInterval = time.Minute
	}
	janitor := o.CleanupInterval > 0
	s := (*Store)(memhash.New(memhash.Options{MaxEntries: o.MaxEntries, Janitor: janitor, Now: o.Now}))
	if janitor {
		go s.janitor(o.CleanupInterval)
	}
	return s
}

func (s *Store) core() *memhash.Store { return (*memhash.Store)(s) }

func (s *Store) janitor(every time.Duration) { s.core().Janitor(every) }

// Close stops the janitor. The store stays usable; Close is idempotent.
func (s *Store) Close() error { return s.core().Close() }

// Len returns the number of entries held, expired ones included until swept.
func (s *Store) Len() int { return s.core().Len() }

// Incr implements captchagate.Store. Incr, Allow and Reset keep no
// reference to their key (they hash it), which lets the gate pass a key
// backed by reusable memory.
func (s *Store) Incr(_ context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	c := s.core()
	return c.Incr(c.Hash(key), delta, window, c.Now())
}

// Reset implements captchagate.Store.
func (s *Store) Reset(_ context.Context, key string) error {
	c := s.core()
	c.Reset(c.Hash(key))
	return nil
}

// Allow implements captchagate.Store with GCRA: the bucket is one timestamp.
func (s *Store) Allow(_ context.Context, key string, interval time.Duration, burst int, take bool) (bool, time.Duration, error) {
	c := s.core()
	return c.Allow(c.Hash(key), interval, burst, take, c.Now())
}

// Return gives back one token an Allow took from the bucket at key
// (captchagate.Returner): a bucket full again is deleted.
func (s *Store) Return(_ context.Context, key string, interval time.Duration) error {
	c := s.core()
	c.GiveToken(c.Hash(key), interval, c.Now())
	return nil
}

// Put implements captchagate.Store. The value is copied.
func (s *Store) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return s.core().Put(key, value, ttl)
}

// Get implements captchagate.Store. The returned slice must not be modified.
func (s *Store) Get(_ context.Context, key string) ([]byte, bool, error) {
	return s.core().Get(key, false)
}

// Take implements captchagate.Store.
func (s *Store) Take(_ context.Context, key string) ([]byte, bool, error) {
	return s.core().Get(key, true)
}
