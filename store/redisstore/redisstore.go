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
// Every operation is one round trip: counters and rate buckets are Lua
// scripts (run with EVALSHA, and with EVAL when Redis answers NOSCRIPT after a
// restart or SCRIPT FLUSH), items are SET with PX, GET and GETDEL. Each
// operation touches exactly one key, so nothing crosses hash slots on
// Cluster, and every key is written together with its TTL in the same atomic
// command: no key can be left without one.
//
// Keys are Options.Prefix followed by the gate's key, which is a kind letter
// and a keyed hash (HMAC-SHA256 with the gate's secret) of the counted value,
// or a random captcha id: usernames, phone numbers, emails and IP addresses
// never reach Redis. Captcha records hold the captcha's answer, as every
// captcha store must; protect Redis as you protect your sessions.
//
// Time is the application's clock (Options.Now), as for the in-memory store,
// so instances sharing a Redis should keep their clocks in step (NTP); a skew
// of s shifts windows and expiries by at most s.
//
// Requires Redis 6.2 or later (GETDEL).
package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
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
}

// Store is a captchagate.Store on Redis. It is safe for concurrent use and
// holds no state of its own besides the client.
type Store struct {
	c      redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New returns a Store on c.
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
	return &Store{c: c, prefix: o.Prefix, now: o.Now}, nil
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

// Key returns the Redis key under which the store keeps the gate's key k.
func (s *Store) Key(k string) string { return s.prefix + k }

// micros converts a duration to whole microseconds, at least 1.
func micros(d time.Duration) int64 { return max(d.Microseconds(), 1) }

// incrScript adds to a fixed-window counter kept as a hash {n, e}: the count
// and the end of its window in unix microseconds. A counter is absent once
// now >= e, whether or not Redis has expired the key yet; the key's TTL is
// set when the window starts, in the same script, and HSET keeps it.
//
// KEYS[1] counter; ARGV: delta, window (µs), now (µs). Returns {n, e}, e = 0
// when there is no counter.
var incrScript = redis.NewScript(`
local now = tonumber(ARGV[3])
local delta = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local n, e = tonumber(v[1]), tonumber(v[2])
if n == nil or e == nil or now >= e then
  if delta <= 0 then return {0, 0} end
  n = 0
  e = now + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'n', delta, 'e', e)
  redis.call('PEXPIRE', KEYS[1], math.ceil((e - now) / 1000))
  return {delta, e}
end
if delta == 0 then return {n, e} end
n = n + delta
if n < 0 then n = 0 end
redis.call('HSET', KEYS[1], 'n', n)
return {n, e}
`)

// allowScript is GCRA on one key holding the theoretical arrival time (µs).
//
// KEYS[1] bucket; ARGV: interval (µs), burst, take (0/1), now (µs). Returns
// {1, 0} when a token is (taken or) available, {0, wait µs} otherwise.
var allowScript = redis.NewScript(`
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
`)

// Incr implements captchagate.Store.
func (s *Store) Incr(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	now := s.now().UnixMicro()
	res, err := incrScript.Run(ctx, s.c, []string{s.prefix + key}, delta, micros(window), now).Int64Slice()
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(res) != 2 {
		return 0, time.Time{}, errors.New("redisstore: unexpected reply to incr")
	}
	if res[1] == 0 {
		return 0, time.Time{}, nil
	}
	return res[0], time.UnixMicro(res[1]), nil
}

// Reset implements captchagate.Store.
func (s *Store) Reset(ctx context.Context, key string) error {
	return s.c.Del(ctx, s.prefix+key).Err()
}

// Allow implements captchagate.Store.
func (s *Store) Allow(ctx context.Context, key string, interval time.Duration, burst int, take bool) (bool, time.Duration, error) {
	t := 0
	if take {
		t = 1
	}
	now := s.now().UnixMicro()
	res, err := allowScript.Run(ctx, s.c, []string{s.prefix + key}, micros(interval), max(burst, 1), t, now).Int64Slice()
	if err != nil {
		return false, 0, err
	}
	if len(res) != 2 {
		return false, 0, errors.New("redisstore: unexpected reply to allow")
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
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
	return s.c.Set(ctx, s.prefix+key, b, max(ttl, time.Millisecond)).Err()
}

// Get implements captchagate.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return s.item(s.c.Get(ctx, s.prefix+key))
}

// Take implements captchagate.Store with GETDEL: of many concurrent Takes,
// Redis hands the item to one.
func (s *Store) Take(ctx context.Context, key string) ([]byte, bool, error) {
	return s.item(s.c.GetDel(ctx, s.prefix+key))
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
