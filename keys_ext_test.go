package captchagate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// newReq makes a fresh request each time it is called (a body is read once).
type newReq func() *http.Request

func post(path, body string, hdr ...string) newReq {
	return func() *http.Request { return request("POST", path, body, hdr...) }
}

type userKey struct{}

// authenticate is an application's auth middleware: it puts the bearer's
// user in the request context.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
		}
		next.ServeHTTP(w, r)
	})
}

// The uses issue 15 names for a key from a function: a path value, a
// cookie, a nested JSON member, the user in the context. Each case fails
// once with a value (a), fails with another value (other: counted apart),
// sends a's value in another form (same: counted with a, so it trips) and
// sends no value (absent: never counted).
func TestSourceFunc(t *testing.T) {
	t.Parallel()
	pathID := captchagate.SourceFunc("item", func(r *http.Request) (string, bool) {
		v := r.PathValue("id")
		return v, v != ""
	})
	device := captchagate.SourceFunc("device", func(r *http.Request) (string, bool) {
		c, err := r.Cookie("device")
		if err != nil {
			return "", false
		}
		return c.Value, true
	})
	email := captchagate.BodySourceFunc("account.email", func(r *http.Request, body []byte) (string, bool) {
		var v struct{ Account struct{ Email string } }
		if json.Unmarshal(body, &v) != nil {
			return "", false
		}
		return v.Account.Email, v.Account.Email != ""
	}).Fold()
	user := captchagate.SourceFunc("user", func(r *http.Request) (string, bool) {
		u, ok := r.Context().Value(userKey{}).(string)
		return u, ok
	})
	const js = "application/json"
	for _, tc := range []struct {
		name                   string
		src                    captchagate.Source
		pattern                string
		wrap                   func(http.Handler) http.Handler
		a, other, same, absent newReq
	}{
		{
			name: "path value", src: pathID, pattern: "POST /items/{id...}",
			a: post("/items/42", ""), other: post("/items/43", ""),
			same: post("/items/%2042%20", ""), absent: post("/items/", ""),
		},
		{
			name: "cookie", src: device, pattern: "POST /vote",
			a: post("/vote", "", "Cookie", "device=d1"), other: post("/vote", "", "Cookie", "device=d2"),
			same: post("/vote", "", "Cookie", "theme=dark; device=d1"), absent: post("/vote", "", "Cookie", "theme=dark"),
		},
		{
			name: "nested JSON member", src: email, pattern: "POST /signup",
			a:      post("/signup", `{"account":{"email":"alice@example.org"}}`, "Content-Type", js),
			other:  post("/signup", `{"account":{"email":"bob@example.org"}}`, "Content-Type", js),
			same:   post("/signup", `{"plan":"pro","account":{"email":" Alice@Example.ORG "}}`, "Content-Type", js),
			absent: post("/signup", `{"email":"alice@example.org"}`, "Content-Type", js),
		},
		{
			name: "user in the context", src: user, pattern: "POST /transfer", wrap: authenticate,
			a:      post("/transfer", "", "Authorization", "Bearer alice"),
			other:  post("/transfer", "", "Authorization", "Bearer bob"),
			same:   post("/transfer", "", "Authorization", "Bearer alice", "RemoteAddr", "198.51.100.7:1"),
			absent: post("/transfer", ""),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, _ := newGate(t, nil)
			mux := http.NewServeMux()
			mux.Handle(tc.pattern, g.Guard(captchagate.Policy{Name: "p", MaxFailures: 1, Keys: []captchagate.Key{{Source: tc.src}}})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					// The body the guard read is there for the handler.
					if b, _ := io.ReadAll(r.Body); int64(len(b)) != r.ContentLength {
						w.WriteHeader(http.StatusInternalServerError)
						return
					}
					w.WriteHeader(http.StatusUnauthorized)
				})))
			var h http.Handler = mux
			if tc.wrap != nil {
				h = tc.wrap(mux)
			}
			code := func(mk newReq) int {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, mk())
				return w.Code
			}
			require.Equal(t, http.StatusUnauthorized, code(tc.a), "the first failure reaches the handler")
			assert.Equal(t, http.StatusUnauthorized, code(tc.other), "another value counts apart")
			assert.Equal(t, http.StatusPreconditionRequired, code(tc.same), "the same value counts together")
			assert.Equal(t, http.StatusUnauthorized, code(tc.absent))
			assert.Equal(t, http.StatusUnauthorized, code(tc.absent), "no value, no count")
		})
	}
}

// A function's value goes through the trimming, folding, normalising and
// bounding a built-in source's does.
func TestSourceFuncValues(t *testing.T) {
	t.Parallel()
	hdr := func(name string) func(r *http.Request) (string, bool) {
		return func(r *http.Request) (string, bool) {
			v := r.Header.Values(name)
			if len(v) == 0 {
				return "", false
			}
			return v[0], true
		}
	}
	tenant := captchagate.SourceFunc("tenant", hdr("X-Tenant"))
	assert.Equal(t, "func:tenant", tenant.Name())
	assert.Equal(t, "func:account.email", captchagate.BodySourceFunc("account.email", func(*http.Request, []byte) (string, bool) { return "", false }).Name())
	on := func(v string) req { return req{hdr: map[string]string{"X-Tenant": v}} }

	assert.True(t, sameKey(t, tenant, nil, on("acme"), on(" acme\t")), "trimmed")
	assert.False(t, sameKey(t, tenant, nil, on("acme"), on("ACME")), "not folded unless asked")
	assert.True(t, sameKey(t, tenant.Fold(), nil, on("acme"), on("ACME")), "Fold")
	assert.True(t, sameKey(t, tenant.Normalize(func(s string) string { return strings.TrimSuffix(s, ".example") }), nil,
		on("acme"), on("acme.example")), "Normalize")
	assert.False(t, sameKey(t, tenant, nil, on("acme"), on(" ")), "a blank value is absent")
	flagged := captchagate.SourceFunc("flagged", func(r *http.Request) (string, bool) {
		return "acme", r.Header.Get("X-Tenant") != ""
	})
	assert.False(t, sameKey(t, flagged, nil, on("acme"), req{}), "a value with ok false is absent")
	long := strings.Repeat("a", 256)
	assert.True(t, sameKey(t, tenant, nil, on(long+"x"), on(long+"y")), "cut at 256 bytes")
	assert.False(t, sameKey(t, tenant, nil, on(long[1:]+"x"), on(long[1:]+"y")), "not before")

	both := captchagate.Combine(tenant, captchagate.ClientIP())
	assert.Equal(t, "func:tenant+ip", both.Name())
	at := func(v, ip string) req { return req{remote: ip + ":1", hdr: map[string]string{"X-Tenant": v}} }
	assert.True(t, sameKey(t, both, nil, at("acme", "192.0.2.1"), at("acme", "192.0.2.1")))
	assert.False(t, sameKey(t, both, nil, at("acme", "192.0.2.1"), at("acme", "192.0.2.2")))
	assert.False(t, sameKey(t, both, nil, at("acme", "192.0.2.1"), at("globex", "192.0.2.1")))
}

// Names are unique per policy, and a function's key cannot take a built-in
// one's name.
func TestSourceFuncNames(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, nil)
	f := func(*http.Request) (string, bool) { return "x", true }
	bf := func(*http.Request, []byte) (string, bool) { return "x", true }
	for i, tc := range []struct {
		keys []captchagate.Source
		ok   bool
	}{
		{[]captchagate.Source{captchagate.SourceFunc("ip", f), captchagate.ClientIP()}, true},
		{[]captchagate.Source{captchagate.SourceFunc("json:phone", f), captchagate.JSONField("phone")}, true},
		{[]captchagate.Source{captchagate.SourceFunc("a", f), captchagate.SourceFunc("b", f)}, true},
		{[]captchagate.Source{captchagate.SourceFunc("a", f), captchagate.SourceFunc("a", f)}, false},
		{[]captchagate.Source{captchagate.SourceFunc("a", f), captchagate.BodySourceFunc("a", bf)}, false},
	} {
		p := captchagate.Policy{Name: fmt.Sprint("p", i), MaxFailures: 1}
		for _, s := range tc.keys {
			p.Keys = append(p.Keys, captchagate.Key{Source: s})
		}
		_, err := g.NewGuard(p)
		if tc.ok {
			assert.NoError(t, err, "case %d", i)
		} else {
			assert.ErrorContains(t, err, "twice", "case %d", i)
		}
	}
}

func TestSourceFuncPanicsAtConstruction(t *testing.T) {
	t.Parallel()
	f := func(*http.Request) (string, bool) { return "", false }
	bf := func(*http.Request, []byte) (string, bool) { return "", false }
	for name, build := range map[string]func(){
		"empty name":       func() { captchagate.SourceFunc("", f) },
		"long name":        func() { captchagate.SourceFunc(strings.Repeat("n", 65), f) },
		"plus":             func() { captchagate.SourceFunc("user+ip", f) },
		"NUL":              func() { captchagate.SourceFunc("a\x00b", f) },
		"newline":          func() { captchagate.SourceFunc("a\nb", f) },
		"invalid UTF-8":    func() { captchagate.SourceFunc("a\xffb", f) },
		"nil func":         func() { captchagate.SourceFunc("user", nil) },
		"body: empty name": func() { captchagate.BodySourceFunc("", bf) },
		"body: nil func":   func() { captchagate.BodySourceFunc("user", nil) },
	} {
		msg := panicMessage(build)
		assert.True(t, strings.HasPrefix(msg, "captchagate: "), "%s: panic %q", name, msg)
	}
	assert.NotPanics(t, func() { captchagate.SourceFunc(strings.Repeat("n", 64), f) })
	assert.NotPanics(t, func() { captchagate.SourceFunc("account.email:v2 (ü)", f) })
}

// panicMessage runs f and returns what it panicked with, "" if it did not.
func panicMessage(f func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprint(v)
		}
	}()
	f()
	return ""
}

// BenchmarkGuardAllowedSourceFunc: an allowed request counted by a key from a
// function (a header the application reads itself), beside
// BenchmarkGuardAllowedIP.
func BenchmarkGuardAllowedSourceFunc(b *testing.B) {
	tenant := captchagate.SourceFunc("tenant", func(r *http.Request) (string, bool) {
		v := r.Header["X-Tenant"]
		if len(v) == 0 {
			return "", false
		}
		return v[0], true
	})
	h := benchGate(b).Guard(captchagate.Policy{Name: "t", Keys: []captchagate.Key{{Source: tenant, MaxFailures: 1 << 30}}})(okHandler)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Tenant", "acme")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
