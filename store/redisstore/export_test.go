package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Key returns the Redis key under which the store keeps the gate's key k,
// for tests that look at Redis directly.
func (s *Store) Key(k string) string { return s.prefix + k }

// TooOld is tooOld, for a test of New's version check: the Redis of the
// tests is new enough.
var TooOld = tooOld

// CountIn reads the count of the counter at the gate's key k straight from
// Redis (redis.Nil when there is none), for tests that look at Redis
// directly: see incrScript for the packed format.
func (s *Store) CountIn(ctx context.Context, c redis.Cmdable, k string) (int64, error) {
	b, err := c.Get(ctx, s.Key(k)).Bytes()
	if err != nil {
		return 0, err
	}
	if len(b) != 12 {
		return 0, fmt.Errorf("counter %s: %d bytes, want 12", k, len(b))
	}
	return int64(int32(binary.LittleEndian.Uint32(b[8:]))), nil
}
