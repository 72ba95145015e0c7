package captchagate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dchest/captcha"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
	"github.com/captchagate/captchagate/slider"
)

// nopWriter is a ResponseWriter that discards everything, so benchmarks
// measure the guard, not the recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchGate(b *testing.B, mutate ...func(*captchagate.Config)) *captchagate.Gate {
	cfg := captchagate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mutate {
		m(&cfg)
	}
	g, err := captchagate.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

var okHandler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// BenchmarkGuardAllowedIP: an allowed request counted by client IP.
func BenchmarkGuardAllowedIP(b *testing.B) {
	benchGuard(b, captchagate.Policy{Name: "ip", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), MaxFailures: 1 << 30, Window: time.Hour}}})
}

// BenchmarkGuardAllowedIPRateLimitHeaders: BenchmarkGuardAllowedIP with
// the RateLimit header fields on every answer (RateLimitHeaders.Allowed),
// what that option costs.
func BenchmarkGuardAllowedIPRateLimitHeaders(b *testing.B) {
	benchGuard(b, captchagate.Policy{Name: "ip", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), MaxFailures: 1 << 30, Window: time.Hour}}},
		func(c *captchagate.Config) { c.RateLimitHeaders.Allowed = true })
}

// benchGuard serves one body-less request under p, over and over.
func benchGuard(b *testing.B, p captchagate.Policy, mutate ...func(*captchagate.Config)) {
	h := benchGate(b, mutate...).Guard(p)(okHandler)
	r := httptest.NewRequest("GET", "/", nil)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkGuardAllowedRateOnly: an allowed request under a send rate
// alone (no failure counter to settle, so no outcome context).
func BenchmarkGuardAllowedRateOnly(b *testing.B) {
	benchGuard(b, captchagate.Policy{Name: "sms", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), Rate: 1e9, Burst: 1 << 20}}})
}

// BenchmarkGuardAllowedIPAndJSONUser adds a username from a small JSON body:
// the same request each time, its body rewound.
func BenchmarkGuardAllowedIPAndJSONUser(b *testing.B) {
	benchJSONUser(b, captchagate.Policy{Name: "login", MaxFailures: 1 << 30, Keys: []captchagate.Key{
		captchagate.Username(captchagate.JSONField("username")),
		{Source: captchagate.ClientIP()},
	}}, "")
}

// BenchmarkGuardAllowedJSONUserNoFailureCeiling is
// BenchmarkGuardAllowedIPAndJSONUser without the username's failure ceiling
// (FailureCeiling -1): what the ceiling's counter costs.
func BenchmarkGuardAllowedJSONUserNoFailureCeiling(b *testing.B) {
	user := captchagate.Username(captchagate.JSONField("username"))
	user.FailureCeiling = -1
	benchJSONUser(b, captchagate.Policy{Name: "login", MaxFailures: 1 << 30, Keys: []captchagate.Key{user, {Source: captchagate.ClientIP()}}}, "")
}

// BenchmarkGuardAllowedKnownDevice is BenchmarkGuardAllowedIPAndJSONUser
// with Policy.Devices and the owner's valid device cookie: what checking
// the cookie (one HMAC) and counting on the device's counters cost.
func BenchmarkGuardAllowedKnownDevice(b *testing.B) {
	gd, err := benchGate(b).NewGuard(captchagate.Policy{Name: "login", MaxFailures: 1 << 30, Devices: &captchagate.Devices{},
		Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username")), {Source: captchagate.ClientIP()}}})
	if err != nil {
		b.Fatal(err)
	}
	// The cookie a successful sign-in sets.
	w := httptest.NewRecorder()
	gd.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { captchagate.Succeed(r) })).
		ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(`{"username":"alice"}`)))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		b.Fatal("no device cookie")
	}
	benchJSONUserOn(b, gd.Wrap(okHandler), cookies[0].Name+"="+cookies[0].Value)
}

// benchJSONUser serves the JSON login body under p, over and over, with
// the Cookie header cookie if not "".
func benchJSONUser(b *testing.B, p captchagate.Policy, cookie string) {
	benchJSONUserOn(b, benchGate(b).Guard(p)(okHandler), cookie)
}

func benchJSONUserOn(b *testing.B, h http.Handler, cookie string) {
	const body = `{"username":"alice","password":"wonderland"}`
	r := httptest.NewRequest("POST", "/", nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	rd := strings.NewReader(body)
	rc := io.NopCloser(rd)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body, r.ContentLength = rc, int64(len(body))
		h.ServeHTTP(w, r)
	}
}

// BenchmarkGuardAllowedParallel: the IP guard from many goroutines and addresses.
func BenchmarkGuardAllowedParallel(b *testing.B) {
	g := benchGate(b)
	h := g.Guard(captchagate.Policy{Name: "ip", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), MaxFailures: 1 << 30, Window: time.Hour}}})(okHandler)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/", nil)
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}

func BenchmarkImage(b *testing.B) {
	mux, newCaptcha := mediaMux(b, benchGate(b))
	r := httptest.NewRequest("GET", newCaptcha().ImageURL, nil)
	nw := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(nw.h)
		mux.ServeHTTP(nw, r)
	}
}

// mediaMux mounts g's Handler and a policy "p"; newCaptcha issues a captcha
// under it.
func mediaMux(b *testing.B, g *captchagate.Gate) (mux *http.ServeMux, newCaptcha func() captchagate.Captcha) {
	mux = http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	g.NewGuard(captchagate.Policy{Name: "p", MaxFailures: 1, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	return mux, func() captchagate.Captcha {
		var nb struct{ Captcha captchagate.Captcha }
		if err := json.Unmarshal(serve(mux, "POST", "/captcha/new?policy=p", "").Body.Bytes(), &nb); err != nil || nb.Captcha.ID == "" {
			b.Fatal("no captcha", err)
		}
		return nb.Captcha
	}
}

// BenchmarkRenderPNG: a fresh captcha image with Digits (pooled PNG
// encoder buffers, fastest compression), beside dchest/captcha's own
// Image.WriteTo for the same image.
func BenchmarkRenderPNG(b *testing.B) {
	secret := []byte{1, 2, 3, 4, 5, 6}
	b.Run("Digits", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (captchagate.Digits{}).Render(io.Discard, "AAAAAAAAAAAAAAAAAAAAAA", secret, "png", ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DchestWriteTo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := captcha.NewImage("AAAAAAAAAAAAAAAAAAAAAA", secret, 240, 80).WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRenderWAV: a fresh captcha sound with Digits (internal/audio:
// dchest's recordings and method, reused buffers), beside dchest/captcha's
// own NewAudio and WriteTo for the same digits.
func BenchmarkRenderWAV(b *testing.B) {
	secret := []byte{1, 2, 3, 4, 5, 6}
	b.Run("Digits", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (captchagate.Digits{}).Render(io.Discard, "AAAAAAAAAAAAAAAAAAAAAA", secret, "wav", "en"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DchestWriteTo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := captcha.NewAudio("AAAAAAAAAAAAAAAAAAAAAA", secret, "en").WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The other kinds' own costs: a slider puzzle's picture and piece, an
// ALTCHA challenge's issue and a payload's check.
func BenchmarkSliderRender(b *testing.B) {
	s := slider.Puzzle{}
	secret, _ := s.Issue(captchagate.IssueInfo{})
	b.ReportAllocs()
	for b.Loop() {
		s.Render(io.Discard, "x", secret, "png", "")
		s.Render(io.Discard, "x", secret, "piece.png", "")
	}
}

func BenchmarkAltchaCheck(b *testing.B) {
	a := altcha.ProofOfWork{MaxNumber: 1000}
	secret, _ := a.Issue(captchagate.IssueInfo{Expires: time.Now(), Sign: func(m []byte) []byte { return m[:32] }})
	var buf bytes.Buffer
	a.Render(&buf, "x", secret, "json", "")
	var ch altcha.Challenge
	json.Unmarshal(buf.Bytes(), &ch)
	p, _ := altcha.Solve(ch)
	payload := p.Encode()
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := a.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: payload}); !ok {
			b.Fatal("payload refused")
		}
	}
}

// BenchmarkFreshMedia: the first fetch of a new captcha's image or sound
// through Handler (render, copy into a recycled or new buffer, cache, serve),
// with the media cache at its default size; the captcha's creation is not
// timed. Compare B/op with BenchmarkRenderPNG/DchestWriteTo and
// BenchmarkRenderWAV/DchestWriteTo.
func BenchmarkFreshMedia(b *testing.B) {
	for _, format := range []string{"png", "wav"} {
		b.Run(format, func(b *testing.B) {
			mux, newCaptcha := mediaMux(b, benchGate(b, func(c *captchagate.Config) {
				c.CreateRate, c.MediaRate = rate.Inf, rate.Inf
			}))
			nw := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				c := newCaptcha()
				url := c.ImageURL
				if format == "wav" {
					url = c.AudioURL
				}
				r := httptest.NewRequest("GET", url, nil)
				clear(nw.h)
				b.StartTimer()
				mux.ServeHTTP(nw, r)
			}
			if nw.h.Get("Content-Type") == "" || nw.h.Get("Content-Type") == "application/json" {
				b.Fatal("not media:", nw.h)
			}
		})
	}
}
