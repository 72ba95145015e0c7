package captchagate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/captchagate/captchagate/store/memstore"
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
	// delta never takes the count below zero and never creates a counter, and a
	// counter it brings to zero is deleted in the same atomic step (a later zero
	// delta finds no counter): a count given back leaves no entry behind. A zero
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

// ErrStoreFull is matched (errors.Is) by the error of a store that has
// reached its memory bound and cannot create a new counter, bucket or item
// (store/redisstore's ErrFull, a Redis at maxmemory under noeviction, wraps
// it). The gate degrades on it: the request is asked for a captcha (which
// costs a store no entry when the store is a Marker) instead of being
// refused with 503, under FailClosed and FailOpen alike. Counters that
// exist go on counting.
var ErrStoreFull = errors.New("captchagate: store is full")

// storeFull reports whether err says the store is full: ErrStoreFull, or
// the in-memory store's ErrFull.
func storeFull(err error) bool {
	return errors.Is(err, ErrStoreFull) || errors.Is(err, memstore.ErrFull)
}

// Marker is an optional interface of a Store shared by several instances
// (store/redisstore implements it). The gate then seals captchas and tokens
// in their ids (AES-GCM under the gate's secret) instead of storing them,
// and keeps only a spend mark for each one answered or redeemed, in
// structures of fixed size: a flood of captchas or tokens costs the store
// nothing, and answering works even when the store is full.
//
// Marks belong to an epoch: a random value, other than 0, that the store
// creates when it has none and changes whenever it may have lost marks (a
// Redis that restarted empty). An id records the epoch it was sealed in,
// and is refused in any other, so a store that lost its marks never
// accepts a spent captcha or token again.
type Marker interface {
	// Mark sets the spend mark mark (random bytes, at least 12) in the
	// current epoch and reports whether it was unset: of concurrent Marks
	// of one mark, at most one reports fresh. With peek it only reports
	// whether the mark is unset. When epoch is not the store's current
	// epoch (0 asks for it), nothing is set, fresh is false, and current
	// is the store's epoch, created unless peek (0 when peek finds none).
	//
	// A mark is kept at least life after it is set; every call of one store
	// passes the same life. The only error allowed is a false "set" (a
	// Bloom filter's), rare while the marks set within a life stay under
	// the store's capacity: it refuses an answer, never accepts one twice.
	// Mark must work when the store is full (it writes into space it
	// reserved), and must be run at most once per call (never re-sent
	// after a lost reply).
	Mark(ctx context.Context, epoch uint64, mark []byte, life time.Duration, peek bool) (fresh bool, current uint64, err error)
}

// Returner is an optional interface of a Store (store/memstore and
// store/redisstore implement it): the gate gives back the send-rate tokens
// a request took when the request is then refused without reaching the
// handler (a captcha required by another key), so that an attacker's
// refused requests spend nobody's send budget and leave no bucket behind.
// Without it, such a token stays spent.
type Returner interface {
	// Return gives back one token that Allow took from the bucket at key
	// (interval as that Allow's): the bucket's next token comes interval
	// sooner, and a bucket that is full again is deleted in the same atomic
	// step. Returning to a bucket that does not exist does nothing.
	Return(ctx context.Context, key string, interval time.Duration) error
}

// Batcher is an optional interface of a Store whose every call is a network
// round trip (store/redisstore implements it). A guard then hands it all of a
// request's counting at once, waiting for one round trip, and the give-backs
// after the handler without waiting at all.
type Batcher interface {
	// Do runs ops, each one atomically with the semantics of the Store method
	// its Kind names, and fills in their results and errors. It waits for
	// them (one round trip), or returns early with ctx's error in every op's
	// Err (an op may then have run or not).
	Do(ctx context.Context, ops []Op)

	// Later runs ops after every operation handed to the store before it
	// and before every operation handed over after it returns; it returns
	// without waiting. So a request counted through the same store after a
	// guard handed over its give-back or reset reads it; other instances
	// sharing the backend read it once it is written, within a bound the
	// store documents (store/redisstore: two Options.Timeout, one round
	// trip in the usual case). ops is the store's to keep; it may drop
	// them when it cannot queue them. report, if not nil, is called once
	// (from another goroutine) with the first failure, or the drop. The
	// guard hands over only give-backs and resets, which lower counts: one
	// that is late or lost errs on the safe side.
	Later(ops []Op, report func(error))
}

// OpKind names the Store method an Op stands for.
type OpKind uint8

// Kinds of Op.
const (
	OpIncr   OpKind = iota + 1 // Incr(Key, Delta, Window)
	OpAllow                    // Allow(Key, Interval, Burst, Take)
	OpReset                    // Reset(Key)
	OpReturn                   // Returner's Return(Key, Interval): nothing on a Store that is not one
)

// Op is one Store operation handed to a Batcher, with its results.
type Op struct {
	Kind     OpKind
	Key      string
	Delta    int64         // OpIncr
	Window   time.Duration // OpIncr
	Interval time.Duration // OpAllow
	Burst    int           // OpAllow
	Take     bool          // OpAllow

	N     int64         // OpIncr: the new count
	Reset time.Time     // OpIncr: the end of the window
	OK    bool          // OpAllow: a token was available (and taken)
	Wait  time.Duration // OpAllow: until a token is available, when !OK
	Err   error
}

// Run runs op on s the plain way, one call: for Batchers that fall back, and
// for tests.
func (op *Op) Run(ctx context.Context, s Store) {
	switch op.Kind {
	case OpIncr:
		op.N, op.Reset, op.Err = s.Incr(ctx, op.Key, op.Delta, op.Window)
	case OpAllow:
		op.OK, op.Wait, op.Err = s.Allow(ctx, op.Key, op.Interval, op.Burst, op.Take)
	case OpReset:
		op.Err = s.Reset(ctx, op.Key)
	case OpReturn:
		if rs, ok := s.(Returner); ok {
			op.Err = rs.Return(ctx, op.Key, op.Interval)
		}
	default:
		op.Err = fmt.Errorf("captchagate: unknown OpKind %d", op.Kind)
	}
}
