package memstore_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/captchagate/captchagate/store/memstore"
)

// keys returns n distinct counter keys shaped like the gate's.
func keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = "f:" + strconv.FormatInt(int64(i)*2654435761, 36) + "xxxxxxxxxxxxxxxx"
	}
	return k
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerKey tracks 1M failure counters and reports the heap
// they take per key (after GC), and the insertion cost per key.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1 << 20
	ks := keys(n)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		before := heap()
		s := memstore.New(memstore.Options{MaxEntries: 2 * n, CleanupInterval: -1})
		b.StartTimer()
		for _, k := range ks {
			if _, _, err := s.Incr(ctx, k, 1, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after := heap()
		b.ReportMetric(float64(after-before)/n, "B/key")
		runtime.KeepAlive(s)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
}

// BenchmarkMapMutexPerKey is the baseline: a map[string]int64 under one
// mutex, with the same keys.
func BenchmarkMapMutexPerKey(b *testing.B) {
	const n = 1 << 20
	ks := keys(n)
	for b.Loop() {
		b.StopTimer()
		before := heap()
		var mu sync.Mutex
		m := map[string]int64{}
		b.StartTimer()
		for _, k := range ks {
			mu.Lock()
			m[k]++
			mu.Unlock()
		}
		b.StopTimer()
		after := heap()
		b.ReportMetric(float64(after-before)/n, "B/key")
		runtime.KeepAlive(m)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
}
