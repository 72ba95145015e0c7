package captchagate

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimitHeaders chooses the RateLimit header fields guards send, as the
// IETF draft "RateLimit header fields for HTTP"
// (draft-ietf-httpapi-ratelimit-headers-10) defines them:
//
//	RateLimit-Policy: "login/ip/failures";q=20;w=3600, "login/json:username/failures";q=5;w=900
//	RateLimit: "login/ip/failures";r=0;t=1742
//
// RateLimit-Policy lists the limits of the guard's policy (the same on
// every response: configuration, nothing counted), one item per key and
// limit, named policy/key/limit where limit is "failures" (MaxFailures in
// Window), "failure_ceiling", "ceiling" or "rate" (Burst, refilled one per
// 1/Rate). RateLimit says the limits that answered: on a 428 the ones that
// ask for the captcha, on a 429 the ceilings reached (r=0, and t the
// seconds until the limit resets, which Retry-After equals); with Allowed,
// on responses a guard let through, the remaining quota of each limit it
// counted.
//
// By default the headers say nothing per account: a limit of an account
// key (Identity, Sender, a Combine with an account part) appears in
// RateLimit-Policy only, and a 429 of its ceiling says t, and Retry-After,
// of the whole window. So they are no oracle of what others did with an
// account (its owner's failures, whether someone else is guessing at it).
type RateLimitHeaders struct {
	// Off sends none of them. Default false: sent on 428 and 429.
	Off bool
	// Allowed sends them on responses guards let through too (the
	// remaining quota of each limit counted, send rates excepted, whose
	// bucket is not read). Default false: a request under every threshold
	// pays nothing for them.
	Allowed bool
	// Accounts reveals the state of account keys as of every other key:
	// their remaining quota and reset, and Retry-After as counted. Default
	// false.
	Accounts bool
}

// limit kinds as RateLimit item names say them.
var limitNames = map[counterKind]string{failureCount: "failures", failureCeil: "failure_ceiling",
	ceilingCount: "ceiling", sendRate: "rate"}

// compileRateLimits precomputes the guard's RateLimit-Policy value and the
// quoted names of its items.
func (gd *Guard) compileRateLimits() {
	h := gd.g.rateLimits
	if h.Off {
		return
	}
	var items []string
	for i := range gd.keys {
		k := &gd.keys[i]
		for _, kind := range [...]counterKind{failureCount, failureCeil, ceilingCount, sendRate} {
			q, w := k.quota(kind)
			if q == 0 {
				continue
			}
			name := sfString(gd.name + "/" + k.name + "/" + limitNames[kind])
			gd.rlNames[i][kindIndex(kind)] = name
			items = append(items, name+";q="+strconv.FormatInt(q, 10)+";w="+strconv.FormatInt(seconds(w), 10))
		}
	}
	gd.rlPolicy = strings.Join(items, ", ")
	gd.rlPolicyHdr = []string{gd.rlPolicy}
	gd.rlAllowed = h.Allowed && gd.rlPolicy != ""
}

func kindIndex(kind counterKind) int {
	switch kind {
	case failureCount:
		return 0
	case failureCeil:
		return 1
	case ceilingCount:
		return 2
	}
	return 3
}

// quota returns the quota and window of k's limit of kind (0 if it has
// none).
func (k *guardKey) quota(kind counterKind) (int64, time.Duration) {
	switch kind {
	case failureCount:
		return k.maxFailures, k.window
	case failureCeil:
		return k.failCeil, k.failCeilWin
	case ceilingCount:
		return int64(k.Ceiling), k.ceilWindow
	case sendRate:
		if k.interval > 0 {
			return int64(k.burst), k.interval * time.Duration(k.burst)
		}
	}
	return 0, 0
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int64 { return max(int64((d+time.Second-1)/time.Second), 1) }

// sfString quotes s as a Structured Field String (RFC 9651): printable
// ASCII, with '"' and '\' escaped; any other byte becomes '?'.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// private reports whether key i's state is kept out of the headers.
func (gd *Guard) private(i int) bool { return gd.scoped.has(i) && !gd.g.rateLimits.Accounts }

// noteLimit appends to ev's RateLimit value the item of key i's limit of
// kind that answered (r=0) and returns its t: wait (the time until it
// resets) or, for a private key, its whole window.
func (gd *Guard) noteLimit(ev *eval, i int, kind counterKind, wait time.Duration) time.Duration {
	if gd.private(i) {
		_, wait = gd.keys[i].quota(kind)
	}
	if gd.rlPolicy == "" {
		return wait
	}
	if len(ev.rateLimit) > 0 {
		ev.rateLimit = append(ev.rateLimit, ", "...)
	}
	ev.rateLimit = append(ev.rateLimit, gd.rlNames[i][kindIndex(kind)]...)
	ev.rateLimit = append(ev.rateLimit, ";r=0"...)
	if wait > 0 {
		ev.rateLimit = strconv.AppendInt(append(ev.rateLimit, ";t="...), seconds(wait), 10)
	}
	return wait
}

// resetOf returns how long until the counter of ev.ops[j] resets (0 if
// unknown), for a RateLimit item.
func (gd *Guard) resetOf(ev *eval, j int) time.Duration {
	if gd.rlPolicy == "" {
		return 0
	}
	r := ev.ops[j].Reset
	if mc, ok := gd.g.counter.(*memCounter); ok {
		r = mc.resetOf(ev, j)
	}
	if r.IsZero() {
		return 0
	}
	return r.Sub(gd.g.now())
}

// setRateLimits puts the guard's RateLimit fields, as ev noted them, on e.
func (gd *Guard) setRateLimits(e *Error, ev *eval) *Error {
	if gd.rlPolicy != "" {
		e.RateLimitPolicy = gd.rlPolicy
		if len(ev.rateLimit) > 0 {
			e.RateLimit = string(ev.rateLimit)
		}
	}
	return e
}

// allowedRateLimits sets, with RateLimitHeaders.Allowed, the remaining
// quota of each limit ev counted on a response the guard lets through.
func (gd *Guard) allowedRateLimits(h http.Header, ev *eval) {
	b := ev.rateLimit[:0]
	now := gd.g.now()
	for j := range ev.ops {
		op, note := &ev.ops[j], ev.notes[j]
		i := int(note.key)
		if note.kind == sendRate || gd.private(i) || op.Err != nil {
			continue
		}
		q, _ := gd.keys[i].quota(note.kind)
		if note.kind == failureCount {
			q = gd.failLimit(ev, i)
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, gd.rlNames[i][kindIndex(note.kind)]...)
		b = strconv.AppendInt(append(b, ";r="...), max(q-op.N, 0), 10)
		if !op.Reset.IsZero() {
			b = strconv.AppendInt(append(b, ";t="...), seconds(op.Reset.Sub(now)), 10)
		}
	}
	// Canonical keys set directly (Header.Set would canonicalise them
	// each time); the policy's value is shared, len == cap, so an Add to
	// it copies.
	h[hdrRateLimitPolicy] = gd.rlPolicyHdr
	if len(b) > 0 {
		h[hdrRateLimit] = []string{string(b)}
	}
	ev.rateLimit = b[:0]
}

var (
	hdrRateLimitPolicy = http.CanonicalHeaderKey("RateLimit-Policy")
	hdrRateLimit       = http.CanonicalHeaderKey("RateLimit")
)
