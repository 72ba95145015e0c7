package redisstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
)

// Each store operation against a real redis-server on loopback, from one
// goroutine (serial: latency) and from GOMAXPROCS*8 goroutines (parallel:
// throughput). REDIS_ADDR, if set, names a running server to use instead.
func BenchmarkStore(b *testing.B) {
	var addr string
	if addr = getenv("REDIS_ADDR"); addr == "" {
		addr = redistest.Start(b).Addr
	}
	srv := &redistest.Server{Addr: addr}
	c := client(b, srv)
	s := newStore(b, c, time.Now)
	ctx := context.Background()
	value := make([]byte, 60) // about a captcha record
	var seq atomic.Int64

	ops := []struct {
		name string
		op   func(s *redisstore.Store, i int64) error
	}{
		{"Incr", func(s *redisstore.Store, i int64) error {
			_, _, err := s.Incr(ctx, "f:"+strconv.FormatInt(i%1000, 10), 1, time.Minute)
			return err
		}},
		{"IncrRead", func(s *redisstore.Store, i int64) error {
			_, _, err := s.Incr(ctx, "f:"+strconv.FormatInt(i%1000, 10), 0, time.Minute)
			return err
		}},
		{"Allow", func(s *redisstore.Store, i int64) error {
			_, _, err := s.Allow(ctx, "r:"+strconv.FormatInt(i%1000, 10), time.Millisecond, 10, true)
			return err
		}},
		{"Put", func(s *redisstore.Store, i int64) error {
			return s.Put(ctx, "c:"+strconv.FormatInt(i, 10), value, time.Minute)
		}},
		{"Get", func(s *redisstore.Store, i int64) error {
			_, _, err := s.Get(ctx, "c:"+strconv.FormatInt(i%1000, 10))
			return err
		}},
		{"Take", func(s *redisstore.Store, i int64) error {
			_, _, err := s.Take(ctx, "c:"+strconv.FormatInt(i, 10))
			return err
		}},
		{"Reset", func(s *redisstore.Store, i int64) error {
			return s.Reset(ctx, "f:"+strconv.FormatInt(i%1000, 10))
		}},
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := o.op(s, seq.Add(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(o.name+"Parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := o.op(s, seq.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// An allowed guarded request (client IP key, under its threshold) on the
// Redis store: the request waits for one round trip (its reservation); the
// give-back is written behind. Parallel runs 25 goroutines per CPU, like
// redis-benchmark -c 50 on two cores.
func BenchmarkGuardAllowed(b *testing.B) {
	var addr string
	if addr = getenv("REDIS_ADDR"); addr == "" {
		addr = redistest.Start(b).Addr
	}
	c := client(b, &redistest.Server{Addr: addr})
	store := newStore(b, c, time.Now)
	g, err := captchagate.New(captchagate.Config{Secret: secret, Store: store})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Guard(captchagate.Policy{Name: "login", MaxFailures: 1 << 30, Window: time.Hour,
		Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("POST", "/login", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		w := httptest.NewRecorder()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(25)
		b.RunParallel(func(pb *testing.PB) {
			w := httptest.NewRecorder()
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
	})
	// As Parallel, each request from one of 1,000 addresses (as
	// redis-benchmark -r 1000 spreads its keys): counters of one address
	// rarely share a pipeline, so few increments share a script.
	b.Run("ParallelKeys", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(25)
		var next atomic.Uint32
		addrs := make([]string, 1000)
		for i := range addrs {
			addrs[i] = "192.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ":1234"
		}
		b.RunParallel(func(pb *testing.PB) {
			w := httptest.NewRecorder()
			r := req.Clone(context.Background())
			for pb.Next() {
				r.RemoteAddr = addrs[next.Add(7919)%1000] // a stride prime to 1000: every address in turn
				h.ServeHTTP(w, r)
			}
		})
	})
}
