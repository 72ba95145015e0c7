package captchagate

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The guard reads keys and proof with its own scanners (no allocation on the
// hot path); these fuzz targets hold them to the standard library's
// semantics, so that what is counted is what the application decodes. Run
// one with: go test -run '^$' -fuzz '^FuzzJSONField$' -fuzztime 30s .

func FuzzJSONField(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice"}`, `{"USERNAME":"a","username":"b"}`, `{"username":"a","username":null}`,
		`{"username":"a","username":1}`, `{"username":"\u0061\n"}`, `{"user\u006eame":"x"}`, "{\"username\":\"\xff\"}",
		`{"a":{"username":"nested"},"username":"top"}`, `[{"username":"x"}]`, `{"username":"a"`, `{"\u212Aey":"k"}`,
		`{"username":"a" , "b" : [1, {"c": "d"}] }`, `{"username":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := jsonField(nil, body, "username")
		var v struct {
			Username string `json:"username"`
		}
		if !json.Valid(body) {
			return // the application's decoder refuses it too
		}
		err := json.Unmarshal(body, &v)
		var syntax *json.SyntaxError
		if err != nil && (bytes.IndexByte(bytes.TrimSpace(body), '{') != 0 || errorsAs(err, &syntax)) {
			return
		}
		// The value the application sees (type errors ignored, as careless
		// handlers do) is the value the guard counts.
		if !ok {
			got = nil
		}
		if string(got) != v.Username {
			t.Fatalf("jsonField = %q (%v), encoding/json = %q, body %q", got, ok, v.Username, body)
		}
	})
}

func errorsAs(err error, target **json.SyntaxError) bool {
	se, ok := err.(*json.SyntaxError)
	if ok {
		*target = se
	}
	return ok
}

func FuzzFormValue(f *testing.F) {
	for _, s := range []string{"user=bob", "u%73er=bob&user=eve", "user=a;b&user=c", "user=%zz&user=ok", "user", "user=", "x=1&&user=+a+",
		"user=%E2%82%AC", "%75ser=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, ok := formValue(nil, q, "user")
		vals, _ := url.ParseQuery(q) // keeps the good pairs, as FormValue does
		want, wantOK := "", false
		if vs := vals["user"]; len(vs) > 0 {
			want, wantOK = vs[0], true
		}
		if ok != wantOK || string(got) != want {
			t.Fatalf("formValue(%q) = %q, %v; url.ParseQuery = %q, %v", q, got, ok, want, wantOK)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	rec := record{policy: "login", mask: 3, flags: flagSession | flagSender, refreshes: 2, level: 4, expires: 1 << 40, secret: []byte{1, 2, 3}}
	f.Add(rec.encode())
	f.Add([]byte{})
	f.Add([]byte{recordVersion})
	v3 := rec.encode()
	f.Add(append([]byte{2, v3[1], v3[2]}, v3[4:]...)) // the same record in version 2
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		if b[0] == 2 { // read, never written: check it reads as v3 with level 0
			e := rec.encode()
			if rec.level != 0 || !bytes.Equal(e[1:3], b[1:3]) || !bytes.Equal(e[4:], b[3:]) {
				t.Fatalf("v2 record %x read as %+v", b, rec)
			}
			return
		}
		if !bytes.Equal(rec.encode(), b) {
			t.Fatalf("decode(%x) does not encode back: %x", b, rec.encode())
		}
	})
}

// FuzzClientIP reads the header as X-Forwarded-For and as RFC 7239
// Forwarded, behind a trusted peer (and a unix socket, with TrustUnixSocket)
// or not. The client is the peer, an address written in the header, or the
// strict bucket; and once the walk has decided, nothing a client writes to
// the left of the header changes the decision.
func FuzzClientIP(f *testing.F) {
	f.Add("192.0.2.1:1", "203.0.113.9, 10.0.0.1", true)
	f.Add("[2001:db8::1]:443", "::ffff:1.2.3.4", false)
	f.Add("10.0.0.1:1", "garbage, 198.51.100.7", true)
	f.Add("10.0.0.1", ",,,", true)
	f.Add("10.0.0.1:1", "198.51.100.7:4711, [2001:db8::2]:80, [2001:db8::3], 10.0.0.2:1", true)
	f.Add("@", `for=192.0.2.43:47011;proto=https, for="[2001:db8:cafe::17]:4711", for=10.1.1.1;by=_p`, true)
	f.Add("/run/app.sock", `For="\[2001:db8::1\]:_obf";by=x, for=unknown`, true)
	f.Add("", `for=_hidden, for=10.0.0.9`, true)
	f.Add("10.0.0.1:1", `for="198.51.100.1, for=10.0.0.2"`, true)
	f.Add("10.0.0.1:1", `for=198.51.100.1;for=198.51.100.2`, true)
	f.Fuzz(func(t *testing.T, remote, hdr string, trusted bool) {
		for _, name := range []string{"X-Forwarded-For", "Forwarded"} {
			p := ipResolver{header: name, forwarded: name == "Forwarded", trustPath: trusted}
			if trusted {
				p.trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			}
			resolve := func(vals ...string) (netip.Addr, bool) {
				r := httptest.NewRequest("GET", "/", nil)
				r.RemoteAddr = remote
				r.Header[name] = vals
				return p.clientAddr(r)
			}
			a, ok := resolve(hdr)
			peer, peerOK := parseRemoteAddr(remote)
			switch {
			case peerOK && !p.isTrusted(peer):
				if !ok || a != peer {
					t.Fatalf("%s: an untrusted peer %v sent %q and was taken for %v, %v", name, peer, hdr, a, ok)
				}
				continue
			case !peerOK && !trusted:
				if ok {
					t.Fatalf("%s: peer %q is no address but the client is %v", name, remote, a)
				}
				continue
			}
			if ok && a != peer && !inHeader(a, hdr) {
				t.Fatalf("%s: client %v is neither the peer %v nor an entry of %q", name, a, peer, hdr)
			}
			if strings.TrimSpace(hdr) == "" || (ok && p.isTrusted(a)) {
				continue // the walk reached the left end: what is further left counts
			}
			// The walk decided inside hdr: a client's own header to the left
			// (on the line or on a line before) changes nothing.
			for _, forged := range []string{"203.0.113.66", "for=203.0.113.66", `for="`, `"`, "unknown", `\`} {
				for _, vals := range [][]string{{forged + ", " + hdr}, {forged, hdr}} {
					if b, bok := resolve(vals...); b != a || bok != ok {
						t.Fatalf("%s: %q gives %v, %v but %q gives %v, %v", name, hdr, a, ok, vals, b, bok)
					}
				}
			}
		}
	})
}

// inHeader reports whether a is written in h, in any of the forms a
// forwarded header's entry can take.
func inHeader(a netip.Addr, h string) bool {
	h = strings.ReplaceAll(h, `\`, "")
	for _, tok := range strings.FieldsFunc(h, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(",;=\"", r) }) {
		if e, ok := parseHop(tok); ok && e == a {
			return true
		}
	}
	return false
}

// FuzzRemoteAddr holds the fast IPv4 path of parseRemoteAddr to netip's
// answers.
func FuzzRemoteAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1:1234", "0.0.0.0:0", "255.255.255.255:65535", "1.2.3.4:65536", "", "@", "/run/app.sock",
		"01.2.3.4:1", "1.2.3.4:", "1.2.3.4", "1.2.3.4:0080", "1.2.3.256:1", "1..3.4:1", "1.2.3.4.5:1",
		"[::ffff:1.2.3.4]:1", "1.2.3.4:+1", "1.2.3.4:1x", "1.2.3.4%eth0:1", "1234.1.1.1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantOK := netip.Addr{}, false
		if ap, err := netip.ParseAddrPort(s); err == nil {
			want, wantOK = ap.Addr().Unmap().WithZone(""), true
		} else if a, err := netip.ParseAddr(s); err == nil {
			want, wantOK = a.Unmap().WithZone(""), true
		}
		got, ok := parseRemoteAddr(s)
		if ok != wantOK || got != want {
			t.Fatalf("parseRemoteAddr(%q) = %v, %v; netip: %v, %v", s, got, ok, want, wantOK)
		}
		if a, fast := parseIPv4Port(s); fast && a != want {
			t.Fatalf("parseIPv4Port(%q) = %v; netip: %v", s, a, want)
		}
	})
}

// FuzzEndpoints sends arbitrary bodies to the captcha endpoints and a guarded
// route: never a 500 or a panic, always a JSON answer or the handler's.
func FuzzEndpoints(f *testing.F) {
	f.Add("verify", "application/json", `{"captcha_id":"AAAAAAAAAAAAAAAAAAAAAA","captcha_answer":"1"}`)
	f.Add("refresh", "application/x-www-form-urlencoded", "captcha_id=%zz")
	f.Add("new", "application/json", `{"policy":1e999}`)
	f.Add("login", "application/json", `{"username":"a","captcha_token":"x","captcha_id":"y","captcha_answer":"z"}`)
	f.Add("login", "application/x-www-form-urlencoded", "username=a&captcha_token="+strings.Repeat("A", 32))
	f.Add("verify", "text/plain", "\x00\xff")
	g, err := New(Config{Secret: bytes.Repeat([]byte{7}, 32), CreateBurst: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer g.Close()
	captchas := g.Handler()
	login := g.Guard(Policy{Name: "login", MaxFailures: 1, Keys: []Key{
		{Source: Field("username")}, {Source: ClientIP(), MaxFailures: 1 << 30},
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	f.Fuzz(func(t *testing.T, endpoint, ctype, body string) {
		path, h := "/captcha/"+url.PathEscape(endpoint), captchas
		if endpoint == "login" {
			path, h = "/login", login
		}
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code != http.StatusUnauthorized && w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %q: %d with Content-Type %q", path, body, w.Code, ct)
			}
			if !json.Valid(w.Body.Bytes()) || !utf8.Valid(w.Body.Bytes()) {
				t.Fatalf("%s: invalid JSON %q", path, w.Body)
			}
		}
	})
}
