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
