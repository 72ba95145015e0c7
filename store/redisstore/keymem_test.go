package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
)

// usedMemory reads used_memory from INFO memory.
func usedMemory(tb testing.TB, info string) int64 {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no used_memory in INFO memory")
	return 0
}

// BenchmarkKeyMemory fills a fresh redis-server with KEYS (default 1M)
// failure counters named as the gate names them (a kind letter and a
// 16-byte keyed hash in base64url) and reports Redis's used_memory per key:
// what one tracked key costs, under the default prefix and a short one.
// Run it with -benchtime=1x.
func BenchmarkKeyMemory(b *testing.B) {
	n := 1 << 20
	if v := getenv("KEYS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for _, prefix := range []string{"captchagate:", "cg:"} {
		b.Run("prefix="+prefix, func(b *testing.B) {
			srv := redistest.Start(b)
			c := client(b, srv)
			ctx := context.Background()
			s, err := redisstore.New(c, redisstore.Options{Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			before := usedMemory(b, c.Info(ctx, "memory").Val())
			for b.Loop() {
				ops := make([]captchagate.Op, 256)
				var h [16]byte
				for i := 0; i < n; i += len(ops) {
					for j := range ops {
						rand.Read(h[:])
						ops[j] = captchagate.Op{Kind: captchagate.OpIncr, Key: "f:" + base64.RawURLEncoding.EncodeToString(h[:]),
							Delta: 1, Window: time.Hour}
					}
					s.Do(ctx, ops)
					for _, op := range ops {
						if op.Err != nil {
							b.Fatal(op.Err)
						}
					}
				}
			}
			after := usedMemory(b, c.Info(ctx, "memory").Val())
			keys := c.DBSize(ctx).Val()
			b.ReportMetric(float64(after-before)/float64(keys), "bytes/key")
			b.ReportMetric(float64(keys), "keys")
		})
	}
}
