package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
)

var _ captchagate.Marker = (*Store)(nil)

// Spend marks (captchagate.Marker): with this store the gate seals
// captchas and tokens in their ids and keeps only a mark for each one spent,
// in Bloom filters of fixed size: one Redis string of bits per generation of
// a life (the longest a captcha or token can be answered), three alive at a
// time, so that instances whose clocks differ by up to a life still see each
// other's marks. A mark sets markHashes bits of its generation; it is spent
// if all its bits are set in any of the three. The bits cost
// 3 × 16 × Options.MarkCapacity bits (6 MiB by default), and their keys are
// written with allow-oom (Redis 7): answering works when Redis is full.
//
// The epoch is a key without a TTL beside them, created by the first Mark:
// a Redis that lost its data (restarted empty, flushed, or evicted it)
// creates a new one, and every id sealed before is refused.
//
// Every key shares the hash tag {marks}: one Cluster slot, no CROSSSLOT.

// markHashes is the number of bits a mark sets: with 16 bits a mark, a
// filter holding MarkCapacity marks answers a false "spent" for about one
// mark in 2,000.
const markHashes = 11

// markScript: KEYS epoch, generations g-1, g, g+1; ARGV epoch, a new epoch
// (if there is none), peek (1/0), the time until generation g+2 ends (ms),
// then the mark's bit positions. Returns {fresh (1/0), epoch}.
var markScript = newScript(`#!lua flags=allow-oom
local e = redis.call('GET', KEYS[1])
if not e then
  if ARGV[3] == '1' then return {0, '0'} end
  e = ARGV[2]
  redis.call('SET', KEYS[1], e)
end
if e ~= ARGV[1] then return {0, e} end
for k = 2, 4 do
  local all = true
  for i = 5, #ARGV do
    if redis.call('GETBIT', KEYS[k], ARGV[i]) == 0 then all = false break end
  end
  if all then return {0, e} end
end
if ARGV[3] == '1' then return {1, e} end
for i = 5, #ARGV do redis.call('SETBIT', KEYS[3], ARGV[i], 1) end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {1, e}
`)

// Mark implements captchagate.Marker.
func (s *Store) Mark(ctx context.Context, epoch uint64, mark []byte, life time.Duration, peek bool) (bool, uint64, error) {
	if life <= 0 {
		return false, 0, errors.New("redisstore: Mark needs a positive life")
	}
	if epoch != 0 && len(mark) < 12 {
		return false, 0, errors.New("redisstore: a mark has at least 12 bytes")
	}
	// The epoch the script creates if Redis has none: drawn afresh for
	// every call, never kept, so that an epoch lost with Redis's data is
	// not proposed again (the ids sealed in it would then open).
	var fresh [8]byte
	for binary.BigEndian.Uint64(fresh[:]) == 0 {
		if _, err := rand.Read(fresh[:]); err != nil {
			return false, 0, err
		}
	}
	period := life.Milliseconds()
	now := s.now().UnixMilli()
	gen := now / period
	base := s.prefix + "{marks}:" + strconv.FormatInt(period, 10) + ":"
	keys := []string{s.prefix + "{marks}:e", base + strconv.FormatInt(gen-1, 10),
		base + strconv.FormatInt(gen, 10), base + strconv.FormatInt(gen+1, 10)}
	p := "0"
	if peek {
		p = "1"
	}
	args := make([]any, 0, 4+markHashes)
	args = append(args, strconv.FormatUint(epoch, 10), strconv.FormatUint(binary.BigEndian.Uint64(fresh[:]), 10), p,
		(gen+3)*period-now) // relative: Redis expires keys on its own clock
	if epoch != 0 {
		h1 := binary.LittleEndian.Uint64(mark)
		h2 := uint64(binary.LittleEndian.Uint32(mark[8:])) | 1
		for i := range uint64(markHashes) {
			args = append(args, (h1+i*h2)&(s.markBits-1))
		}
	}
	cmd, err := s.runOnce(ctx, markScript, keys, args, epoch != 0 && !peek)
	if err != nil {
		return false, 0, full(err)
	}
	res, err := cmd.Slice()
	if err != nil {
		return false, 0, full(err)
	}
	if len(res) != 2 {
		return false, 0, errors.New("redisstore: unexpected reply to the mark script")
	}
	n, _ := res[0].(int64)
	es, _ := res[1].(string)
	cur, err := strconv.ParseUint(es, 10, 64)
	if err != nil {
		return false, 0, fmt.Errorf("redisstore: malformed epoch %q", es)
	}
	return n == 1 && cur == epoch, cur, nil
}

// checkScriptFlags loads the mark script (flagged allow-oom, which needs
// Redis 7) within o.Timeout, and returns an error if Redis cannot compile
// it. Other failures (Redis unreachable at start, SCRIPT refused by ACL)
// are left for the first Mark to report.
func checkScriptFlags(c redis.UniversalClient, o Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	err := c.ScriptLoad(ctx, markScript.src).Err()
	if refused(err) {
		// Managed services often refuse SCRIPT to applications: scripts
		// still run (EVALSHA, and EVAL after NOSCRIPT), but New cannot see
		// whether Redis compiles flagged scripts (7.0 or later).
		o.Logger.Info("redisstore: cannot check that Redis runs scripts with flags (SCRIPT LOAD refused); "+
			"Redis 7.0 or later is required, and an older one fails the first spend", "err", err)
		return nil
	}
	return tooOld(err)
}

// tooOld turns Redis's refusal to compile a script with flags (Redis
// before 7.0 reads "#!lua" as Lua) into New's error.
func tooOld(err error) error {
	if err != nil && strings.Contains(err.Error(), "Error compiling script") {
		return fmt.Errorf("redisstore: Redis 7.0 or later is required (scripts with flags): %w", err)
	}
	return nil
}

// runOnce runs sc on keys with args as one command that go-redis never
// re-sends: by its SHA1, and whole after NOSCRIPT. A spend (spend set)
// waits for replicas, when the store does (see durable.go).
func (s *Store) runOnce(ctx context.Context, sc script, keys []string, args []any, spend bool) (*redis.Cmd, error) {
	run := func(eval bool) (*redis.Cmd, error) {
		a := make([]any, 0, 3+len(keys)+len(args))
		if eval {
			a = append(a, "eval", sc.src, len(keys))
		} else {
			a = append(a, "evalsha", sc.sha, len(keys))
		}
		for _, k := range keys {
			a = append(a, k)
		}
		cmd := redis.NewCmd(ctx, append(a, args...)...)
		cmd.SetFirstKeyPos(3)
		if spend && s.replicas > 0 {
			_, err := s.durably(ctx, keys[0], func(p redis.Pipeliner) redis.Cmder {
				_ = p.Process(ctx, onceCmd{cmd})
				return cmd
			})
			return cmd, err
		}
		_ = s.c.Process(ctx, onceCmd{cmd})
		s.reloadOnConnError(cmd.Err())
		return cmd, cmd.Err()
	}
	cmd, err := run(false)
	if isNoScript(cmd.Err()) {
		cmd, err = run(true)
	}
	return cmd, err
}
