// Package memhash is the core of store/memstore: sharded tables of counters
// (a hash table of its own, table.go) and maps of token buckets and items,
// under a bound on their number, with the counters and buckets named by
// 64-bit hashes.
//
// At the bound it never refuses a counter or a bucket and never reads one
// lower than it counted: what the maps have no room for goes to a sketch of
// fixed size that can only over-count (see spill). Items are never evicted
// while live; a new item finds room by moving a counter or a bucket to the
// sketch, or fails with ErrFull.
//
// store/memstore wraps it (memstore.Store is defined as Store, with the
// string-keyed methods of captchagate.Store), and the gate's guard counts on
// it directly: it names its counters by a seeded hash of its own and reads
// the clock once per request, so the hashed methods here neither hash a key
// nor read the clock. Keeping them in an internal package keeps them out of
// memstore's public API.
//
// Store has only unexported fields: memstore.Store shares its underlying
// struct, and an exported field here would be one of memstore's.
package memhash

import (
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// ErrFull is returned by Put when a shard holds only live items, up to its
// part of Options.MaxEntries, and a new item needs room: items (captchas,
// tokens, spent marks) are never evicted while live. Counters and buckets
// never fail. store/memstore exports it as memstore.ErrFull.
var ErrFull = errors.New("memstore: store is full")

// Options configures a Store. The zero value is usable.
type Options struct {
	// MaxEntries bounds the number of entries (counters, buckets and items
	// together), exactly. Default 1<<20; at least 64 (one per shard). A
	// shard that reaches its part allocates its sketch (spill), once: at
	// most 32 bytes per entry of its part (at least 512 bytes).
	MaxEntries int
	// Janitor says that the caller runs Janitor on a goroutine of its own
	// (Close then waits for it to stop).
	Janitor bool
	// Now returns the current time. Default: the wall clock when the store
	// was made plus the monotonic time since (cheaper than time.Now, and
	// windows do not jump with the wall clock).
	Now func() time.Time
}

const numShards = 64

// Store is the in-memory store's core.
type Store struct {
	shards   [numShards]shard
	epoch    int64            // unix milliseconds; counter ends are relative to it
	now      func() time.Time // Options.Now, or nil for the default clock
	start    time.Time        // the default clock's start (with its monotonic reading)
	wall     int64            // and its wall clock, unix nanoseconds
	seed     maphash.Seed
	stop     chan struct{}
	done     chan struct{}
	closeOne sync.Once
}

// A counter is one word: the end of its window in milliseconds since the
// store's epoch (the high 40 bits: 34 years) and its count (the low 24 bits,
// saturating at MaxCount). The counter is absent once now >= its end. With
// its uint64 name that is a 16-byte slot of the shard's counterTable.
type counter uint64

const countBits = 24

// MaxCount is the largest count a counter holds; Incr saturates there.
const MaxCount = 1<<countBits - 1

func (c counter) n() int64   { return int64(c & MaxCount) }
func (c counter) end() int64 { return int64((c &^ estimated) >> countBits) }

// estimated, the counter's top bit, marks a counter whose count started
// from the spill's over-estimate (its end then has 39 bits: 17 years).
const estimated counter = 1 << 63

func packCounter(end, n int64) counter {
	return counter(uint64(end)<<countBits | uint64(min(n, MaxCount)))
}

type item struct {
	v   []byte
	exp int64
}

type shard struct {
	mu        sync.Mutex
	counters  counterTable
	buckets   map[uint64]int64 // GCRA theoretical arrival time; absent when <= now
	items     map[string]item
	spill     *spill // nil until the shard first reaches its limit
	lastSweep int64
	limit     int64    // this shard's part of MaxEntries
	_         [24]byte // keep shards on separate cache lines
}

// New returns a Store.
func New(o Options) *Store {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1 << 20
	}
	o.MaxEntries = max(o.MaxEntries, numShards)
	s := &Store{
		now:  o.Now,
		seed: maphash.MakeSeed(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if o.Now == nil {
		// The wall clock at start plus the monotonic time since: less than
		// time.Now costs, and immune to wall clock steps.
		s.start = time.Now()
		s.wall = s.start.UnixNano()
		s.epoch = s.start.UnixMilli() - 1
	} else {
		s.epoch = o.Now().UnixMilli() - 1
	}
	for i := range s.shards {
		// MaxEntries split exactly: the first MaxEntries%64 shards hold one
		// more.
		s.shards[i].limit = int64(o.MaxEntries / numShards)
		if i < o.MaxEntries%numShards {
			s.shards[i].limit++
		}
		s.shards[i].buckets = make(map[uint64]int64)
		s.shards[i].items = make(map[string]item)
	}
	if !o.Janitor {
		close(s.done)
	}
	return s
}

// Close stops the janitor and waits for it. The store stays usable; Close
// is idempotent.
func (s *Store) Close() error {
	s.closeOne.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Janitor drops expired entries every interval until Close. Run it once,
// on a goroutine of its own, if and only if Options.Janitor was set.
func (s *Store) Janitor(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.Now()
			for i := range s.shards {
				sh := &s.shards[i]
				sh.mu.Lock()
				s.sweep(sh, now)
				sh.mu.Unlock()
			}
		}
	}
}

// Len returns the number of entries held, expired ones included until swept.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.len()
		sh.mu.Unlock()
	}
	return n
}

func (sh *shard) len() int { return sh.counters.n + len(sh.buckets) + len(sh.items) }

func (s *Store) sweep(sh *shard, now int64) {
	sh.lastSweep = now
	nowMs := s.ms(now)
	sh.counters.sweep(nowMs)
	for k, tat := range sh.buckets {
		if now >= tat {
			delete(sh.buckets, k)
		}
	}
	for k, it := range sh.items {
		if now >= it.exp {
			delete(sh.items, k)
		}
	}
}

// entryKind is the kind of entry room makes room for.
type entryKind uint8

const (
	counterEntry entryKind = iota
	bucketEntry
	itemEntry
)

// sample is how many entries of a map room looks at to choose one to evict.
const sample = 8

// room makes room in sh for one new entry of kind want. Below the limit
// there is room. At the limit, it first sweeps expired entries (at most once
// a second per shard, so a flood cannot turn every insert into a full scan),
// then evicts one entry from a sample (Go randomizes where iteration over a
// map starts): an expired counter or bucket first; otherwise, for a new
// counter whose count will be n, the counter of lowest count if that is at
// most n; for a new bucket, the bucket that has used the fewest tokens; for
// a new item, the counter of lowest count, else that bucket. An evicted
// live counter or bucket moves to the spill, which never reads it lower.
// Items are never evicted while live. It reports whether there is room;
// when not, the caller spills its counter or bucket, or refuses its item.
func (s *Store) room(sh *shard, now int64, want entryKind, n int64) bool {
	if int64(sh.len()) < sh.limit {
		return true
	}
	if now < sh.lastSweep || now-sh.lastSweep >= int64(time.Second) {
		s.sweep(sh, now)
		if int64(sh.len()) < sh.limit {
			return true
		}
	}
	nowMs := s.ms(now)
	if want != bucketEntry && sh.counters.n > 0 {
		t := &sh.counters
		minI := -1
		var minC counter
		for i, seen := t.start(), 0; seen < min(sample, t.n); i = t.next(i) {
			c := t.slots[i].c
			if c == 0 {
				continue
			}
			seen++
			if nowMs >= c.end() {
				t.deleteAt(i)
				return true
			}
			if minI < 0 || c.n() < minC.n() {
				minI, minC = i, c
			}
		}
		if minI >= 0 && (want == itemEntry || minC.n() <= n) {
			sh.spillArea().addCount(t.slots[minI].h, minC.end(), minC.n(), nowMs)
			t.deleteAt(minI)
			return true
		}
	}
	if want == counterEntry {
		return false
	}
	var minKey uint64
	var minTat int64
	found := false
	i := 0
	for k, tat := range sh.buckets {
		if now >= tat {
			delete(sh.buckets, k)
			return true
		}
		if !found || tat < minTat {
			minKey, minTat, found = k, tat, true
		}
		if i++; i == sample {
			break
		}
	}
	if found {
		sh.spillArea().addTat(minKey, minTat)
		delete(sh.buckets, minKey)
		return true
	}
	return false
}

// Hash names key under the store's own seed: how memstore's string-keyed
// counters and buckets are named. Names from another hash share the maps
// (the guard's, under a seed of its own).
func (s *Store) Hash(key string) uint64 { return maphash.String(s.seed, key) }

func (s *Store) shardOf(h uint64) *shard { return &s.shards[h%numShards] }

// Now returns the store's clock (Options.Now) in unix nanoseconds: the now
// of the hashed methods.
func (s *Store) Now() int64 {
	if s.now == nil {
		return s.wall + int64(time.Since(s.start))
	}
	return s.now().UnixNano()
}

// The hashed methods have the semantics of captchagate.Store's methods of
// the same names at time now, on the counter or bucket named by h (it picks
// the shard and the map slot).

// Incr is captchagate.Store's Incr of the counter named by h at time now.
func (s *Store) Incr(h uint64, delta int64, window time.Duration, now int64) (int64, time.Time, error) {
	n, end := s.Add(h, delta, window, now)
	if end == 0 {
		return n, time.Time{}, nil
	}
	return n, time.UnixMilli(end), nil
}

// Add is Incr with the end of the window in unix milliseconds (0 when no
// counter is left), for the guard, which reads the end of a ceiling's window
// only, and never a failure counter's.
func (s *Store) Add(h uint64, delta int64, window time.Duration, now int64) (n, end int64) {
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs := s.ms(now)
	t := &sh.counters
	i, ok := t.find(h)
	var c counter
	if ok {
		if c = t.slots[i].c; nowMs >= c.end() {
			t.deleteAt(i)
			ok = false
		}
	}
	if !ok {
		// A counter the maps had no room for lives on in the spill, as an
		// over-count: a new counter starts from it.
		var spilled counter
		if sh.spill != nil {
			spilled = sh.spill.count(h, nowMs)
		}
		if delta <= 0 {
			// A read, or a give-back that cannot lower a spilled count.
			if spilled == 0 {
				return 0, 0
			}
			return spilled.n(), s.epoch + spilled.end()
		}
		until := nowMs + max((window+time.Millisecond-1).Milliseconds(), 1)
		if !s.room(sh, now, counterEntry, spilled.n()+delta) {
			c = sh.spillArea().addCount(h, until, delta, nowMs)
			return c.n(), s.epoch + c.end()
		}
		// A new counter (delta > 0): room may have moved entries, so
		// insert probes again.
		c = packCounter(until, spilled.n()+delta)
		if spilled.n() > 0 {
			c |= estimated
		}
		t.insert(h, c)
		return c.n(), s.epoch + c.end()
	}
	n = max(c.n()+delta, 0)
	if n == 0 && delta < 0 {
		// Given back to zero: gone in the same locked step, so a refused
		// request leaves no entry behind (and the slot is free for the
		// next request's counter).
		t.deleteAt(i)
		return 0, 0
	}
	if delta != 0 {
		c = packCounter(c.end(), n) | c&estimated
		t.slots[i].c = c
	}
	return c.n(), s.epoch + c.end()
}

// ms converts unix nanoseconds to milliseconds since the epoch (never
// negative).
func (s *Store) ms(now int64) int64 { return max(now/int64(time.Millisecond)-s.epoch, 0) }

// Reset is captchagate.Store's Reset of the counter named by h.
func (s *Store) Reset(h uint64) {
	sh := s.shardOf(h)
	sh.mu.Lock()
	if i, ok := sh.counters.find(h); ok {
		sh.counters.deleteAt(i)
	}
	delete(sh.buckets, h) // a send-rate bucket of that name (Guard.Reset)
	sh.mu.Unlock()
}

// Allow is captchagate.Store's Allow (GCRA: the bucket is one timestamp) of
// the bucket named by h at time now.
func (s *Store) Allow(h uint64, interval time.Duration, burst int, take bool, now int64) (bool, time.Duration, error) {
	if burst < 1 {
		burst = 1
	}
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.buckets[h]
	if !ok && sh.spill != nil {
		tat = sh.spill.tat(h) // a bucket the maps had no room for, never fuller
	}
	tat = max(tat, now)
	newTat := tat + int64(interval)
	limit := int64(interval) * int64(burst)
	if newTat-now > limit {
		return false, time.Duration(newTat - now - limit), nil
	}
	if !take {
		return true, 0, nil
	}
	if !ok && !s.room(sh, now, bucketEntry, 0) {
		sh.spillArea().addTat(h, newTat)
		return true, 0, nil
	}
	sh.buckets[h] = newTat
	return true, 0, nil
}

// Estimated reports whether the count of counter h is, or started from,
// the spill's over-estimate (it lives in the spill, or was created from
// it): it may be higher than what h counted.
func (s *Store) Estimated(h uint64, now int64) bool {
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.counters.find(h); ok {
		return sh.counters.slots[i].c&estimated != 0
	}
	return sh.spill != nil && sh.spill.count(h, s.ms(now)) != 0
}

// BucketEstimated reports whether bucket h lives in the spill: what Allow
// reads of it is an estimate that may be emptier than the bucket was.
func (s *Store) BucketEstimated(h uint64, now int64) bool {
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.buckets[h]
	return !ok && sh.spill != nil && sh.spill.tat(h) > now
}

// Put is captchagate.Store's Put. The value is copied.
func (s *Store) Put(key string, value []byte, ttl time.Duration) error {
	sh := s.shardOf(s.Hash(key))
	now := s.Now()
	v := append([]byte(nil), value...)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.items[key]; !ok && !s.room(sh, now, itemEntry, 0) {
		return ErrFull
	}
	sh.items[key] = item{v: v, exp: now + int64(ttl)}
	return nil
}

// Get is captchagate.Store's Get (del false) and Take (del true). The
// returned slice must not be modified.
func (s *Store) Get(key string, del bool) ([]byte, bool, error) {
	sh := s.shardOf(s.Hash(key))
	now := s.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it, ok := sh.items[key]
	if !ok {
		return nil, false, nil
	}
	if now >= it.exp {
		delete(sh.items, key)
		return nil, false, nil
	}
	if del {
		delete(sh.items, key)
	}
	return it.v, true, nil
}
