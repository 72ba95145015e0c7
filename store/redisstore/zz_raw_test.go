package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/redistest"
)

func BenchmarkZZ(b *testing.B) {
	addr := getenv("REDIS_ADDR")
	if addr == "" {
		addr = redistest.Start(b).Addr
	}
	c := client(b, &redistest.Server{Addr: addr})
	s := newStore(b, c, time.Now)
	ctx := context.Background()
	sc := redis.NewScript(`return 1`)
	sc.Load(ctx, c)
	b.Run("raw-evalsha-noop", func(b *testing.B) {
		for b.Loop() {
			sc.EvalSha(ctx, c, []string{"x"})
		}
	})
	b.Run("incr1", func(b *testing.B) {
		for b.Loop() {
			s.Incr(ctx, "x2", 1, time.Hour)
		}
	})
	b.Run("incr+giveback", func(b *testing.B) {
		ops := []captchagate.Op{{Kind: captchagate.OpIncr, Key: "x3", Delta: -1, Window: time.Hour}, {Kind: captchagate.OpIncr, Key: "x3", Delta: 1, Window: time.Hour}}
		for b.Loop() {
			s.Do(ctx, ops)
		}
	})
}
