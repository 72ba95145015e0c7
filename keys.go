package captchagate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Source extracts one key value from a request. Build one with ClientIP,
// ClientNet, Header, FormField, JSONField, Field, Query or Combine, or from a
// function of the application's with SourceFunc or BodySourceFunc; refine it
// with Fold and Normalize. Every value is trimmed of surrounding white space and cut to 256
// bytes after normalisation; an empty value means the key is absent.
//
// Values are never stored: the gate keys its counters by an HMAC of the
// policy, the key's name and the value under Config.Secret (with the
// in-process store, by a seeded 64-bit hash of the same).
type Source struct {
	name      string
	body      bool
	extract   func(in *input, dst []byte) ([]byte, bool)
	normalize func(string) string
	fold      bool
	raw       bool     // binary value, already normalised (ClientIP, Combine)
	identity  Identity // what the value is (Username, Email, Phone): see as
	parts     []Source // for Combine: Fold, Normalize and identities apply to the parts
}

// input is what extractors read: the request and, when a key needs it, the
// bounded body.
type input struct {
	r    *http.Request
	body []byte
	g    *Gate
	args map[string]string // the values a handler passed (Guard.Begin), by Arg name
}

// Name returns the key's name as it appears in events and logs ("ip",
// "json:username", "header:X-Device-Fingerprint", "json:username+ip",
// "func:tenant").
func (s Source) Name() string { return s.name }

// Fold returns a copy of s that lower-cases values (Unicode simple case
// mapping, strings.ToLower), so "Alice" and "alice " count as one.
func (s Source) Fold() Source {
	if s.parts != nil {
		return s.mapParts(Source.Fold)
	}
	s.fold = !s.raw
	return s
}

// Normalize returns a copy of s that passes trimmed (and folded) values
// through f, for identities the application treats as one in its own way
// (say, removing dots in Gmail addresses). f must be deterministic. It
// replaces an earlier Normalize, and runs after the normalisation of a phone
// number (Phone, IdentityPhone).
func (s Source) Normalize(f func(string) string) Source {
	if s.parts != nil {
		return s.mapParts(func(p Source) Source { return p.Normalize(f) })
	}
	if !s.raw {
		s.normalize = f
	}
	return s
}

func (s Source) mapParts(f func(Source) Source) Source {
	parts := make([]Source, len(s.parts))
	for i, p := range s.parts {
		parts[i] = f(p)
	}
	c := Combine(parts...)
	c.identity = s.identity
	return c
}

// as returns a copy of s that counts its values as id says (folded for a
// username or an email address, without separators for a phone number)
// and remembers id, so that a Key built from it gets id's flags.
func (s Source) as(id Identity) Source {
	if s.parts != nil {
		s = s.mapParts(func(p Source) Source { return p.as(id) })
	} else if id == IdentityUsername || id == IdentityEmail {
		s.fold = !s.raw
	}
	s.identity = id
	return s
}

// ClientIP is the client's address: RemoteAddr, or behind proxies listed in
// Config.TrustedProxies, the right-most address of the forwarded header that is
// not a trusted proxy (Config.ForwardedHeader). IPv6 addresses are grouped by
// /64, so one host cannot escape its counter by rotating through its own
// subnet.
//
// ClientIP is never absent. A request whose address cannot be resolved counts
// in one strict bucket, the value "unresolved", shared by all such requests:
// RemoteAddr empty, "@" or a path (a unix-socket listener) or otherwise not an
// address, unless Config.TrustUnixSocket believes its header; or a trusted
// proxy's header whose entry at the point of the walk is not an address
// ("unknown", an obfuscated "_name", garbage, an empty element). The walk
// never skips such an entry for an address further left, which the client
// could have written.
func ClientIP() Source {
	return Source{name: "ip", raw: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		return in.g.ips.appendClientKey(dst, in.r), true
	}}
}

// ClientNet is the client's network, as ClientIP finds the address: its
// first v4Bits bits for IPv4 and its first v6Bits for IPv6. Count it beside
// ClientIP with a higher threshold, so that an attacker holding a whole
// IPv6 /48 (65,536 /64s) or an IPv4 /24 meets one counter, not thousands.
// ClientNet(32, 48) keeps IPv4 per address and groups IPv6 by /48. The
// key's name is "ip/" and the two widths ("ip/32/48"). An unresolved
// address is the strict bucket, as for ClientIP. ClientNet panics unless
// 8 <= v4Bits <= 32 and 16 <= v6Bits <= 64.
func ClientNet(v4Bits, v6Bits int) Source {
	if v4Bits < 8 || v4Bits > 32 || v6Bits < 16 || v6Bits > 64 {
		panic(fmt.Sprintf("captchagate: ClientNet(%d, %d) needs 8 <= v4Bits <= 32 and 16 <= v6Bits <= 64", v4Bits, v6Bits))
	}
	name := "ip/" + strconv.Itoa(v4Bits) + "/" + strconv.Itoa(v6Bits)
	return Source{name: name, raw: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		a, ok := in.g.ips.clientAddr(in.r)
		if !ok {
			return append(dst, unresolvedKey...), true
		}
		return appendNetKey(dst, a, v4Bits, v6Bits), true
	}}
}

// Header is the first value of the named request header, such as a device
// fingerprint.
func Header(name string) Source {
	name = http.CanonicalHeaderKey(name)
	return Source{name: "header:" + name, extract: func(in *input, dst []byte) ([]byte, bool) {
		v := in.r.Header[name]
		if len(v) == 0 {
			return dst, false
		}
		return append(dst, v[0]...), true
	}}
}

// Query is the first value of the named URL query parameter.
func Query(name string) Source {
	return Source{name: "query:" + name, extract: func(in *input, dst []byte) ([]byte, bool) {
		return formValue(dst, in.r.URL.RawQuery, name)
	}}
}

// FormField is the named field as r.FormValue sees it: the first value in an
// application/x-www-form-urlencoded body, else the first in the URL query.
// Multipart bodies are not read: mark the key Required if the route accepts
// them, so a multipart request cannot slip past the key.
func FormField(name string) Source {
	return Source{name: "form:" + name, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		if isForm(in.r) {
			if d, ok := formValue(dst, string(in.body), name); ok {
				return d, true
			}
		}
		return formValue(dst, in.r.URL.RawQuery, name)
	}}
}

// JSONField is the named string member of a JSON object body, matched as
// encoding/json matches struct fields: case-insensitively, the last duplicate
// winning, invalid UTF-8 replaced. So the value counted is the value the
// application decodes. A member that is never a string is absent.
func JSONField(name string) Source {
	return Source{name: "json:" + name, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		return jsonField(dst, in.body, name)
	}}
}

// Field is the named field of the body whatever its encoding: as FormField
// for an application/x-www-form-urlencoded body (without the query
// fallback), as JSONField otherwise. A policy counting Field keys can guard
// an HTML form and a JSON API for the same accounts, so that both count
// against the same thresholds.
func Field(name string) Source {
	return Source{name: "field:" + name, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		if isForm(in.r) {
			return formValue(dst, string(in.body), name)
		}
		return jsonField(dst, in.body, name)
	}}
}

// Combine is present when every source is, and its value joins theirs; use it
// for keys such as username+IP.
func Combine(srcs ...Source) Source {
	names := make([]string, len(srcs))
	body := false
	for i, s := range srcs {
		names[i] = s.name
		body = body || s.body
	}
	srcs = append([]Source(nil), srcs...)
	return Source{name: strings.Join(names, "+"), body: body, raw: true, parts: srcs, extract: func(in *input, dst []byte) ([]byte, bool) {
		for i, s := range srcs {
			if i > 0 {
				dst = append(dst, 0)
			}
			var ok bool
			if dst, ok = s.value(in, dst); !ok {
				return dst, false
			}
		}
		return dst, true
	}}
}

// SourceFunc is a key whose value f reads from the request: a path value,
// a cookie, the user an authentication middleware put in the context. f
// returns the value and whether the request has one; its value is trimmed,
// folded and normalised (Fold, Normalize) and cut to 256 bytes as a
// built-in source's is, and a value empty after trimming is absent.
//
// The key's name is "func:" and name; name must be unique among the
// policy's keys. f may be called more than once for a request (again when a
// key trips, to bind the captcha) and must return the same value each time;
// it must not read r.Body (use BodySourceFunc). SourceFunc panics if name is
// empty, longer than 64 bytes, or holds a '+' or a control character, or if f
// is nil.
//
//	tenant := captchagate.SourceFunc("tenant", func(r *http.Request) (string, bool) {
//		v := r.PathValue("tenant") // under a pattern such as "POST /{tenant}/login"
//		return v, v != ""
//	})
func SourceFunc(name string, f func(r *http.Request) (string, bool)) Source {
	key := funcName("SourceFunc", name)
	if f == nil {
		panic(fmt.Sprintf("captchagate: SourceFunc %q has a nil func", name))
	}
	return Source{name: key, extract: func(in *input, dst []byte) ([]byte, bool) {
		v, ok := f(in.r)
		if !ok {
			return dst, false
		}
		return append(dst, v...), true
	}}
}

// BodySourceFunc is SourceFunc for a value in the request body, such as a
// nested JSON member. f gets the body the guard read: at most
// Config.MaxBodyBytes (a longer body is refused before any key is read), nil
// for a request without one. The guard puts the body back for the handler:
// f must not modify body or keep it after returning, and must not read
// r.Body itself.
//
//	email := captchagate.BodySourceFunc("account.email", func(r *http.Request, body []byte) (string, bool) {
//		var v struct{ Account struct{ Email string } }
//		if json.Unmarshal(body, &v) != nil {
//			return "", false
//		}
//		return v.Account.Email, true
//	})
func BodySourceFunc(name string, f func(r *http.Request, body []byte) (string, bool)) Source {
	key := funcName("BodySourceFunc", name)
	if f == nil {
		panic(fmt.Sprintf("captchagate: BodySourceFunc %q has a nil func", name))
	}
	return Source{name: key, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		v, ok := f(in.r, in.body)
		if !ok {
			return dst, false
		}
		return append(dst, v...), true
	}}
}

const maxFuncName = 64

// funcName validates the name of a function's key and returns the key's
// name. The "func:" prefix keeps it apart from the built-in sources' names,
// and without '+' it cannot pose as a Combine of them; control characters
// (NUL separates the name from the value in the counter's hash) are refused.
func funcName(ctor, name string) string {
	switch {
	case name == "":
		panic("captchagate: " + ctor + " needs a name")
	case len(name) > maxFuncName:
		panic(fmt.Sprintf("captchagate: %s name %q is longer than %d bytes", ctor, name, maxFuncName))
	case !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r == '+' || r < 0x20 || r == 0x7f }):
		panic(fmt.Sprintf("captchagate: %s name %q holds a '+', a control character or invalid UTF-8", ctor, name))
	}
	return "func:" + name
}

// value extracts, trims, folds, normalises and bounds the value, appending it
// to dst.
func (s Source) value(in *input, dst []byte) ([]byte, bool) {
	start := len(dst)
	dst, ok := s.extract(in, dst)
	if !ok {
		return dst[:start], false
	}
	if s.raw {
		return dst, len(dst) > start
	}
	v := bytes.TrimSpace(dst[start:])
	mapped := s.normalize != nil || s.identity == IdentityPhone
	if s.fold && !mapped && asciiLower(v) {
		// Folded in place: strings.ToLower gives the same for ASCII.
		n := copy(dst[start:], v)
		dst = dst[:start+n]
	} else if s.fold || mapped {
		str := string(v)
		if s.fold {
			str = strings.ToLower(str)
		}
		if s.identity == IdentityPhone {
			str = normalizePhone(str)
		}
		if s.normalize != nil {
			str = s.normalize(str)
		}
		if mapped {
			str = strings.TrimSpace(str)
		}
		dst = append(dst[:start], str...)
	} else if len(v) != len(dst)-start {
		n := copy(dst[start:], v)
		dst = dst[:start+n]
	}
	if len(dst)-start == 0 {
		return dst[:start], false
	}
	if len(dst)-start > maxKeyValue {
		dst = dst[:start+maxKeyValue]
	}
	return dst, true
}

// asciiLower lower-cases b in place if it is all ASCII, and reports whether
// it was.
func asciiLower(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return true
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// formValue finds the first value of name in a URL-encoded string the way
// url.ParseQuery does: pairs with a semicolon or a bad escape are skipped.
func formValue(dst []byte, q, name string) ([]byte, bool) {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				continue
			}
		}
		return append(dst, v...), true
	}
	return dst, false
}

// jsonField scans a top-level JSON object for the last member whose name
// equals name case-insensitively and whose value is a string (FuzzJSONField
// holds it to encoding/json).
func jsonField(dst, b []byte, name string) ([]byte, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, false
	}
	i++
	var found []byte
	for {
		i = skipWS(b, i)
		if i < len(b) && b[i] == '}' {
			break
		}
		if i >= len(b) || b[i] != '"' {
			return dst, false
		}
		kEnd, ok := skipString(b, i)
		if !ok {
			return dst, false
		}
		key := b[i+1 : kEnd-1]
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return dst, false
		}
		i = skipWS(b, i+1)
		vStart := i
		if i, ok = skipValue(b, i, 0); !ok {
			return dst, false
		}
		// A later null or non-string member leaves the value as it is, as it
		// does for encoding/json decoding into a string (null is a no-op, a
		// type error is reported but the field keeps its value): so
		// {"username":"alice","username":null} still counts alice.
		if b[vStart] == '"' && keyMatches(key, name) {
			found = b[vStart:i]
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			break
		}
		return dst, false
	}
	if found == nil {
		return dst, false
	}
	raw := found[1 : len(found)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return append(dst, raw...), true
	}
	var s string
	if json.Unmarshal(found, &s) != nil {
		return dst, false
	}
	return append(dst, s...), true
}

func keyMatches(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s) != nil {
			return false
		}
		return strings.EqualFold(s, name)
	}
	return bytes.EqualFold(key, []byte(name))
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		default:
			if b[j] < 0x20 {
				return 0, false
			}
		}
	}
	return 0, false
}

const maxJSONDepth = 64

func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxJSONDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				if i, ok = skipString(b, i); !ok {
					return 0, false
				}
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, false
				}
				i = skipWS(b, i+1)
			}
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if b[i] == closer {
				return i + 1, true
			}
			return 0, false
		}
	default:
		j := i
		for j < len(b) && (b[j] == '-' || b[j] == '+' || b[j] == '.' || (b[j] >= '0' && b[j] <= '9') ||
			(b[j] >= 'a' && b[j] <= 'z') || (b[j] >= 'A' && b[j] <= 'Z')) {
			j++
		}
		if j == i {
			return 0, false
		}
		return j, true
	}
}
