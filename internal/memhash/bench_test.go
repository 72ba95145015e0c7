package memhash_test

import (
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
