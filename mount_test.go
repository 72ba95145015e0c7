package captchagate_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// Handler mounted where Config.Prefix does not say: the captcha URLs sent
// to clients would all be 404s, so the first request it serves logs a
// warning, once, naming where it is mounted and never a captcha's id.
// Mounted at the prefix, directly or under http.StripPrefix, it logs none.
func TestMountingCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mount func(g *captchagate.Gate) http.Handler
		path  string
		warns bool
		base  string // Config.BaseURL
	}{
		{"at the prefix", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/captcha/", g.Handler())
			return mux
		}, "/captcha/0123456789abcdefghij.png", false, ""},
		{"under StripPrefix at the prefix", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/captcha/", http.StripPrefix("/captcha/", g.Handler()))
			return mux
		}, "/captcha/0123456789abcdefghij.png", false, ""},
		{"elsewhere", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/api/captcha/", g.Handler())
			return mux
		}, "/api/captcha/0123456789abcdefghij.png?lang=en", true, ""},
		{"elsewhere, stripped", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/c/", http.StripPrefix("/c/", g.Handler()))
			return mux
		}, "/c/verify", true, ""},
		{"under BaseURL's path", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/app/captcha/", http.StripPrefix("/app", g.Handler()))
			return mux
		}, "/app/captcha/verify", false, "https://example.com/app/"},
		{"outside BaseURL's path", func(g *captchagate.Gate) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/other/captcha/", http.StripPrefix("/other", g.Handler()))
			return mux
		}, "/other/captcha/verify", true, "https://example.com/app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			g, err := captchagate.New(captchagate.Config{BaseURL: tc.base, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { g.Close() })
			h := tc.mount(g)
			for range 3 {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
			}
			warnings := strings.Count(log.String(), "outside Config.Prefix")
			if !tc.warns {
				assert.Zero(t, warnings, log.String())
				return
			}
			assert.Equal(t, 1, warnings, "once: %s", log.String())
			assert.Contains(t, log.String(), "mounted="+tc.path[:strings.LastIndex(tc.path, "/")+1])
			assert.Contains(t, log.String(), "prefix=/captcha/")
			assert.NotContains(t, log.String(), "0123456789abcdefghij", "no captcha id in the log")
		})
	}
}

type outerWriter struct{}

// TestUnsettledGuardWarns: a router that writes responses through a writer
// of its own (as gin does under the usual net/http adapter) leaves the
// guard seeing no outcome: every failure uncounted, silently. The guard
// warns once when its first requests all end so; written through its
// writer, or told by Fail and Succeed, it warns never.
func TestUnsettledGuardWarns(t *testing.T) {
	policy := captchagate.Policy{Name: "login", MaxFailures: 3, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}}
	for _, tc := range []struct {
		name  string
		write func(own, outer http.ResponseWriter, r *http.Request)
		warns bool
	}{
		{"around the guard", func(_, outer http.ResponseWriter, _ *http.Request) { outer.WriteHeader(http.StatusUnauthorized) }, true},
		{"through the guard", func(own, _ http.ResponseWriter, _ *http.Request) { own.WriteHeader(http.StatusUnauthorized) }, false},
		{"around, with Fail", func(_, outer http.ResponseWriter, r *http.Request) {
			captchagate.Fail(r)
			outer.WriteHeader(http.StatusUnauthorized)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			g, err := captchagate.New(captchagate.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { g.Close() })
			guarded := g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.write(w, r.Context().Value(outerWriter{}).(http.ResponseWriter), r)
			}))
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				guarded.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), outerWriter{}, w)))
			})
			var codes []int
			for range 12 {
				w := httptest.NewRecorder()
				r := httptest.NewRequest("POST", "/login", nil)
				h.ServeHTTP(w, r)
				codes = append(codes, w.Code)
			}
			warnings := strings.Count(log.String(), "saw no outcome")
			if !tc.warns {
				assert.Zero(t, warnings, log.String())
				assert.Contains(t, codes, http.StatusPreconditionRequired, "failures counted: the guard trips")
				return
			}
			assert.NotContains(t, codes, http.StatusPreconditionRequired, "the failures went uncounted: %v", codes)
			assert.Equal(t, 1, warnings, "once: %s", log.String())
			assert.Contains(t, log.String(), "policy=login")
		})
	}
}
