package memhash

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestCounterTable checks the table against a map under random inserts,
// updates, deletes and sweeps, with names crowded into few home slots (so
// that probe runs are long and wrap around the end) and spread ones.
func TestCounterTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys func(r *rand.Rand) uint64
	}{
		{"spread", func(r *rand.Rand) uint64 { return r.Uint64() }},
		{"crowded", func(r *rand.Rand) uint64 { return r.Uint64N(64) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var tab counterTable
			ref := map[uint64]counter{}
			check := func(step int) {
				t.Helper()
				if tab.n != len(ref) {
					t.Fatalf("step %d: %d entries, want %d", step, tab.n, len(ref))
				}
				seen := 0
				for _, s := range tab.slots {
					if s.c == 0 {
						continue
					}
					seen++
					if ref[s.h] != s.c {
						t.Fatalf("step %d: slot of %d holds %d, want %d", step, s.h, s.c, ref[s.h])
					}
				}
				if seen != len(ref) {
					t.Fatalf("step %d: %d occupied slots, want %d", step, seen, len(ref))
				}
				for h, c := range ref {
					i, ok := tab.find(h)
					if !ok || tab.slots[i].c != c {
						t.Fatalf("step %d: find(%d) = %v, %v; want %d", step, h, ok, tab.slots[i].c, c)
					}
				}
			}
			for step := range 20000 {
				h := tc.keys(r)
				i, ok := tab.find(h)
				if _, want := ref[h]; ok != want {
					t.Fatalf("step %d: find(%d) found %v, want %v", step, h, ok, want)
				}
				switch op := r.IntN(10); {
				case op < 5 && !ok:
					c := packCounter(1+r.Int64N(100), 1+r.Int64N(5))
					tab.insert(h, c)
					ref[h] = c
				case op < 7 && ok:
					c := packCounter(1+r.Int64N(100), 1+r.Int64N(5))
					tab.slots[i].c = c
					ref[h] = c
				case op < 9 && ok:
					tab.deleteAt(i)
					delete(ref, h)
				case op == 9 && step%50 == 0:
					now := r.Int64N(100)
					tab.sweep(now)
					for k, c := range ref {
						if now >= c.end() {
							delete(ref, k)
						}
					}
				}
				if step%97 == 0 {
					check(step)
				}
			}
			check(-1)
		})
	}
}

// A full shard that holds no counter (buckets and items only) still makes
// room, or spills, for a new counter or item: room must not sample an
// empty table.
func TestRoomWithoutCounters(t *testing.T) {
	s := New(Options{MaxEntries: numShards}) // one entry a shard
	now := s.Now()
	// Names in shard 0: the low 6 bits pick the shard.
	if ok, _, _ := s.Allow(0<<6, time.Second, 10, true, now); !ok {
		t.Fatal("the first token was refused")
	}
	if n, _ := s.Add(1<<6, 1, time.Minute, now); n != 1 {
		t.Fatalf("a counter that found the shard full of a bucket reads %d, want 1 (spilled)", n)
	}
	if n, _ := s.Add(1<<6, 1, time.Minute, now); n < 2 {
		t.Fatalf("the spilled counter reads %d after a second increment, want at least 2", n)
	}
	var key string
	for i := 0; ; i++ { // an item key whose hash falls in shard 0
		if key = "item" + strconv.Itoa(i); s.Hash(key)%numShards == 0 {
			break
		}
	}
	if err := s.Put(key, []byte("v"), time.Minute); err != nil {
		t.Fatalf("an item could not take the bucket's place: %v", err)
	}
}
