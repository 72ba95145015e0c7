package memhash

import (
	"math/bits"
	"math/rand/v2"
)

// counterTable is a shard's counters: an open-addressing hash table with
// linear probing, in 16-byte slots, keyed by the counters' names. The names
// are already seeded hashes, so a multiplication spreads them over the slots
// (a Go map would hash them again). It grows by half past 3/4 full, so it is
// between 1/2 and 3/4 full once grown: 21 to 32 bytes a counter.
//
// It is built for what the guard does on every allowed request: a counter
// created, then given back to zero and deleted, then created again by the
// next request. Deleting shifts the rest of its probe run back (no
// tombstones), so a deleted counter leaves nothing behind and the next
// insertion finds its slot again; a lookup that is followed by a write or a
// delete reuses the slot it found instead of probing twice.
type counterTable struct {
	slots []counterSlot
	n     int // occupied slots
}

// counterSlot is one slot: a counter and its name. A zero counter marks an
// empty slot: a live counter's end is never 0.
type counterSlot struct {
	h uint64
	c counter
}

const minSlots = 8

// home is the slot where h's probe starts: h times 2^64/φ (so that every
// bit of h counts), scaled to the table's length.
func (t *counterTable) home(h uint64) int {
	i, _ := bits.Mul64(h*0x9e3779b97f4a7c15, uint64(len(t.slots)))
	return int(i)
}

// find returns the index of h's slot and true, or false when h is absent.
func (t *counterTable) find(h uint64) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	for i := t.home(h); ; i = t.next(i) {
		switch s := &t.slots[i]; {
		case s.c == 0:
			return i, false
		case s.h == h:
			return i, true
		}
	}
}

// insert adds h, absent, with counter c (not 0), growing the table past 3/4
// full.
func (t *counterTable) insert(h uint64, c counter) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	i := t.home(h)
	for t.slots[i].c != 0 {
		i = t.next(i)
	}
	t.slots[i] = counterSlot{h: h, c: c}
	t.n++
}

func (t *counterTable) grow() {
	old := t.slots
	t.slots = make([]counterSlot, max(minSlots, len(old)+len(old)/2))
	t.n = 0
	for _, s := range old {
		if s.c != 0 {
			t.insert(s.h, s.c)
		}
	}
}

// deleteAt empties slot i and shifts back the entries after it in its probe
// run that may move (Knuth's algorithm R), so that no lookup needs a
// tombstone. Only entries after i (cyclically) move, and only towards i: a
// scan upward from slot 0 that deletes at i and looks at i again sees every
// entry.
func (t *counterTable) deleteAt(i int) {
	for j := t.next(i); t.slots[j].c != 0; j = t.next(j) {
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		k := t.home(t.slots[j].h)
		if i <= j && (i < k && k <= j) || i > j && (i < k || k <= j) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = counterSlot{}
	t.n--
}

// sweep deletes the counters whose window has ended at nowMs.
func (t *counterTable) sweep(nowMs int64) {
	for i := 0; i < len(t.slots); {
		if c := t.slots[i].c; c != 0 && nowMs >= c.end() {
			t.deleteAt(i) // a later entry may have moved to i: look again
			continue
		}
		i++
	}
}

// start returns a random slot (of a table that has some) to look at entries from (Go randomizes where
// a map's iteration starts; room samples from here), and next the slot after
// i.
func (t *counterTable) start() int { return rand.IntN(len(t.slots)) }
func (t *counterTable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}
