package captchagate

import (
	"context"
	"hash/maphash"
	"net/http"
	"slices"
	"time"

	"github.com/captchagate/captchagate/internal/memhash"
	"github.com/captchagate/captchagate/store/memstore"
)

// What a guard decides with: the keys of a policy, their counters, and how a
// request is counted.

// keySet is a set of a policy's keys, by their index in the policy (a policy
// has at most 16).
type keySet uint16

func (s keySet) has(i int) bool { return s&(1<<i) != 0 }
func (s *keySet) add(i int)     { *s |= 1 << i }

// counterKind is one of a key's counters. Its value is the letter that names
// it in a shared store's keys ("f:" and the key's hash): data a deployment
// keeps in Redis, so the letters do not change.
type counterKind byte

const (
	ceilingCount counterKind = 'x' // requests in Key.CeilingWindow, refused past Key.Ceiling
	failureCount counterKind = 'f' // failures in the window, reserved before the handler
	sendRate     counterKind = 'r' // the token bucket of Key.Rate and Key.Burst
	failureCeil  counterKind = 'd' // failures in Key.FailureCeilingWindow, refused past Key.FailureCeiling
)

// countMode is what a count is for.
type countMode uint8

const (
	// serving counts a request about to be served: it adds the request to
	// the ceilings, reserves its failure counters, takes its send-rate
	// tokens and reports events.
	serving countMode = iota
	// peeking is Check: it reads the counters, judges them as if the
	// request were added, changes nothing and reports nothing.
	peeking
)

// opNote is the guard's note of one of a request's store operations (ev.ops
// and ev.notes run in parallel): the key and the counter it counts, and its
// name in the in-process store.
type opNote struct {
	key  uint8
	kind counterKind
	h    uint64 // memCounter's name of the counter, set by run; 0 with a shared store
}

// addOp appends a blank operation on the counter of kind of key i to ev.ops,
// with its note, and returns it to be filled in.
//
// addOp and dropOps spare the common request the write barriers of copying
// and clearing whole Ops (they have pointer fields) while the GC marks: the
// slots of the pooled ev.opsBuf are reused as they are, and a pointer field
// is written only when it is set, which with the in-process store is never.
func (ev *eval) addOp(kind counterKind, i int) *Op {
	ev.notes = append(ev.notes, opNote{key: uint8(i), kind: kind})
	n := len(ev.ops)
	if n == cap(ev.ops) {
		ev.ops = append(ev.ops, Op{})
		return &ev.ops[n]
	}
	ev.ops = ev.ops[:n+1]
	op := &ev.ops[n]
	op.Kind, op.Delta, op.Window, op.Interval, op.Burst, op.Take = 0, 0, 0, 0, 0, false
	op.N, op.OK, op.Wait = 0, false, 0
	dropRefs(op)
	return op
}

// dropOps empties ev.ops, dropping what they refer to (see addOp), when the
// request is done with them.
func (ev *eval) dropOps() {
	for j := range ev.ops {
		dropRefs(&ev.ops[j])
	}
	ev.ops, ev.notes = ev.ops[:0], ev.notes[:0]
}

// dropRefs zeroes op's fields that hold pointers, writing only those set.
func dropRefs(op *Op) {
	if op.Key != "" {
		op.Key = ""
	}
	if op.Reset != (time.Time{}) {
		op.Reset = time.Time{}
	}
	if op.Err != nil {
		op.Err = nil
	}
}

// counter runs a request's counting on the Gate's store: the one place where
// kinds of store differ. New chooses one for its store, once:
//
//   - memCounter, for the in-process store (store/memstore): counters named
//     by a seeded 64-bit hash, at one clock reading per request, with no key
//     string built and no HMAC until a key trips; nothing waits.
//   - batchCounter, for a Batcher (store/redisstore): a request's operations
//     in one round trip, give-backs and resets written behind.
//   - storeCounter, for any other Store: one call an operation.
type counter interface {
	// hashKey names the counters of key i, whose value is v (prefix names the
	// policy and the key): it sets ev.ch[i], or the binding hash
	// ev.hashes[i] (then i joins ev.bound).
	hashKey(ev *eval, i int, prefix, v []byte)
	// run names ops (ev's) in the store after their notes (the op's Key,
	// or the note's h), runs them, and fills in their results and errors,
	// waiting for them within ctx.
	run(ctx context.Context, ev *eval, ops []Op, notes []opNote)
	// giveBack hands over ops, named by run, that only lower counts
	// (give-backs and resets): run at once by memCounter, written behind by
	// batchCounter, run within ctx one call each by storeCounter. A failure
	// goes to report, possibly later, from another goroutine.
	giveBack(ctx context.Context, ev *eval, ops []Op, notes []opNote, report storeReport)
	// estimated reports whether the count of ev.ops[j], a counter run
	// counted, is or started from a full store's over-estimate (memstore's
	// spill): a ceiling it passes asks for a captcha instead of refusing.
	estimated(ev *eval, j int) bool
	// freeRounds reports whether splitting a request's counting into more
	// runs costs no more waiting (true in process and one call an
	// operation; false on a Batcher, where each run is a round trip).
	freeRounds() bool
}

var (
	_ counter = (*memCounter)(nil)
	_ counter = (*batchCounter)(nil)
	_ counter = (*storeCounter)(nil)
)

// storeReport reports a store's failure to count for a request of a policy.
type storeReport struct {
	g      *Gate
	r      *http.Request
	policy string
}

func (s storeReport) report(err error) { s.g.storeError(s.r, s.policy, err) }

// memCounter counts on the in-process store by hash, at the request's time:
// the first run of a request reads the clock, the rest of it uses ev.now.
type memCounter struct {
	s *memhash.Store
	// The seeds of the counting hashes (maphash, not an HMAC, for speed):
	// one for the prefix, one for the value.
	prefixSeed, valueSeed maphash.Seed
	// resets reads every counter's reset, not only the ceilings' (for the
	// RateLimit header fields).
	resets bool
}

func newMemCounter(m *memstore.Store) *memCounter {
	// memstore.Store is defined as memhash.Store: the conversion reaches
	// the hashed methods memstore does not export.
	return &memCounter{s: (*memhash.Store)(m), prefixSeed: maphash.MakeSeed(), valueSeed: maphash.MakeSeed()}
}

// hashKey: the in-process store names a counter by a 64-bit hash anyway, so
// seeded maphashes of the same input are enough to count by; the HMACs that
// bind captchas wait until a key trips (Guard.bind). The prefix and the value
// are hashed apart, under seeds of their own (two one-shot hashes cost less
// than a streaming maphash.Hash), and the two sums combined: with seeds
// apart, swapping a value and a prefix does not swap the sums.
func (c *memCounter) hashKey(ev *eval, i int, prefix, v []byte) {
	ev.ch[i] = maphash.Bytes(c.prefixSeed, prefix) ^ maphash.Bytes(c.valueSeed, v)
}

func (c *memCounter) run(_ context.Context, ev *eval, ops []Op, notes []opNote) {
	if len(ops) == 0 {
		return
	}
	if ev.now == 0 {
		ev.now = c.s.Now()
	}
	for j := range ops {
		op, n := &ops[j], &notes[j]
		h := mixKind(ev.ch[n.key], n.kind)
		n.h = h // for giveBack
		switch op.Kind {
		case OpIncr:
			// Only a ceiling's Reset is read (judge's retry-after): a
			// failure counter's is left zero, no time.Time made.
			var end int64
			op.N, end = c.s.Add(h, op.Delta, op.Window, ev.now)
			if (n.kind == ceilingCount || n.kind == failureCeil || c.resets) && end != 0 {
				op.Reset = time.UnixMilli(end)
			}
		case OpAllow:
			op.OK, op.Wait, op.Err = c.s.Allow(h, op.Interval, op.Burst, op.Take, ev.now)
		case OpReset:
			c.s.Reset(h)
		}
	}
}

func (*memCounter) freeRounds() bool { return true }

// resetOf returns when the counter of ev.ops[j] resets, reading it again if
// run left it unread (a failure counter's, read only for a RateLimit
// header of a key that tripped).
func (c *memCounter) resetOf(ev *eval, j int) time.Time {
	if r := ev.ops[j].Reset; !r.IsZero() {
		return r
	}
	if _, end := c.s.Add(ev.notes[j].h, 0, ev.ops[j].Window, ev.now); end != 0 {
		return time.UnixMilli(end)
	}
	return time.Time{}
}

func (c *memCounter) estimated(ev *eval, j int) bool { return c.s.Estimated(ev.notes[j].h, ev.now) }

// giveBack runs ops at once, at the request's time. The in-process store
// never fails to count (at its bound it over-counts): there is nothing to
// report, and no result to fill in.
func (c *memCounter) giveBack(_ context.Context, ev *eval, ops []Op, notes []opNote, _ storeReport) {
	for j := range ops {
		switch h := notes[j].h; ops[j].Kind {
		case OpIncr:
			c.s.Add(h, ops[j].Delta, ops[j].Window, ev.now)
		case OpReset:
			c.s.Reset(h)
		case OpReturn:
			c.s.GiveToken(h, ops[j].Interval, ev.now)
		}
	}
}

// mixKind names the counter of kind for a key's counting hash in the
// in-process store: splitmix64's finalizer over the hash and the kind, a
// bijection for each kind.
func mixKind(h uint64, kind counterKind) uint64 {
	x := h + uint64(kind)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hmacNames names counters in a shared store: by the keys' binding HMACs,
// stable across instances and free of raw values.
type hmacNames struct{ g *Gate }

func (n hmacNames) hashKey(ev *eval, i int, prefix, v []byte) { n.g.bindKey(ev, i, prefix, v) }

// estimated: a shared store never over-estimates (a full Redis refuses
// to create a counter instead, ErrStoreFull).
func (hmacNames) estimated(*eval, int) bool { return false }

// name sets the Key of each of ops: its counter's kind and its key's
// binding hash (storeKey).
func (hmacNames) name(ev *eval, ops []Op, notes []opNote) {
	for j, n := range notes {
		ops[j].Key = storeKey(n.kind, &ev.hashes[n.key])
	}
}

// storeKey names a counter in a shared store: kind, ':' and the key hash in
// base64url.
func storeKey(kind counterKind, h *[16]byte) string {
	var b [24]byte
	return string(b64.AppendEncode(append(b[:0], byte(kind), ':'), h[:]))
}

// batchCounter counts on a Batcher: a request's operations in one round
// trip, its give-backs and resets written behind (Batcher.Later).
type batchCounter struct {
	hmacNames
	b Batcher
}

func (*batchCounter) freeRounds() bool { return false }

func (c *batchCounter) run(ctx context.Context, ev *eval, ops []Op, notes []opNote) {
	c.name(ev, ops, notes)
	c.b.Do(ctx, ops)
}

func (c *batchCounter) giveBack(_ context.Context, _ *eval, ops []Op, _ []opNote, report storeReport) {
	// ops are ev's, which goes back to its pool: Later keeps a copy.
	c.b.Later(slices.Clone(ops), report.report)
}

// storeCounter counts on a plain Store, one call an operation.
type storeCounter struct {
	hmacNames
	s Store
}

func (*storeCounter) freeRounds() bool { return true }

func (c *storeCounter) run(ctx context.Context, ev *eval, ops []Op, notes []opNote) {
	c.name(ev, ops, notes)
	for j := range ops {
		ops[j].Run(ctx, c.s)
	}
}

func (c *storeCounter) giveBack(ctx context.Context, _ *eval, ops []Op, _ []opNote, report storeReport) {
	for j := range ops {
		ops[j].Run(ctx, c.s)
		if ops[j].Err != nil {
			report.report(ops[j].Err)
		}
	}
}
