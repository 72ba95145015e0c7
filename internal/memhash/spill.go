package memhash

import "math/bits"

// spill is where a full shard keeps the counters and buckets its maps have
// no room for: sketches of fixed size that can only over-count, so that a
// flood of unique keys never makes a counter read lower than the count it
// reached, and never makes a bucket fuller than it was.
//
//   - counts is a count-min sketch of counters: each of spillRows rows has
//     one cell a name, holding the sum of the counts spilled there and the
//     latest end of their windows (packed like a counter). A cell whose end
//     has passed holds nothing (every count in it has expired), so the
//     smallest cell of a name's rows is at least its live spilled count.
//   - tats keeps, per cell, the latest theoretical arrival time spilled
//     there: a bucket read from the spill is never fuller than it was.
//
// Nothing is ever taken out of a sketch: a give-back or a reset of a
// spilled counter does not lower it, and it is forgotten only when every
// window spilled into its cells has ended. That errs on one side only: a
// name that shares cells with a flood reads high, and its requests are
// asked for a captcha until the flood's windows end (a cell lives as long
// as the longest window spilled into it, of any policy). The guard cannot
// tell a spilled count from a counted one: a ceiling that reads past its
// limit refuses (429) as it would for the count it over-estimates. And a
// bucket that inherits a cell's arrival time and is spilled again pushes
// the cell later, so under a flood of new buckets faster than a shard holds
// them, spilled buckets run dry sooner (they ask for captchas, or the
// creation budget says retry later).
type spill struct {
	counts [spillRows][]counter
	tats   [spillRows][]int64
	mask   uint64
}

const spillRows = 2

// spillArea returns sh's spill, made on first use with cells for about half
// the shard's limit a row (a power of two, at least 16): 32 bytes an entry
// of the limit at most.
func (sh *shard) spillArea() *spill {
	if sh.spill == nil {
		w := max(16, 1<<(bits.Len64(uint64(sh.limit))-1)/2)
		sp := &spill{mask: uint64(w - 1)}
		for r := range spillRows {
			sp.counts[r] = make([]counter, w)
			sp.tats[r] = make([]int64, w)
		}
		sh.spill = sp
	}
	return sh.spill
}

// cell is h's cell in row r: distinct bits of h a row (the low 6 picked
// the shard).
func (sp *spill) cell(h uint64, r int) uint64 { return h >> (6 + 29*r) & sp.mask }

// count returns the spilled count of h at nowMs (0: none): the smallest of
// its cells, with that cell's end.
func (sp *spill) count(h uint64, nowMs int64) counter {
	var best counter
	for r := range spillRows {
		c := sp.counts[r][sp.cell(h, r)]
		if nowMs >= c.end() {
			return 0
		}
		if r == 0 || c.n() < best.n() {
			best = c
		}
	}
	return best
}

// addCount adds n, counted in a window ending at end, to h's cells, and
// returns h's spilled count after.
func (sp *spill) addCount(h uint64, end, n, nowMs int64) counter {
	for r := range spillRows {
		p := &sp.counts[r][sp.cell(h, r)]
		if nowMs >= p.end() {
			*p = packCounter(end, n)
		} else {
			*p = packCounter(max(p.end(), end), p.n()+n)
		}
	}
	return sp.count(h, nowMs)
}

// tat returns the latest arrival time spilled into all of h's cells (0:
// none).
func (sp *spill) tat(h uint64) int64 {
	t := sp.tats[0][sp.cell(h, 0)]
	for r := 1; r < spillRows; r++ {
		t = min(t, sp.tats[r][sp.cell(h, r)])
	}
	return t
}

// addTat spills a bucket of h whose theoretical arrival time is tat.
func (sp *spill) addTat(h uint64, tat int64) {
	for r := range spillRows {
		p := &sp.tats[r][sp.cell(h, r)]
		*p = max(*p, tat)
	}
}
