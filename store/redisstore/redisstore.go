// Package redisstore is a captchagate.Store on Redis, for gates that run as
// several instances: every instance sharing one Redis (and one
// Config.Secret) counts, issues and verifies as one gate.
//
// It takes the caller's client, so a single node, Sentinel (a failover
// *redis.Client) and Redis Cluster all work:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	store, err := redisstore.New(rdb, redisstore.Options{})
//	gate, err := captchagate.New(captchagate.Config{Secret: secret, Store: store})
//
// Counters and rate buckets are Lua scripts (run with EVALSHA, and with EVAL
// when Redis answers NOSCRIPT after a restart or SCRIPT FLUSH); items are SET
// with PX, GET and GETDEL. Each operation touches exactly one key, so nothing
// crosses hash slots on Cluster, and every key is written together with its
// TTL in the same atomic command: no key can be left without one.
//
// Counter operations leave in pipelines (the Store implements
// captchagate.Batcher): a guarded request hands over all its counting at
// once and waits for one round trip. A request that finds its lane idle
// sends its pipeline itself, on its own goroutine; what concurrent requests
// hand over while a pipeline is out leaves in the next one, sent by the
// lane's writer, so Redis and the client spend one read and one write on
// many operations. On a Cluster there is a lane per master, so a master
// that is dead or slow holds up only the operations on its own keys. Close
// stops the writers.
//
// # Writes behind
//
// When a guarded handler returns, the gate gives back what the request
// reserved and, on a success, resets the per-account counters. The store
// writes these behind (Batcher.Later): the request does not wait for them.
// A write behind waits up to Options.Linger (500µs) for the next request's
// counting, and leaves in the same pipeline: requests that follow each
// other cost one round trip each, not two. What the next request sees of
// them:
//
//   - On the same instance (the same Store), always: a lane runs counter
//     operations in the order they were handed over, and the guard hands
//     its give-back over before its ServeHTTP returns, so the give-back is
//     written before (or in the same pipeline as, ahead of) the counting of
//     any request that reaches a guard after that (the client has its
//     response only then, unless the handler flushed it early).
//   - On another instance, eventually: the write leaves within
//     Options.Linger, in the lane's next pipeline (a later one only if more
//     than Options.MaxBatch operations wait ahead of it), and each pipeline
//     is written or fails within Options.Timeout: so within the linger and
//     two Timeouts of the handler's return, the linger and one round trip
//     in the usual case. A write that fails, or that is dropped because the
//     queue is full, is reported (the gate's EventStoreError); one that
//     timed out may still reach Redis later.
//
// Writes behind only lower counts, so a late or lost one errs on the safe
// side: a lost give-back leaves a count one higher until its window ends,
// and a late reset can ask the user's next request on another instance for
// a captcha once (a lost one leaves the count as it was, until the next
// success or the window's end). Flush waits for the writes handed over so
// far (a lingering one leaves at once): tests call it before asking another
// instance what they changed, and a graceful shutdown before Close.
//
// # Failover
//
// On a Cluster, a master that dies shows as connection errors on its lane
// until a replica takes its slots. go-redis reloads its slot map only on
// MOVED or ASK, or once a minute, so the store has it reloaded on every
// connection error (at most once per 200ms): keys of the failed master
// come back as soon as the Cluster has failed it over, and keys of the
// other masters see no error meanwhile. Sentinel clients
// (redis.NewFailoverClient) follow the switch by themselves.
//
// Replication is asynchronous: a master that dies before its replica has a
// write loses it. For a counter that is a few counts; for a spend it would
// be a captcha or token accepted a second time after the failover. So when
// every master has a replica at New (or Options.Replicas says so), each
// spend is followed by WAIT on its connection, and counts only once a
// replica has acknowledged it within Options.ReplicaTimeout; otherwise it
// fails with ErrNotDurable and the gate refuses the answer (fail closed).
// A master left without any replica (after a failover, until a replica
// rejoins) refuses every spend: run two replicas per master, or set
// Replicas: -1 to trade single use across a failover for availability.
// docs/deployment.md has the measured figures.
//
// # Memory
//
// Captchas and tokens cost Redis no key: the store is a
// captchagate.Marker, so the gate seals them in their ids and keeps only
// spend marks, in Bloom filters of fixed size (see marks.go; 6 bytes per
// unit of Options.MarkCapacity) under an epoch key that changes when Redis
// loses its data, so a Redis restarted empty never accepts a spent captcha
// or token again.
//
// Every other key the store writes has a TTL, so every maxmemory-policy but
// noeviction can evict the gate's state once Redis reaches its maxmemory:
// allkeys-* evict any key, volatile-* any key with a TTL. A flood of
// unique keys (many usernames from many addresses) then evicts counters,
// an attacked account's among them, and the account is open again. Give
// the gate a Redis instance of its own (maxmemory and the policy are per
// instance, not per DB) with maxmemory-policy noeviction: nothing is
// evicted, and at maxmemory Redis refuses new keys. The store then runs
// each refused counter operation again as a variant flagged allow-oom
// (Redis 7): counters and buckets that exist go on counting (the attacked
// account stays tripped, its ceiling holds), and one that would create a
// key fails with ErrFull, which matches captchagate.ErrStoreFull: the gate
// asks that request for a captcha, which it can solve (the marks write
// into the space they reserved) and be let in with. So a full Redis
// degrades to captchas for newcomers, never to 503 and never to an
// uncounted guess. A counter takes about 160 bytes of Redis memory (144
// with a prefix of at most 4 bytes); size maxmemory for the keys alive at
// once. New warns on any other policy
// (Options.RequireSafeEviction refuses it). docs/redis.md has the
// measurements.
//
// A request refused after counting (a ceiling, a captcha required) gives
// its reservations back, and a counter given back to zero is deleted in
// the same script: refused requests leave no counter behind.
//
// # Lost replies
//
// go-redis re-sends a command, or a whole pipeline, when its connection
// fails before the reply arrives (the client's MaxRetries, 3 by default).
// After a lost reply Redis may already have run it: a re-sent script would
// count an increment or a give-back twice, or take two tokens, and a
// re-sent GETDEL would report a taken captcha as not found. The store takes
// the caller's client and cannot change its MaxRetries, so it marks those
// commands as not to be re-sent (go-redis's Cmder.NoRetry), whatever the
// client's options: a lost reply fails the call, and the operation ran
// once or not at all, never twice. An increment that ran and failed errs
// on the safe side (a count one higher until its window ends); a give-back
// that ran is not given twice. SET, GET and DEL, which are harmless to
// repeat, keep the client's retries. Redirects (MOVED, ASK) and errors
// Redis answers instead of running a command (NOSCRIPT, LOADING) are not
// lost replies and are handled as before.
//
// Keys are Options.Prefix followed by the gate's key, which is a kind letter
// and a keyed hash (HMAC-SHA256 with the gate's secret) of the counted value,
// or "{marks}:" and the spend marks' generation: usernames, phone numbers,
// emails and IP addresses never reach Redis, nor do captchas' answers
// (sealed in their ids under the gate's secret).
//
// Time is the application's clock (Options.Now), as for the in-memory store,
// so instances sharing a Redis should keep their clocks in step (NTP); a skew
// of s shifts windows and expiries by at most s.
//
// Requires Redis 7.0 or later (GETDEL, and script flags for allow-oom): New
// refuses an older one.
package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
)

var _ captchagate.Store = (*Store)(nil)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Prefix starts every key the store writes. Default "captchagate:". It
	// must not contain '{' or '}', which would pin every key to one Cluster
	// hash slot.
	Prefix string

	// Now returns the current time. Default time.Now. Tests inject a clock.
	Now func() time.Time

	// MaxBatch is the most counter operations sent in one pipeline.
	// Default 256.
	MaxBatch int

	// Queue is how many hand-overs (a request's counting, a give-back) may
	// wait for the pipeline writer. Default 4096. When it is full, a request
	// waits for room within its context's deadline, and a give-back is
	// dropped and reported: the counter then stays one higher until its
	// window ends, which can ask for a captcha early but never lets a
	// request through.
	Queue int

	// Timeout bounds one pipeline's round trip. Default one second; the
	// requests waiting on it give up at their own deadlines
	// (captchagate.Config.StoreTimeout). It also bounds New's check of the
	// eviction policy.
	Timeout time.Duration

	// Logger receives New's warning when Redis's maxmemory-policy can evict
	// the gate's state (anything but noeviction), or cannot be read.
	// Default slog.Default().
	Logger *slog.Logger

	// RequireSafeEviction makes New return an error instead of a warning
	// when a server's maxmemory-policy is not noeviction, or when it cannot
	// be read (Redis unreachable, or CONFIG and INFO both refused to this
	// client). Default false: New warns and goes on.
	RequireSafeEviction bool

	// Linger is how long a write behind (a give-back or a reset handed
	// over by Later) may wait for the next request's counting, so that both
	// leave in one pipeline: a request that follows another on the same
	// instance then costs one round trip, not two (the give-back's, then
	// its own). Default 500µs; a negative value sends writes behind at once.
	// A Do, a Flush or a full batch ends the wait.
	Linger time.Duration

	// Replicas is how many replicas must acknowledge a spend (a captcha
	// answered or a token redeemed: Mark; and Take) before it counts. The
	// store sends WAIT on the spend's connection, bounded by
	// ReplicaTimeout, and a spend fewer replicas acknowledge fails with
	// ErrNotDurable: the gate refuses that answer or token (fail closed),
	// so a failover to a replica that had not seen the spend cannot accept
	// it a second time. 0 (the default) waits for one replica when, at New,
	// a server the store writes to has a connected replica, and for none
	// otherwise; -1 never waits. Counters do not wait: a counter lost in a
	// failover errs by a few counts, a spend lost would be accepted twice.
	// See "Failover" in the package doc.
	Replicas int

	// ReplicaTimeout bounds WAIT. Default 100ms.
	ReplicaTimeout time.Duration

	// MarkCapacity is how many captchas and tokens spent within a life
	// (captchagate.Config.CaptchaTTL, or TokenTTL if longer, and a minute)
	// the spend marks hold with few false "spent" (one in 2,000 at
	// capacity, more beyond it: an answer refused, never one accepted
	// twice). Default DefaultMarkCapacity; the marks take 6 bytes per unit
	// of capacity (1.5 MiB by default), outside maxmemory's reach (see
	// "Memory").
	MarkCapacity int
}

// DefaultMarkCapacity is Options.MarkCapacity's default.
const DefaultMarkCapacity = 1 << 18

// Store is a captchagate.Store and captchagate.Batcher on Redis. It is safe
// for concurrent use; its state lives in Redis, and its pipeline writers
// (one per master) run until Close.
type Store struct {
	c        redis.UniversalClient
	cluster  *redis.ClusterClient // c, when it is one: a lane per master
	prefix   string
	now      func() time.Time
	maxBatch int
	queueLen int
	linger   time.Duration
	timeout  time.Duration
	markBits uint64 // bits of a generation of spend marks, a power of two
	replicas int    // replicas a spend waits for (WAIT); 0: none
	waitFor  time.Duration
	logger   *slog.Logger

	one      *lane    // every operation's lane, but on a Cluster
	lanes    sync.Map // Cluster: master address → *lane
	lanesMu  sync.Mutex
	stop     chan struct{}
	closeOne sync.Once

	reportMu sync.Mutex
	running  map[chan struct{}]struct{} // reports not yet returned
}

var _ captchagate.Batcher = (*Store)(nil)

// New returns a Store on c.
//
// New reads the maxmemory-policy of the servers c writes to (CONFIG GET,
// or INFO memory where CONFIG is refused), within Options.Timeout, and
// warns through Options.Logger (or fails, with
// Options.RequireSafeEviction) on a policy that can evict the gate's
// state: see "Memory" in the package doc.
//
// The gate bounds how long a request waits on its store through context
// deadlines (captchagate.Config.StoreTimeout), so c must honour them: New
// returns an error for a *redis.Client, *redis.ClusterClient or *redis.Ring
// whose options do not set ContextTimeoutEnabled.
func New(c redis.UniversalClient, o Options) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if o.Prefix == "" {
		o.Prefix = "captchagate:"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: Options.Prefix %q must not contain '{' or '}'", o.Prefix)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !honoursDeadlines(c) {
		return nil, errors.New("redisstore: the client ignores context deadlines, so a request could wait on Redis " +
			"for the client's ReadTimeout; set ContextTimeoutEnabled: true in its options")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Linger == 0 {
		o.Linger = 500 * time.Microsecond
	}
	if o.ReplicaTimeout <= 0 {
		o.ReplicaTimeout = 100 * time.Millisecond
	}
	if err := checkEviction(c, o); err != nil {
		return nil, err
	}
	if err := checkScriptFlags(c, o); err != nil {
		return nil, err
	}
	if o.MarkCapacity <= 0 {
		o.MarkCapacity = DefaultMarkCapacity
	}
	bits := uint64(1 << 16)
	for bits < 16*uint64(o.MarkCapacity) {
		bits <<= 1
	}
	replicas, err := replicasFor(c, o)
	if err != nil {
		return nil, err
	}
	s := &Store{c: c, prefix: o.Prefix, now: o.Now, maxBatch: o.MaxBatch, queueLen: o.Queue, linger: max(o.Linger, 0),
		timeout: o.Timeout, markBits: bits, replicas: replicas, waitFor: o.ReplicaTimeout, logger: o.Logger,
		stop: make(chan struct{}), running: make(map[chan struct{}]struct{})}
	s.cluster, _ = c.(*redis.ClusterClient)
	s.one = s.newLane()
	return s, nil
}

func honoursDeadlines(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true // a wrapper of the caller's own: its business
}

// micros converts a duration to whole microseconds, at least 1.
func micros(d time.Duration) int64 { return max(d.Microseconds(), 1) }

// incrScript adds to a fixed-window counter kept as a string of 12 bytes,
// struct-packed little-endian: the end of its window in unix microseconds
// (8 bytes) and the count (4 bytes). Redis keeps so short a string in the
// key's object itself, so a counter costs less than as a hash {n, e} (what
// earlier versions wrote: the script still reads one, and rewrites it
// packed). A counter is absent once now >= e, whether or not Redis has
// expired the key yet; the key's TTL is set when the window starts, in the
// same script, and kept (KEEPTTL) by later counts.
//
// A give-back that brings the count to zero deletes the key in the same
// script: a request refused after counting (and given back) leaves no key
// behind, so a flood of refused requests with unique keys costs Redis no
// memory. The counter is then absent, as if never created: the next
// increment starts a new window.
//
// One run applies several deltas to the counter, in order, with the
// semantics of as many runs one after another: the increments of one key
// that share a pipeline (a request's reservation after the previous
// request's give-back, concurrent requests of one address) cost Redis one
// script, not one each.
//
// KEYS[1] counter; ARGV: window (µs), now (µs), then the deltas. Returns
// {n, e} after each delta, e = 0 when there is no counter (none before, or
// given back to zero).
var incrScript, incrFullScript = newScript(incrSrc), newFullScript(incrSrc,
	"(function() for i = 3, #ARGV do if tonumber(ARGV[i]) > 0 then return true end end return false end)()")

const incrSrc = `
local window = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local n, e
local packed = true
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then
  local h = redis.call('HMGET', KEYS[1], 'n', 'e')
  n, e = tonumber(h[1]), tonumber(h[2])
  packed = false
elseif v and #v == 12 then
  e, n = struct.unpack('<i8i4', v)
end
if n == nil or e == nil or now >= e then n, e = nil, nil end
local changed, fresh = not packed, not packed
local out = {}
for i = 3, #ARGV do
  local delta = tonumber(ARGV[i])
  if n == nil then
    if delta > 0 then n, e, changed, fresh = delta, now + window, true, true end
  elseif delta ~= 0 then
    n, changed = n + delta, true
    if n <= 0 then n, e = nil, nil end
  end
  out[#out + 1] = n or 0
  out[#out + 1] = e or 0
end
if changed then
  if n == nil then
    redis.call('DEL', KEYS[1])
  elseif fresh then
    redis.call('SET', KEYS[1], struct.pack('<i8i4', e, n), 'PX', math.ceil((e - now) / 1000))
  else
    redis.call('SET', KEYS[1], struct.pack('<i8i4', e, n), 'KEEPTTL')
  end
end
return out
`

// allowScript is GCRA on one key holding the theoretical arrival time (µs).
//
// KEYS[1] bucket; ARGV: interval (µs), burst, take (0/1), now (µs). Returns
// {1, 0} when a token is (taken or) available, {0, wait µs} otherwise.
var allowScript, allowFullScript = newScript(allowSrc), newFullScript(allowSrc, "ARGV[3] == '1'")

const allowSrc = `
local now = tonumber(ARGV[4])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local newtat = tat + interval
local excess = newtat - now - interval * tonumber(ARGV[2])
if excess > 0 then return {0, excess} end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%d', newtat), 'PX', math.ceil((newtat - now) / 1000))
end
return {1, 0}
`

// returnScript gives back one token of a GCRA bucket (Store.Return): its
// arrival time moves back by interval, and a bucket full again is deleted.
//
// KEYS[1] bucket; ARGV: interval (µs), now (µs). Returns {1, 0} when the
// bucket stays, {0, 0} when it is (or was) gone.
var returnScript, returnFullScript = newScript(returnSrc), newFullScript(returnSrc, "false")

const returnSrc = `
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil then return {0, 0} end
local now = tonumber(ARGV[2])
tat = tat - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return {1, 0}
`

// newFullScript is the variant of a counter script that runs when Redis is
// full (at maxmemory under noeviction, where it refuses the plain one with
// OOM before it writes anything): flagged allow-oom (Redis 7), it changes
// keys that exist, which costs no memory worth counting, and instead of
// creating a key (when creates, a Lua condition, holds and the key is
// absent) it returns {-1, 0}: the op fails with ErrFull, and the gate asks
// that request for a captcha. So at maxmemory an attacked account's
// counter still counts, and reads and give-backs work, while nothing new
// is written.
func newFullScript(src, creates string) script {
	return newScript("#!lua flags=allow-oom\n" +
		"if " + creates + " and redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end\n" + src)
}

// Incr implements captchagate.Store.
func (s *Store) Incr(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	op := [1]captchagate.Op{{Kind: captchagate.OpIncr, Key: key, Delta: delta, Window: window}}
	s.Do(ctx, op[:])
	return op[0].N, op[0].Reset, op[0].Err
}

// Reset implements captchagate.Store.
func (s *Store) Reset(ctx context.Context, key string) error {
	op := [1]captchagate.Op{{Kind: captchagate.OpReset, Key: key}}
	s.Do(ctx, op[:])
	return op[0].Err
}

// Allow implements captchagate.Store.
func (s *Store) Allow(ctx context.Context, key string, interval time.Duration, burst int, take bool) (bool, time.Duration, error) {
	op := [1]captchagate.Op{{Kind: captchagate.OpAllow, Key: key, Interval: interval, Burst: burst, Take: take}}
	s.Do(ctx, op[:])
	return op[0].OK, op[0].Wait, op[0].Err
}

// Return implements captchagate.Returner.
func (s *Store) Return(ctx context.Context, key string, interval time.Duration) error {
	op := [1]captchagate.Op{{Kind: captchagate.OpReturn, Key: key, Interval: interval}}
	s.Do(ctx, op[:])
	return op[0].Err
}

// exec runs the operations of bs in one pipeline and fills in their
// results. Scripts Redis had lost (NOSCRIPT) are sent again whole, and
// counter operations Redis refused as full (OOM, before writing anything)
// are sent again as their full variants (newFullScript), in one more
// pipeline each.
func (s *Store) exec(ctx context.Context, bs []*batch) {
	var ops []*captchagate.Op
	for _, b := range bs {
		for i := range b.ops {
			ops = append(ops, &b.ops[i])
		}
	}
	if len(ops) == 0 {
		return // only marks of Flush
	}
	us := units(ops)
	now := s.now().UnixMicro()
	cmds := make([]redis.Cmder, len(us))
	var isFull []bool // made only when Redis refused something as full
	all := func(redis.Cmder) bool { return true }
	noScript := func(c redis.Cmder) bool { return isNoScript(c.Err()) }
	s.pipe(ctx, us, cmds, isFull, now, all, false)
	s.pipe(ctx, us, cmds, isFull, now, noScript, true)
	refusedFull := func(c redis.Cmder) bool {
		_, ok := c.(*redis.Cmd) // a script, not a DEL
		return ok && errors.Is(full(c.Err()), ErrFull)
	}
	if slices.ContainsFunc(cmds, refusedFull) {
		isFull = make([]bool, len(us))
		for j, c := range cmds {
			isFull[j] = refusedFull(c)
		}
		s.pipe(ctx, us, cmds, isFull, now, refusedFull, false)
		s.pipe(ctx, us, cmds, isFull, now, noScript, true)
	}
	reloaded := false
	for j, u := range us {
		s.result(u, cmds[j])
		if !reloaded && u[0].Err != nil {
			s.reloadOnConnError(u[0].Err)
			reloaded = true
		}
	}
}

// A unit is what one command of a pipeline runs: one operation, or the
// increments of one counter (same key, same window), in the order handed
// over, that no other operation on the key separates.
type unit []*captchagate.Op

// units groups ops into the commands of a pipeline.
func units(ops []*captchagate.Op) []unit {
	us := make([]unit, 0, len(ops))
	if len(ops) == 1 {
		return append(us, unit(ops))
	}
	if len(ops) <= 16 {
		// Few: the key's latest unit, found by a scan (no map).
	next:
		for _, op := range ops {
			for j := len(us) - 1; j >= 0; j-- {
				if u := us[j]; u[0].Key == op.Key {
					if op.Kind == captchagate.OpIncr && u[0].Kind == captchagate.OpIncr && u[0].Window == op.Window {
						us[j] = append(u, op)
						continue next
					}
					break
				}
			}
			us = append(us, unit{op})
		}
		return us
	}
	open := make(map[string]int) // key → its increments' unit, while open
	for _, op := range ops {
		if op.Kind != captchagate.OpIncr {
			delete(open, op.Key) // a reset or a bucket op ends the run
			us = append(us, unit{op})
			continue
		}
		if j, ok := open[op.Key]; ok && us[j][0].Window == op.Window {
			us[j] = append(us[j], op)
			continue
		}
		open[op.Key] = len(us)
		us = append(us, unit{op})
	}
	return us
}

// pipe sends, in one pipeline, the units whose command which selects
// (every one, the first time, when cmds are all nil), as their full
// variants where isFull says so, and replaces their commands; nothing is
// sent if none is selected.
func (s *Store) pipe(ctx context.Context, us []unit, cmds []redis.Cmder, isFull []bool, now int64, which func(redis.Cmder) bool, eval bool) {
	if !slices.ContainsFunc(cmds, which) {
		return
	}
	s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, u := range us {
			if which(cmds[j]) {
				cmds[j] = s.queueUnit(ctx, p, u, now, eval, isFull != nil && isFull[j])
			}
		}
		return nil
	})
}

// queueUnit adds u to p: a script (by its SHA, or whole with eval; the
// variant for a full Redis with isFull) or a DEL.
func (s *Store) queueUnit(ctx context.Context, p redis.Pipeliner, u unit, now int64, eval, isFull bool) redis.Cmder {
	op := u[0]
	key := s.prefix + op.Key
	switch op.Kind {
	case captchagate.OpIncr:
		sc := incrScript
		if isFull {
			sc = incrFullScript
		}
		args := make([]any, 2, 2+len(u))
		args[0], args[1] = micros(op.Window), now
		for _, op := range u {
			args = append(args, op.Delta)
		}
		return queueOnce(ctx, p, sc, eval, key, args...)
	case captchagate.OpAllow:
		take := 0
		if op.Take {
			take = 1
		}
		sc := allowScript
		if isFull {
			sc = allowFullScript
		}
		return queueOnce(ctx, p, sc, eval, key, micros(op.Interval), max(op.Burst, 1), take, now)
	case captchagate.OpReset:
		return p.Del(ctx, key)
	case captchagate.OpReturn:
		sc := returnScript
		if isFull {
			sc = returnFullScript
		}
		return queueOnce(ctx, p, sc, eval, key, micros(op.Interval), now)
	}
	// An unknown kind still takes its place in the pipeline, as an error.
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(fmt.Errorf("redisstore: unknown operation %d", op.Kind))
	return cmd
}

// result reads u's reply: a pair {n, e} (or {ok, wait}) for each of its
// operations, or {-1, 0} from a full variant that would have created a key.
func (s *Store) result(u unit, c redis.Cmder) {
	fail := func(err error) {
		for _, op := range u {
			op.Err = err
		}
	}
	if err := full(c.Err()); err != nil {
		fail(err)
		return
	}
	cmd, ok := c.(*redis.Cmd)
	if !ok { // DEL
		return
	}
	res, err := cmd.Int64Slice()
	switch {
	case err != nil:
		fail(err)
		return
	case len(res) == 2 && res[0] == -1:
		fail(fullError{errNoRoom})
		return
	case len(res) != 2*len(u):
		fail(errors.New("redisstore: unexpected reply to a script"))
		return
	}
	for i, op := range u {
		n, e := res[2*i], res[2*i+1]
		switch op.Kind {
		case captchagate.OpIncr:
			if e != 0 {
				op.N, op.Reset = n, time.UnixMicro(e)
			}
		case captchagate.OpAllow:
			op.OK, op.Wait = n == 1, time.Duration(e)*time.Microsecond
		}
	}
}

// errNoRoom is a full script's refusal to create a key.
var errNoRoom = errors.New("OOM: no room for a new key")

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Items are stored with their expiry (unix µs, 8 bytes big-endian) in front,
// so that expiry follows Options.Now exactly; the key's PX TTL removes them.

// Put implements captchagate.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return s.c.Del(ctx, s.prefix+key).Err()
	}
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(s.now().Add(ttl).UnixMicro()))
	b = append(b, value...)
	return full(s.c.Set(ctx, s.prefix+key, b, max(ttl, time.Millisecond)).Err())
}

// Get implements captchagate.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	cmd := s.c.Get(ctx, s.prefix+key)
	s.reloadOnConnError(cmd.Err())
	return s.item(cmd)
}

// Take implements captchagate.Store with GETDEL: of many concurrent Takes,
// Redis hands the item to one. GETDEL is sent at most once (see once.go): a
// lost reply fails the call rather than re-sending it, which would report
// a taken item as not found.
func (s *Store) Take(ctx context.Context, key string) ([]byte, bool, error) {
	cmd, err := s.getDel(ctx, s.prefix+key)
	if err != nil {
		return nil, false, err
	}
	return s.item(cmd)
}

func (s *Store) item(cmd *redis.StringCmd) ([]byte, bool, error) {
	b, err := cmd.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case len(b) < 8:
		return nil, false, errors.New("redisstore: malformed item")
	}
	if s.now().UnixMicro() >= int64(binary.BigEndian.Uint64(b)) {
		return nil, false, nil
	}
	return b[8:], true, nil
}
