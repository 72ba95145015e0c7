package captchagate

import (
	"context"
	"time"
)

// Store keeps the gate's state: failure and ceiling counters, send-rate
// buckets, and short-lived items (captchas and tokens). Implementations must be
// safe for concurrent use, and every method must be atomic on its own: two
// concurrent Incr calls never lose an update, and two concurrent Take calls of
// one key never both find it.
//
// Keys are opaque strings chosen by the gate (a short prefix and a keyed hash;
// raw usernames, emails, phones and IPs never reach a Store). Expiry must be
// checked on read: an expired counter, bucket or item behaves as absent even if
// no janitor has removed it.
//
// err is for system failures only (store unreachable, timeout, full); "not
// found" is reported through found, never as an error.
//
// The in-memory implementation is store/memstore; store/storetest holds the
// conformance suite every backend should pass.
type Store interface {
	// Incr adds delta to the fixed-window counter at key and returns the new
	// count and the end of the current window. A counter that does not exist or
	// has expired starts at zero with a window of the given length. A negative
	// delta never takes the count below zero and never creates a counter; a zero
	// delta reads the count without creating anything (reset is then the zero
	// time if there is no counter).
	Incr(ctx context.Context, key string, delta int64, window time.Duration) (n int64, reset time.Time, err error)

	// Reset deletes the counter at key. Resetting a missing key is not an error.
	Reset(ctx context.Context, key string) error

	// Allow is a GCRA token bucket with the semantics of golang.org/x/time/rate:
	// one token every interval, at most burst tokens. With take it atomically
	// takes one token if one is available; without, it only reports whether one
	// is. When ok is false, wait is how long until a token is available.
	Allow(ctx context.Context, key string, interval time.Duration, burst int, take bool) (ok bool, wait time.Duration, err error)

	// Put stores value at key for ttl, replacing any previous item.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Get returns the item at key without removing it.
	Get(ctx context.Context, key string) (value []byte, found bool, err error)

	// Take returns the item at key and removes it, atomically: of many
	// concurrent Takes of one key, at most one finds it.
	Take(ctx context.Context, key string) (value []byte, found bool, err error)
}
