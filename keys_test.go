package captchagate_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
)

// req describes one request of a key test.
type req struct {
	remote, body, ctype, query string
	hdr                        map[string]string
}

func (q req) build() *http.Request {
	r := httptest.NewRequest("POST", "/x?"+q.query, strings.NewReader(q.body))
	r.RemoteAddr = q.remote
	if r.RemoteAddr == "" {
		r.RemoteAddr = "192.0.2.1:1"
	}
	if q.ctype != "" {
		r.Header.Set("Content-Type", q.ctype)
	}
	for k, v := range q.hdr {
		r.Header.Add(k, v)
	}
	return r
}

// sameKey fails first (once, against a threshold of one) and reports whether
// second then needs a captcha, that is whether both requests counted on one
// key. It fails the test if first has no key value at all.
func sameKey(t *testing.T, src captchagate.Source, mutate func(*captchagate.Config), first, second req) bool {
	t.Helper()
	return sameKeyOf(t, captchagate.Key{Source: src}, mutate, first, second)
}

// sameKeyOf is sameKey for a whole Key (its MaxFailures left to the
// policy's one).
func sameKeyOf(t *testing.T, key captchagate.Key, mutate func(*captchagate.Config), first, second req) bool {
	t.Helper()
	g, _ := newGate(t, mutate)
	h := g.Guard(captchagate.Policy{Name: "k", MaxFailures: 1, Keys: []captchagate.Key{key}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, first.build())
	require.Equal(t, 401, w.Code)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, first.build())
	require.Equal(t, http.StatusPreconditionRequired, w.Code, "first request has no key value")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, second.build())
	return w.Code == http.StatusPreconditionRequired
}

func TestClientIPWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	ip := captchagate.ClientIP()
	a := req{remote: "203.0.113.5:1111", hdr: map[string]string{"X-Forwarded-For": "1.1.1.1", "X-Real-Ip": "1.1.1.1"}}
	b := req{remote: "203.0.113.5:2222", hdr: map[string]string{"X-Forwarded-For": "2.2.2.2", "X-Real-Ip": "2.2.2.2"}}
	assert.True(t, sameKey(t, ip, nil, a, b), "rotating forwarded headers changes nothing")
	c := req{remote: "203.0.113.6:1111", hdr: map[string]string{"X-Forwarded-For": "203.0.113.5"}}
	assert.False(t, sameKey(t, ip, nil, a, c), "naming another client's IP does not move its counter")

	v6a := req{remote: "[2001:db8:1:2:aaaa::1]:1"}
	v6b := req{remote: "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1"}
	v6c := req{remote: "[2001:db8:1:3::1]:1"}
	assert.True(t, sameKey(t, ip, nil, v6a, v6b), "one /64 shares a counter")
	assert.False(t, sameKey(t, ip, nil, v6a, v6c), "another /64 does not")
	assert.True(t, sameKey(t, ip, nil, req{remote: "[::ffff:192.0.2.9]:1"}, req{remote: "192.0.2.9:2"}), "v4-mapped is v4")
	assert.False(t, sameKey(t, ip, nil, req{remote: "192.0.2.32:1"}, req{remote: "192.0.2.9:2"}))
}

func TestClientIPBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	ip := captchagate.ClientIP()
	trust := func(c *captchagate.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}
	via := func(xff ...string) req {
		r := req{remote: "10.0.0.2:1", hdr: map[string]string{}}
		r.hdr["X-Forwarded-For"] = strings.Join(xff, ", ")
		return r
	}
	// The right-most untrusted address is the client; what it forged to the left is ignored.
	assert.True(t, sameKey(t, ip, trust, via("6.6.6.6", "198.51.100.1"), via("7.7.7.7", "198.51.100.1")))
	assert.True(t, sameKey(t, ip, trust, via("198.51.100.1", "10.1.1.1"), via("198.51.100.1")), "trusted hops are skipped")
	assert.False(t, sameKey(t, ip, trust, via("198.51.100.1"), via("198.51.100.2")))
	// A client not behind the proxy cannot use the header.
	direct := req{remote: "198.51.100.77:1", hdr: map[string]string{"X-Forwarded-For": "198.51.100.1"}}
	assert.False(t, sameKey(t, ip, trust, via("198.51.100.1"), direct))
	// Garbage in the header stops the walk at the last good address.
	assert.True(t, sameKey(t, ip, trust, via("198.51.100.1"), via("not-an-ip", "198.51.100.1")))
	// A custom header.
	custom := func(c *captchagate.Config) { trust(c); c.ForwardedHeader = "X-Real-IP" }
	assert.True(t, sameKey(t, ip, custom,
		req{remote: "10.0.0.2:1", hdr: map[string]string{"X-Real-Ip": "198.51.100.1"}},
		req{remote: "10.0.0.3:1", hdr: map[string]string{"X-Real-Ip": "198.51.100.1", "X-Forwarded-For": "1.2.3.4"}}))
}

func TestJSONFieldMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	user := captchagate.Username(captchagate.JSONField("username")).Source
	j := func(body string) req { return req{body: body, ctype: "application/json"} }
	alice := j(`{"username":"alice"}`)
	for name, body := range map[string]string{
		"case-insensitive name": `{"UserName":"alice"}`,
		"last duplicate wins":   `{"username":"mallory","username":"alice"}`,
		"folded value":          `{"username":"  ALICE\t"}`,
		"escaped value":         `{"username":"\u0061lice"}`,
		"escaped name":          `{"user\u006eame":"alice"}`,
		"nested noise":          `{"a":{"username":"x"},"b":[1,{"c":"}"}],"username":"alice","n":-1.5e3,"t":true}`,
		"whitespace":            " {\n \"username\" : \"alice\" } ",
		// encoding/json keeps "alice" in a string field: null is a no-op and a
		// type error leaves the value; a guard that dropped the key here could
		// be bypassed by appending "username":null.
		"later null":   `{"username":"alice","username":null}`,
		"later number": `{"username":"alice","username":7}`,
	} {
		assert.True(t, sameKey(t, user, nil, alice, j(body)), name)
	}
	for name, body := range map[string]string{
		"other user":     `{"username":"bob"}`,
		"nested only":    `{"profile":{"username":"alice"}}`,
		"prefix":         `{"username":"alicex"}`,
		"not an object":  `["username","alice"]`,
		"truncated":      `{"username":"alice"`,
		"invalid escape": `{"username":"ali\qce"}`,
	} {
		assert.False(t, sameKey(t, user, nil, alice, j(body)), name)
	}
	// Invalid UTF-8 is replaced as encoding/json does.
	assert.True(t, sameKey(t, user, nil, j("{\"username\":\"a\xffb\"}"), j(`{"username":"a\ufffdb"}`)))
}

func TestFormQueryHeaderCombine(t *testing.T) {
	t.Parallel()
	form := "application/x-www-form-urlencoded"
	user := captchagate.FormField("user")
	assert.True(t, sameKey(t, user, nil, req{body: "user=bob&x=1", ctype: form}, req{body: "u%73er=bob", ctype: form}))
	assert.True(t, sameKey(t, user, nil, req{body: "user=bob", ctype: form}, req{body: "user=bob&user=eve", ctype: form}), "first value wins, as in FormValue")
	assert.True(t, sameKey(t, user, nil, req{body: "user=bob", ctype: form}, req{query: "user=bob"}), "query when the body has none")
	assert.True(t, sameKey(t, user, nil, req{body: "user=bob", ctype: form}, req{body: "user=bob", ctype: form, query: "user=eve"}), "body before query")
	assert.False(t, sameKey(t, user, nil, req{body: "user=bob", ctype: form}, req{body: "user=bob", ctype: "text/plain"}))

	q := captchagate.Query("phone")
	assert.False(t, sameKey(t, q, nil, req{query: "phone=%2B1555"}, req{query: "phone=+1555&phone=x"}), "+ is a space in queries")
	assert.True(t, sameKey(t, q, nil, req{query: "phone=%2B1555"}, req{query: "phone=%2b1555"}))

	dev := captchagate.Header("x-device-fingerprint")
	d1 := req{hdr: map[string]string{"X-Device-Fingerprint": "156aysdna213sc50"}}
	assert.True(t, sameKey(t, dev, nil, d1, req{hdr: map[string]string{"X-Device-Fingerprint": " 156aysdna213sc50 "}}))
	assert.False(t, sameKey(t, dev, nil, d1, req{hdr: map[string]string{"X-Device-Fingerprint": "156AYSDNA213SC50"}}), "headers are not folded unless asked")

	both := captchagate.Combine(captchagate.JSONField("username"), captchagate.ClientIP()).Fold()
	assert.Equal(t, "json:username+ip", both.Name())
	u := func(name, ip string) req { return req{remote: ip + ":1", body: `{"username":"` + name + `"}`} }
	assert.True(t, sameKey(t, both, nil, u("Alice", "192.0.2.1"), u("alice", "192.0.2.1")))
	assert.False(t, sameKey(t, both, nil, u("alice", "192.0.2.1"), u("alice", "192.0.2.2")))
	assert.False(t, sameKey(t, both, nil, u("alice", "192.0.2.1"), u("bob", "192.0.2.1")))

	phone := captchagate.Phone(captchagate.JSONField("phone")).Source
	assert.True(t, sameKey(t, phone, nil, req{body: `{"phone":"+1 (555) 010-0"}`}, req{body: `{"phone":"+15550100"}`}))

	norm := captchagate.JSONField("email").Fold().Normalize(func(s string) string {
		local, domain, _ := strings.Cut(s, "@")
		return strings.ReplaceAll(local, ".", "") + "@" + domain
	})
	assert.True(t, sameKey(t, norm, nil, req{body: `{"email":"A.B@x.org"}`}, req{body: `{"email":"ab@X.ORG"}`}))
}

func TestFieldReadsFormsAndJSON(t *testing.T) {
	t.Parallel()
	form := "application/x-www-form-urlencoded"
	f := captchagate.Field("username")
	assert.Equal(t, "field:username", f.Name())
	assert.True(t, sameKey(t, f, nil, req{body: "username=bob", ctype: form}, req{body: `{"username":"bob"}`, ctype: "application/json"}),
		"an HTML form and a JSON API count one account together")
	assert.False(t, sameKey(t, f, nil, req{body: "username=bob", ctype: form}, req{body: `{"username":"eve"}`}))
	assert.False(t, sameKey(t, f, nil, req{body: "username=bob", ctype: form}, req{query: "username=bob"}), "no query fallback")
}

func TestLongKeysAreBounded(t *testing.T) {
	t.Parallel()
	user := captchagate.JSONField("username")
	long := strings.Repeat("a", 256)
	assert.True(t, sameKey(t, user, nil, req{body: `{"username":"` + long + `x"}`}, req{body: `{"username":"` + long + `y"}`}),
		"values are cut at 256 bytes")
}
