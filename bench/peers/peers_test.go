// Package peers measures captchagate beside the rate limiters users compare
// it with, in one run. It is a module of its own so that the library does
// not depend on them; bench/compare.sh runs it and prints the ratios.
package peers

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/httprate"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

var ok = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

func gate(b *testing.B) *captchagate.Gate {
	g, err := captchagate.New(captchagate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

func serve(b *testing.B, h http.Handler, r *http.Request) {
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// byRemoteAddr is httprate's key for a client IP taken from RemoteAddr, as
// its deprecated LimitByIP (LimitBy with KeyByIP) computes it: the measured
// work is the same, with the key stated at the call site.
func byRemoteAddr(r *http.Request) (string, error) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return httprate.CanonicalizeIP(ip), nil
}

func req() *http.Request {
	r := httptest.NewRequest("POST", "/login", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	return r
}

// Middleware overhead on an allowed request keyed by client IP.
func BenchmarkIP(b *testing.B) {
	b.Run("Bare", func(b *testing.B) { serve(b, ok, req()) })
	b.Run("Captchagate", func(b *testing.B) {
		h := gate(b).Guard(captchagate.Policy{Name: "ip", MaxFailures: 1 << 23, Window: time.Hour,
			Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(ok)
		serve(b, h, req())
	})
	// The like-for-like of httprate: a send rate per IP, no failure counter
	// (so no outcome to learn from the handler).
	b.Run("CaptchagateRate", func(b *testing.B) {
		h := gate(b).Guard(captchagate.Policy{Name: "ip", Keys: []captchagate.Key{
			{Source: captchagate.ClientIP(), Rate: 1 << 30, Burst: 1 << 20}}})(ok)
		serve(b, h, req())
	})
	b.Run("Httprate", func(b *testing.B) {
		serve(b, httprate.LimitBy(1<<30, time.Hour, byRemoteAddr)(ok), req())
	})
	b.Run("MapMutex", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]*rate.Limiter{}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip, _, _ := net.SplitHostPort(r.RemoteAddr)
			mu.Lock()
			l, found := m[ip]
			if !found {
				l = rate.NewLimiter(rate.Inf, 1)
				m[ip] = l
			}
			mu.Unlock()
			if !l.Allow() {
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			ok.ServeHTTP(w, r)
		})
		serve(b, h, req())
	})
}

// The same with a username from a small JSON body as a second key; the
// request (and its body) is built in every iteration for all three, and
// BuildOnly measures that alone.
func BenchmarkIPAndJSONUser(b *testing.B) {
	const body = `{"username":"alice","password":"wonderland"}`
	run := func(b *testing.B, h http.Handler) {
		w := &nopWriter{h: http.Header{}}
		r := req()
		rd := strings.NewReader(body)
		rc := io.NopCloser(rd)
		b.ReportAllocs()
		for b.Loop() {
			// The same request with its body rewound: what is measured is
			// the middleware, not building requests.
			rd.Reset(body)
			r.Body, r.ContentLength = rc, int64(len(body))
			h.ServeHTTP(w, r)
		}
	}
	b.Run("Bare", func(b *testing.B) { run(b, ok) })
	b.Run("Captchagate", func(b *testing.B) {
		run(b, gate(b).Guard(captchagate.Policy{Name: "login", MaxFailures: 1 << 23, Keys: []captchagate.Key{
			captchagate.Username(captchagate.JSONField("username")), {Source: captchagate.ClientIP()}}})(ok))
	})
	b.Run("HttprateIPOnly", func(b *testing.B) { run(b, httprate.LimitBy(1<<30, time.Hour, byRemoteAddr)(ok)) })
}
