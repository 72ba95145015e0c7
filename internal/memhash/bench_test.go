package memhash_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/captchagate/captchagate/internal/memhash"
)

// BenchmarkClock is what the guard pays for its one clock reading per
// request (the store's default clock), beside time.Now.
func BenchmarkClock(b *testing.B) {
	s := memhash.New(memhash.Options{})
	var sink int64
	b.Run("StoreNow", func(b *testing.B) {
		for b.Loop() {
			sink += s.Now()
		}
	})
	b.Run("TimeNow", func(b *testing.B) {
		for b.Loop() {
			sink += time.Now().UnixNano()
		}
	})
	_ = sink
}

// BenchmarkReserveGiveBack is the store's part of the guard's allowed
// request: a failure counter reserved (created), then given back to zero
// (deleted), in a store that holds no other counter, and one that holds
// 1<<18 of them.
func BenchmarkReserveGiveBack(b *testing.B) {
	for _, others := range []int{0, 1 << 18} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			s := memhash.New(memhash.Options{})
			now := s.Now()
			r := rand.New(rand.NewPCG(1, 2))
			for range others {
				s.Add(r.Uint64(), 1, time.Hour, now)
			}
			h := r.Uint64()
			b.ReportAllocs()
			for b.Loop() {
				s.Add(h, 1, time.Hour, now)
				s.Add(h, -1, time.Hour, now)
			}
		})
	}
}
