package captchagate

import (
	"net/http"
	"net/netip"
	"strings"
)

// unresolvedKey is the value of the address keys (ClientIP, ClientNet) and of
// the client's creation and media budgets when the client address cannot be
// resolved: RemoteAddr is empty, "@", a unix socket's path or otherwise not
// an address, and no trusted proxy's header applies; or a trusted proxy's
// header holds an entry that is not an address ("unknown", an obfuscated
// identifier, garbage, an empty element). Every such request counts in this
// one strict bucket, never uncounted. Its length (10 bytes) keeps it apart
// from an address's key (5 or 9 bytes).
const unresolvedKey = "unresolved"

// ipResolver finds the client address of a request.
type ipResolver struct {
	trusted   []netip.Prefix
	header    string // canonical forwarded header, read only from trusted peers
	forwarded bool   // header is RFC 7239 Forwarded
	trustPath bool   // Config.TrustUnixSocket: a peer without an IP is a trusted proxy
}

func (p *ipResolver) isTrusted(a netip.Addr) bool {
	for _, pr := range p.trusted {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the peer address from RemoteAddr; if the peer is a
// trusted proxy (or, with Config.TrustUnixSocket, has no IP address), it
// walks the forwarded header from the right and returns the first address
// that is not a trusted proxy. It returns false, the strict bucket
// (unresolvedKey), when the address cannot be resolved: a peer that is not
// an address and is not trusted, a trusted peer without an address and
// without the header, or an entry of the header that is not an address. The
// walk never goes past such an entry, so a value an attacker wrote further
// left can never replace what a trusted proxy appended.
func (p *ipResolver) clientAddr(r *http.Request) (netip.Addr, bool) {
	peer, ok := parseRemoteAddr(r.RemoteAddr)
	if ok {
		if len(p.trusted) == 0 || !p.isTrusted(peer) {
			return peer, true
		}
	} else if !p.trustPath {
		return netip.Addr{}, false
	}
	vals := r.Header[p.header]
	if blank(vals) {
		return peer, ok // the peer's own request, or a proxy that names no client
	}
	client, found := peer, ok
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for {
			// Split the right-most element off v; j is the comma before it.
			var j int
			var elem string
			good := true
			if p.forwarded {
				if j, good = lastForwardedElement(v); good {
					elem, good = forwardedFor(v[j+1:])
				}
			} else {
				j = strings.LastIndexByte(v, ',')
				elem = v[j+1:]
			}
			var a netip.Addr
			if good {
				a, good = parseHop(strings.TrimSpace(elem))
			}
			if !good {
				return netip.Addr{}, false
			}
			if !p.isTrusted(a) {
				return a, true
			}
			client, found = a, true
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return client, found // every entry is a trusted proxy: the left-most
}

func blank(vals []string) bool {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

// appendClientKey appends the counting key of the request's client address
// (appendAddrKey), or unresolvedKey when it cannot be resolved. The address
// key ClientIP and the client's creation and media budgets use it, so all
// three agree on the strict bucket.
func (p *ipResolver) appendClientKey(dst []byte, r *http.Request) []byte {
	a, ok := p.clientAddr(r)
	if !ok {
		return append(dst, unresolvedKey...)
	}
	return appendAddrKey(dst, a)
}

// parseHop parses one entry of a forwarded header: an address, "ip:port" or
// "[v6]:port" (as some proxies append them to X-Forwarded-For and RFC 7239
// writes them), or "[v6]". A port may be obfuscated ("_abc", RFC 7239 6.3).
// IPv4-mapped addresses read as IPv4; an address with a zone is refused.
func parseHop(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	host := s
	if j := strings.LastIndexByte(s, ':'); j >= 0 && !strings.HasSuffix(s, "]") {
		if !validPort(s[j+1:]) {
			return netip.Addr{}, false
		}
		host = s[:j]
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() || host == s {
		return netip.Addr{}, false
	}
	return a, true
}

// validPort reports whether s is a port number (up to 65535, as netip reads
// one) or an obfuscated port ("_" and letters, digits, '.', '_', '-').
func validPort(s string) bool {
	if strings.HasPrefix(s, "_") {
		for _, c := range []byte(s[1:]) {
			if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
		return len(s) > 1
	}
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// lastForwardedElement finds the comma before the last element of one line
// of a Forwarded header (RFC 7239: elements separated by commas, quoted
// strings with backslash escapes); j is -1 if there is none. It scans from
// the right, so the elements a trusted proxy appended read the same whatever
// the client wrote to their left. ok is false if a quoted string is left
// open.
func lastForwardedElement(v string) (j int, ok bool) {
	quoted := false
	for i := len(v) - 1; i >= 0; i-- {
		switch v[i] {
		case '"':
			if !escaped(v, i) {
				quoted = !quoted
			}
		case ',':
			if !quoted {
				return i, true
			}
		}
	}
	return -1, !quoted
}

// escaped reports whether v[i] is preceded by an odd number of backslashes.
func escaped(v string, i int) bool {
	n := 0
	for i--; i >= 0 && v[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// forwardedFor returns the node of the element's one "for" parameter, with
// its quotes and escapes removed. ok is false if the element has no "for",
// has it twice, or does not parse as pairs of token=value separated by ';'.
func forwardedFor(elem string) (node string, ok bool) {
	found := false
	for i := 0; ; {
		i = skipOWS(elem, i)
		if i == len(elem) {
			return node, found
		}
		if elem[i] == ';' {
			i++
			continue
		}
		n := i
		for i < len(elem) && isTokenChar(elem[i]) {
			i++
		}
		name := elem[n:i]
		if name == "" || i == len(elem) || elem[i] != '=' {
			return "", false
		}
		i++
		var val string
		if i < len(elem) && elem[i] == '"' {
			if val, i, ok = quotedString(elem, i); !ok {
				return "", false
			}
		} else {
			n = i
			for i < len(elem) && elem[i] != ';' && elem[i] != ' ' && elem[i] != '\t' && elem[i] != '"' && elem[i] != '\\' {
				i++
			}
			val = elem[n:i]
		}
		i = skipOWS(elem, i)
		if i < len(elem) && elem[i] != ';' {
			return "", false
		}
		if strings.EqualFold(name, "for") {
			if found {
				return "", false
			}
			node, found = val, true
		}
	}
}

// quotedString reads the quoted string at v[i] == '"' and returns its
// content without escapes and the index after it.
func quotedString(v string, i int) (string, int, bool) {
	start := i + 1
	var b []byte
	for j := start; j < len(v); j++ {
		switch v[j] {
		case '"':
			if b == nil {
				return v[start:j], j + 1, true
			}
			return string(b), j + 1, true
		case '\\':
			if j+1 == len(v) {
				return "", 0, false
			}
			if b == nil {
				b = append([]byte(nil), v[start:j]...)
			}
			j++
			b = append(b, v[j])
		default:
			if b != nil {
				b = append(b, v[j])
			}
		}
	}
	return "", 0, false
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func parseRemoteAddr(s string) (netip.Addr, bool) {
	if a, ok := parseIPv4Port(s); ok {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// appendAddrKey appends the counting key of a: the 4 bytes of an IPv4
// address, or the /64 prefix of an IPv6 one.
func appendAddrKey(dst []byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(append(dst, '4'), b[:]...)
	}
	b := a.As16()
	return append(append(dst, '6'), b[:8]...)
}

// appendNetKey appends the counting key of a's network: its first v4Bits
// (IPv4) or v6Bits (IPv6, at most 64) bits, in appendAddrKey's shape.
func appendNetKey(dst []byte, a netip.Addr, v4Bits, v6Bits int) []byte {
	bits := v6Bits
	if a.Is4() {
		bits = v4Bits
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil { // cannot happen: ClientNet checked the widths
		return append(dst, unresolvedKey...)
	}
	return appendAddrKey(dst, p.Addr())
}

// parseIPv4Port is the fast path of parseRemoteAddr for what net/http puts
// in RemoteAddr nearly always, "a.b.c.d:port" in canonical form. Anything
// else (leading zeros, IPv6, no port) is left to netip; FuzzRemoteAddr holds
// the two to the same answers.
func parseIPv4Port(s string) (netip.Addr, bool) {
	var ip [4]byte
	i := 0
	for f := range ip {
		if f > 0 {
			if i >= len(s) || s[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		v, d := 0, 0
		for ; i < len(s) && d < 4 && '0' <= s[i] && s[i] <= '9'; i, d = i+1, d+1 {
			v = v*10 + int(s[i]-'0')
		}
		if d == 0 || d > 3 || v > 255 || (d > 1 && s[i-d] == '0') {
			return netip.Addr{}, false
		}
		ip[f] = byte(v)
	}
	if i >= len(s) || s[i] != ':' || len(s)-i-1 < 1 || len(s)-i-1 > 5 {
		return netip.Addr{}, false
	}
	port := 0
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return netip.Addr{}, false
		}
		port = port*10 + int(c-'0')
	}
	if port > 65535 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}
