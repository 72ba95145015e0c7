package captchagate_test

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
)

// strict is a RemoteAddr that is no address: a request from it counts in
// the strict bucket.
const strict = "not-an-address"

// fails sends r once, failing, to a guard counting src with a threshold of
// one, then reports for each probe (a RemoteAddr, no header) whether it now
// needs a captcha: whether r counted in the probe's bucket.
func fails(t *testing.T, src captchagate.Source, mutate func(*captchagate.Config), r *http.Request, probes ...string) []bool {
	t.Helper()
	g, _ := newGate(t, mutate)
	h := g.Guard(captchagate.Policy{Name: "addr", MaxFailures: 1, Keys: []captchagate.Key{{Source: src}}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	got := make([]bool, len(probes))
	for i, p := range probes {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("GET", "/", "", "RemoteAddr", p))
		got[i] = w.Code == http.StatusPreconditionRequired
	}
	return got
}

// TestClientAddressTable sends one failing request per case and checks the
// bucket it counted in, and that it did not count in the bucket the client
// named to its left (or the proxy's).
func TestClientAddressTable(t *testing.T) {
	t.Parallel()
	behind := func(header string) func(*captchagate.Config) {
		return func(c *captchagate.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			c.ForwardedHeader = header
		}
	}
	xff, fwd := behind(""), behind("Forwarded")
	unix := func(c *captchagate.Config) { c.TrustUnixSocket = true }
	const client, forged, proxy = "198.51.100.1:9", "6.6.6.6:9", "10.0.0.2:1"
	const v6 = "[2001:db8:1:2::9]:9" // same /64 as 2001:db8:1:2::1
	for _, tc := range []struct {
		name    string
		mutate  func(*captchagate.Config)
		remote  string
		header  []string // values of the configured header
		counted string   // the bucket the request must count in
		not     string   // a bucket it must not count in
		extra   []string // other headers, in pairs
	}{
		// Unresolved peers: one strict bucket, never uncounted.
		{name: "empty RemoteAddr", remote: "", counted: strict, not: client},
		{name: "unix socket @", remote: "@", counted: strict, not: client},
		{name: "unix socket path", remote: "/run/app.sock", counted: strict, not: client},
		{name: "garbage RemoteAddr", remote: "garbage", counted: strict, not: client},
		{name: "unix socket ignores the header", remote: "@", header: []string{"198.51.100.1"}, counted: strict, not: client},
		{name: "TrustUnixSocket believes the header", mutate: unix, remote: "@", header: []string{"6.6.6.6, 198.51.100.1"}, counted: client, not: strict},
		{name: "TrustUnixSocket without a header", mutate: unix, remote: "@", counted: strict, not: client},
		{name: "TrustUnixSocket, unknown entry", mutate: unix, remote: "", header: []string{"6.6.6.6, unknown"}, counted: strict, not: forged},

		// X-Forwarded-For with ports.
		{name: "xff ip:port", mutate: xff, remote: proxy, header: []string{"198.51.100.1:4711"}, counted: client, not: proxy},
		{name: "xff [v6]:port", mutate: xff, remote: proxy, header: []string{"[2001:db8:1:2::1]:4711"}, counted: v6, not: proxy},
		{name: "xff [v6]", mutate: xff, remote: proxy, header: []string{"[2001:db8:1:2::1]"}, counted: v6, not: proxy},
		{name: "xff right-most untrusted", mutate: xff, remote: proxy, header: []string{"6.6.6.6, 198.51.100.1:80, 10.0.0.3:1"}, counted: client, not: forged},
		{name: "xff all trusted", mutate: xff, remote: proxy, header: []string{"10.0.0.7, 10.0.0.2:1"}, counted: "10.0.0.7:1", not: strict},
		{name: "xff unknown stops the walk", mutate: xff, remote: proxy, header: []string{"6.6.6.6, unknown"}, counted: strict, not: forged},
		{name: "xff garbage behind a trusted hop", mutate: xff, remote: proxy, header: []string{"6.6.6.6, garbage, 10.0.0.3"}, counted: strict, not: forged},
		{name: "xff empty element", mutate: xff, remote: proxy, header: []string{"6.6.6.6, , 10.0.0.3"}, counted: strict, not: forged},
		{name: "xff blank line", mutate: xff, remote: proxy, header: []string{"6.6.6.6", " "}, counted: strict, not: forged},
		{name: "xff zone", mutate: xff, remote: proxy, header: []string{"6.6.6.6, fe80::1%eth0"}, counted: strict, not: forged},
		{name: "xff bad port", mutate: xff, remote: proxy, header: []string{"6.6.6.6, 198.51.100.1:65536"}, counted: strict, not: forged},
		{name: "xff blank header: the proxy", mutate: xff, remote: proxy, header: []string{" "}, counted: proxy, not: strict},
		{name: "xff no header: the proxy", mutate: xff, remote: proxy, counted: proxy, not: strict},

		// RFC 7239 Forwarded.
		{name: "for=ip", mutate: fwd, remote: proxy, header: []string{"for=198.51.100.1"}, counted: client, not: proxy},
		{name: "for=ip:port with other pairs", mutate: fwd, remote: proxy, header: []string{"for=198.51.100.1:47011;proto=https;by=10.0.0.2"}, counted: client, not: proxy},
		{name: "quoted [v6]:port", mutate: fwd, remote: proxy, header: []string{`for="[2001:db8:1:2::1]:4711"`}, counted: v6, not: proxy},
		{name: "name case, quoted v4, obfuscated port", mutate: fwd, remote: proxy, header: []string{`For="198.51.100.1:_p1"`}, counted: client, not: proxy},
		{name: "escapes in a quoted string", mutate: fwd, remote: proxy, header: []string{`for="\[2001:db8:1:2::1\]"`}, counted: v6, not: proxy},
		{name: "right-most untrusted element", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6, for=198.51.100.1, for=10.0.0.3"}, counted: client, not: forged},
		{name: "elements on two lines", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6", "for=198.51.100.1"}, counted: client, not: forged},
		{name: "an open quote to the left", mutate: fwd, remote: proxy, header: []string{`for="6.6.6.6, for=198.51.100.1`}, counted: client, not: forged},
		{name: "_hidden", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6, for=_hidden"}, counted: strict, not: forged},
		{name: "unknown", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6, for=unknown"}, counted: strict, not: forged},
		{name: "element without for", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6, proto=https"}, counted: strict, not: forged},
		{name: "for twice", mutate: fwd, remote: proxy, header: []string{"for=198.51.100.1;for=6.6.6.6"}, counted: strict, not: forged},
		{name: "a comma in a quoted parameter", mutate: fwd, remote: proxy, header: []string{`for=6.6.6.6, for=198.51.100.1;ext="a, b"`}, counted: client, not: strict},
		{name: "a comma in quotes", mutate: fwd, remote: proxy, header: []string{`for=6.6.6.6, for="198.51.100.1, for=10.0.0.3"`}, counted: strict, not: forged},
		{name: "bare v6 with a port in a token", mutate: fwd, remote: proxy, header: []string{"for=6.6.6.6, for=[2001:db8::1]:x"}, counted: strict, not: forged},
		{name: "X-Forwarded-For is not read", mutate: fwd, remote: proxy, extra: []string{"X-Forwarded-For", "198.51.100.1"}, counted: proxy, not: client},
		{name: "an untrusted peer's Forwarded", mutate: fwd, remote: client, header: []string{"for=6.6.6.6"}, counted: client, not: forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := request("POST", "/", "", append([]string{"RemoteAddr", tc.remote}, tc.extra...)...)
			c := captchagate.Config{ForwardedHeader: "X-Forwarded-For"}
			if tc.mutate != nil {
				tc.mutate(&c)
			}
			if tc.header != nil {
				r.Header[http.CanonicalHeaderKey(cmp.Or(c.ForwardedHeader, "X-Forwarded-For"))] = tc.header
			}
			got := fails(t, captchagate.ClientIP(), tc.mutate, r, tc.counted, tc.not)
			assert.True(t, got[0], "counted in %q", tc.counted)
			assert.False(t, got[1], "counted in %q too", tc.not)
		})
	}
}

// ClientNet groups by the widths asked for; next to ClientIP it catches an
// attacker rotating through the /64s of one /48.
func TestClientNet(t *testing.T) {
	t.Parallel()
	net48 := captchagate.ClientNet(32, 48)
	assert.Equal(t, "ip/32/48", net48.Name())
	in := func(remote string) *http.Request { return request("POST", "/", "", "RemoteAddr", remote) }
	const a, sameNet, otherNet = "[2001:db8:1:2::1]:1", "[2001:db8:1:ffff::1]:1", "[2001:db8:2::1]:1"
	assert.Equal(t, []bool{true, false}, fails(t, net48, nil, in(a), sameNet, otherNet), "another /64 of the /48 shares it")
	assert.Equal(t, []bool{false}, fails(t, captchagate.ClientIP(), nil, in(a), sameNet), "ClientIP does not")
	assert.Equal(t, []bool{true, false}, fails(t, net48, nil, in("192.0.2.1:1"), "192.0.2.1:2", "192.0.2.2:1"), "IPv4 per address")
	assert.Equal(t, []bool{true, false}, fails(t, captchagate.ClientNet(24, 64), nil, in("192.0.2.1:1"), "192.0.2.200:1", "192.0.3.1:1"), "IPv4 by /24")
	assert.Equal(t, []bool{true, false}, fails(t, net48, nil, in("@"), strict, "192.0.2.1:1"), "unresolved is the strict bucket")

	// Counted beside ClientIP in one policy, with a higher threshold.
	g, _ := newGate(t, nil)
	h := g.Guard(captchagate.Policy{Name: "both", Keys: []captchagate.Key{
		{Source: captchagate.ClientIP(), MaxFailures: 2}, {Source: net48, MaxFailures: 4},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	for i := range 4 { // four /64s of one /48, one failure each
		w := httptest.NewRecorder()
		h.ServeHTTP(w, in(netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, byte(i), 15: 1}), 1).String()))
		require.Equal(t, http.StatusUnauthorized, w.Code)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, in("[2001:db8:9:77::1]:1"))
	assert.Equal(t, http.StatusPreconditionRequired, w.Code, "a fifth /64 of the /48 meets the /48's counter")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, in("[2001:db8:a::1]:1"))
	assert.Equal(t, http.StatusUnauthorized, w.Code, "another /48 does not")

	for _, bad := range [][2]int{{0, 48}, {33, 48}, {48, 32}, {32, 8}, {32, 65}, {32, 128}} {
		assert.PanicsWithValue(t, fmt.Sprintf("captchagate: ClientNet(%d, %d) needs 8 <= v4Bits <= 32 and 16 <= v6Bits <= 64", bad[0], bad[1]),
			func() { captchagate.ClientNet(bad[0], bad[1]) })
	}
}

// unixClient serves h on a unix socket and returns a client that reaches it.
func unixClient(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "cg")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func postTo(t *testing.T, c *http.Client, url string, hdr ...string) int {
	t.Helper()
	r, err := http.NewRequest("POST", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// Over a real unix-socket listener, requests have no address: they count in
// the strict bucket and trip it. With TrustUnixSocket, the proxy's header
// tells clients apart, for the guard's keys and for the creation budget.
func TestUnixSocketListener(t *testing.T) {
	t.Parallel()
	var remote atomicString
	app := func(mutate func(*captchagate.Config)) *http.Client {
		g, _ := newGate(t, mutate)
		h := g.Guard(captchagate.Policy{Name: "unix", MaxFailures: 2, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				remote.Store(r.RemoteAddr)
				w.WriteHeader(http.StatusUnauthorized)
			}))
		return unixClient(t, h)
	}
	const url = "http://unix/login"

	c := app(nil)
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url))
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url, "X-Forwarded-For", "198.51.100.1"))
	t.Logf("RemoteAddr over a unix socket: %q", remote.Load())
	assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, url, "X-Forwarded-For", "198.51.100.2"),
		"unix-socket requests are counted, in one bucket, whatever their header")

	c = app(func(c *captchagate.Config) {
		c.TrustUnixSocket = true
		c.CreateBurst, c.CreateRate = 2, rate.Every(time.Hour)
	})
	alice, bob := []string{"X-Forwarded-For", "198.51.100.1"}, []string{"X-Forwarded-For", "6.6.6.6, 198.51.100.2"}
	for range 2 {
		require.Equal(t, http.StatusUnauthorized, postTo(t, c, url, alice...))
	}
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url, bob...), "another client behind the proxy")
	assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, url, alice...))
	assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, url, alice...))
	assert.Equal(t, http.StatusTooManyRequests, postTo(t, c, url, alice...), "alice's creation budget is spent")
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url, bob...), "bob's is not")
	assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, url, bob...))
	// Without the header, the proxy names no client: the strict bucket.
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url))
	assert.Equal(t, http.StatusUnauthorized, postTo(t, c, url))
	assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, url))
}

// Behind a trusted proxy over real HTTP, Forwarded and ip:port entries give
// each client its own bucket, whatever the port.
func TestForwardedOverHTTP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header      string
		a, aPort, b string
	}{
		{"Forwarded", `for="198.51.100.1:1111";proto=http`, "for=198.51.100.1:2222", `for="[2001:db8::1]:4711"`},
		{"Forwarded", `for="[2001:db8::1]:4711"`, `for="[2001:db8::2]"`, "for=198.51.100.1"},
		{"X-Forwarded-For", "198.51.100.1:1111", "198.51.100.1:2222", "198.51.100.2:1111"},
		{"X-Forwarded-For", "[2001:db8::1]:4711", "2001:db8::2", "[2001:db8:0:1::1]:4711"},
	} {
		t.Run(tc.header+" "+tc.a, func(t *testing.T) {
			t.Parallel()
			g, _ := newGate(t, func(c *captchagate.Config) {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
				c.ForwardedHeader = tc.header
			})
			srv := httptest.NewServer(g.Guard(captchagate.Policy{Name: "fwd", MaxFailures: 2, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })))
			t.Cleanup(srv.Close)
			c := srv.Client()
			require.Equal(t, http.StatusUnauthorized, postTo(t, c, srv.URL, tc.header, tc.a))
			require.Equal(t, http.StatusUnauthorized, postTo(t, c, srv.URL, tc.header, tc.aPort))
			assert.Equal(t, http.StatusUnauthorized, postTo(t, c, srv.URL, tc.header, tc.b), "another client has its own bucket")
			assert.Equal(t, http.StatusUnauthorized, postTo(t, c, srv.URL), "the proxy has its own")
			assert.Equal(t, http.StatusPreconditionRequired, postTo(t, c, srv.URL, tc.header, tc.a), "one client, any port, one bucket")
		})
	}
}

type atomicString struct{ v atomic.Value }

func (s *atomicString) Store(v string) { s.v.Store(v) }
func (s *atomicString) Load() string {
	v, _ := s.v.Load().(string)
	return v
}
