package captchagate

import (
	"net/http"
	"net/netip"
	"strings"
)

// ipResolver finds the client address of a request.
type ipResolver struct {
	trusted []netip.Prefix
	header  string // canonical forwarded header, read only from trusted peers
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
// trusted proxy, it walks the forwarded header from the right and returns the
// first address that is not a trusted proxy. A malformed entry stops the walk
// at the last address known good, so a forged value can never replace the
// address a trusted proxy appended.
func (p *ipResolver) clientAddr(r *http.Request) (netip.Addr, bool) {
	peer, ok := parseRemoteAddr(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if len(p.trusted) == 0 || !p.isTrusted(peer) {
		return peer, true
	}
	vals := r.Header[p.header]
	client := peer
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var part string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				part, v = v, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return client, true
			}
			client = a.Unmap()
			if !p.isTrusted(client) {
				return client, true
			}
		}
	}
	return client, true
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
