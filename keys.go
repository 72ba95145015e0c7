package captchagate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
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

	// err is set by a source that refuses the request rather than read a
	// value (a field the body gives two values of: CodeAmbiguousKey); the
	// source's value is then absent. The guard answers err.
	err error

	multipart     map[string][]string // the non-file values of a multipart body, once read
	multipartRead bool
}

// Name returns the key's name as it appears in events and logs ("ip",
// "json:username", "header:X-Device-Fingerprint", "json:username+ip",
// "func:tenant").
func (s Source) Name() string { return s.name }

// Fold returns a copy of s that folds values as Username and Email keys
// do: NFKC, full Unicode case folding, NFKC again (Unicode's NFKC_Casefold
// idea), so "Alice", "alice ", "ＡＬＩＣＥ" count as one, and so do any two
// values strings.EqualFold equates ("K" with the Kelvin sign U+212A, "ß"
// with "ẞ" and "SS"). Before issue 17 it lower-cased with strings.ToLower,
// which leaves those apart.
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
// username or an email address, canonPhone for a phone number)
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

// FormField is the named field as r.FormValue sees it: for POST, PUT and
// PATCH with an application/x-www-form-urlencoded body, the first value in
// the body, else the first in the URL query; for a multipart/form-data body
// (any method, as ParseMultipartForm), the first in the query, else the first
// non-file part of that name. Content-Type is read as mime.ParseMediaType
// reads it (case, parameters). The body is also read as JSON (JSONField),
// for an application that decodes it whatever its Content-Type: the value
// counts where the form has none, and a different value refuses the request
// as ambiguous (CodeAmbiguousKey).
func FormField(name string) Source {
	key := "form:" + name
	return Source{name: key, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		return in.field(dst, key, name, true)
	}}
}

// JSONField is the named string member of a JSON object body, matched as
// encoding/json matches struct fields: case-insensitively, the last duplicate
// winning, invalid UTF-8 replaced, in the first JSON value of the body as
// json.Decoder.Decode takes it (data after it is not read), nested at most
// as deep as encoding/json allows. So the value counted is the value the
// application decodes. A member that is never a string is absent.
//
// A body that net/http reads as a form too (as FormField, without the
// query) is read both ways: the form's value counts where the JSON has
// none, and a different value refuses the request as ambiguous
// (CodeAmbiguousKey).
func JSONField(name string) Source {
	key := "json:" + name
	return Source{name: key, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		return in.field(dst, key, name, false)
	}}
}

// Field is the named field of the body whatever its encoding: the form
// value net/http reads (as FormField, without the query fallback) or the
// JSON member (as JSONField). Where both readings find the field with
// different values, the request is refused as ambiguous
// (CodeAmbiguousKey). A policy counting Field keys can guard an HTML form
// and a JSON API for the same accounts, so that both count against the
// same thresholds.
func Field(name string) Source {
	key := "field:" + name
	return Source{name: key, body: true, extract: func(in *input, dst []byte) ([]byte, bool) {
		return in.field(dst, key, name, false)
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
// to dst. A source that refuses the request sets in.err and is absent.
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
	phone := s.identity == IdentityPhone
	mapped := s.normalize != nil || phone
	switch {
	case !s.fold && !mapped:
		if len(v) != len(dst)-start {
			n := copy(dst[start:], v)
			dst = dst[:start+n]
		}
	case s.normalize == nil && asciiLower(v, s.fold):
		// ASCII, folded in place: canonFold and canonPhone give the same.
		if phone {
			v = canonPhoneASCII(v)
		}
		n := copy(dst[start:], v)
		dst = dst[:start+n]
	default:
		str := string(v)
		if s.fold {
			str = canonFold(str)
		}
		if phone {
			str = canonPhone(str)
		}
		if s.normalize != nil {
			str = s.normalize(str)
		}
		dst = append(dst[:start], strings.TrimSpace(str)...)
	}
	if len(dst)-start == 0 {
		return dst[:start], false
	}
	if len(dst)-start > maxKeyValue {
		dst = dst[:start+maxKeyValue]
	}
	return dst, true
}

// asciiLower reports whether b is all ASCII and if so, when lower is set,
// lower-cases it in place.
func asciiLower(b []byte, lower bool) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	if !lower {
		return true
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return true
}

// isForm reports whether r's Content-Type is application/x-www-form-urlencoded
// (bodyField's test for the proof fields).
func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// How the guard reads a field of the body (docs/security.md, "How the
// guard reads a request"): the way net/http's r.FormValue reads the form
// and the way json.Decoder reads the first JSON value, both; where both
// find the field with different values the request is ambiguous.

// maxFormBody is what net/http's ParseForm reads of a URL-encoded body
// (without an http.MaxBytesReader): a longer body gives no values.
const maxFormBody = 10 << 20

// defaultMaxMemory is r.FormValue's ParseMultipartForm argument.
const defaultMaxMemory = 32 << 20

// field appends the value of the body field name: the form reading's
// (with the query, as r.FormValue, if query is set) or the JSON reading's.
// When both find it with different values (trimmed; an empty value is no
// value), it sets in.err (CodeAmbiguousKey for key) and the field is absent.
func (in *input) field(dst []byte, key, name string, query bool) ([]byte, bool) {
	start := len(dst)
	dst, fok := in.formField(dst, name, query)
	mid := len(dst)
	dst, jok := jsonField(dst, in.body, name)
	f, j := bytes.TrimSpace(dst[start:mid]), bytes.TrimSpace(dst[mid:])
	fok, jok = fok && len(f) > 0, jok && len(j) > 0
	switch {
	case fok && jok && !bytes.Equal(f, j):
		in.err = invalid(CodeAmbiguousKey, key, msgTwoValues, key)
		return dst[:start], false
	case fok:
		return dst[:mid], true
	case jok:
		n := copy(dst[start:], dst[mid:])
		return dst[:start+n], true
	}
	return dst[:start], false
}

// formField appends the first value of name as r.FormValue finds it: a
// URL-encoded body's values come before the query's, a multipart body's
// after them. Without query, only the body is read.
func (in *input) formField(dst []byte, name string, query bool) ([]byte, bool) {
	switch bodyForm(in.r) {
	case formURLEncoded:
		if len(in.body) <= maxFormBody {
			if d, ok := formValue(dst, string(in.body), name); ok {
				return d, true
			}
		}
	case formMultipart:
		if query {
			if d, ok := formValue(dst, in.r.URL.RawQuery, name); ok {
				return d, true
			}
		}
		if vs := in.multipartValues()[name]; len(vs) > 0 {
			return append(dst, vs[0]...), true
		}
		return dst, false
	}
	if query {
		return formValue(dst, in.r.URL.RawQuery, name)
	}
	return dst, false
}

type formKind uint8

const (
	formNone       formKind = iota
	formURLEncoded          // application/x-www-form-urlencoded, POST, PUT or PATCH
	formMultipart           // multipart/form-data with a boundary, any method
)

// bodyForm says how net/http's r.FormValue reads r's body. ParseForm reads
// a URL-encoded body only for POST, PUT and PATCH, and takes the media type
// even when a parameter is malformed (mime.ErrInvalidMediaParameter);
// ParseMultipartForm reads a multipart/form-data body for any method, when
// the Content-Type parses without error and has a boundary.
func bodyForm(r *http.Request) formKind {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return formNone
	}
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case mt == "application/x-www-form-urlencoded":
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			return formURLEncoded
		}
	case err == nil && mt == "multipart/form-data" && hasBoundary(params):
		return formMultipart
	}
	return formNone
}

func hasBoundary(params map[string]string) bool {
	_, ok := params["boundary"]
	return ok
}

// multipartValues returns the non-file values of the multipart body, as
// ParseMultipartForm reads them (mime/multipart's ReadForm, so the same
// limits on parts and headers: a body it refuses gives no values). Read
// once per request. The body is bounded by Config.MaxBodyBytes, and no part
// is written to disk: the memory limit is at least the body's size.
func (in *input) multipartValues() map[string][]string {
	if in.multipartRead {
		return in.multipart
	}
	in.multipartRead = true
	_, params, err := mime.ParseMediaType(in.r.Header.Get("Content-Type"))
	if err != nil {
		return nil
	}
	mr := multipart.NewReader(bytes.NewReader(in.body), params["boundary"])
	form, err := mr.ReadForm(max(defaultMaxMemory, int64(len(in.body))+1))
	if err != nil {
		return nil
	}
	form.RemoveAll()
	in.multipart = form.Value
	return in.multipart
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
// holds it to encoding/json). It reads the first JSON value of b, as
// json.Decoder.Decode does: what follows the object is not read.
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
		if i, ok = skipValue(b, i, 1); !ok {
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

// maxJSONDepth is encoding/json's limit of nested objects and arrays: a
// deeper body is a syntax error to json.Decoder, and within it the guard
// reads what the application decodes.
const maxJSONDepth = 10000

// skipValue returns the index after the JSON value at b[i], which depth
// objects and arrays enclose.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return 0, false
		}
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
