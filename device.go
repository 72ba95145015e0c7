package captchagate

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/http"
	"strings"
	"time"
)

// Devices gives the known devices of an account failure budgets of their
// own, as in OWASP's "device cookies" scheme, so that an attacker guessing
// an account's password cannot spend its owner's budget:
//
//   - When a request to the policy succeeds with Succeed (Fail and Succeed,
//     or Attempt.Succeed in the explicit mode), the guard sets a device
//     cookie on the response: a random device id and an expiry, signed with
//     the gate's secret together with the policy and the values of the
//     policy's account keys (a Key with an Identity, not a Combine). A
//     status alone never sets one: a handler that answers 200 to a wrong
//     password must not hand out cookies.
//   - A request that presents a valid cookie for the account it names is a
//     known device: its account keys count on counters of that device and
//     account only (MaxFailures in Window, and the key's FailureCeiling),
//     never on the account-wide ones, and its success resets them. Keys
//     others share (an address, the site: Everyone) still count its
//     failures, but their trips ask it for no captcha: it answers for its
//     own failures only. Ceilings still apply.
//   - Every other request shares the account-wide counters: a captcha after
//     the key's MaxFailures, and too_many_requests past its FailureCeiling
//     (100 a day by default) even with a solved captcha, while the owner's
//     known device still gets through.
//
// The cookie carries no account name and costs the store nothing; a cookie
// for one account is worthless for another. Set the cookie's Secure on
// HTTPS sites.
type Devices struct {
	// Cookie is the device cookie's template: its Name (default
	// "captchagate_device"), Path (default "/"), Domain, Secure, SameSite
	// (default Lax) and Partitioned. The guard sets Value, MaxAge and
	// HttpOnly. Two policies of one Gate cannot share a name.
	Cookie http.Cookie
	// Lifetime is how long a device cookie is valid. Default 30 days; a
	// known device's successful request renews a cookie past half of it.
	Lifetime time.Duration
	// MaxFailures is the number of failures in Window after which a known
	// device needs a captcha. Default: the account key's MaxFailures.
	MaxFailures int
	// Window is the window of MaxFailures. Default: the account key's.
	Window time.Duration
}

const (
	defaultDeviceCookie   = "captchagate_device"
	defaultDeviceLifetime = 30 * 24 * time.Hour
	deviceIDLen           = 16
	deviceMACLen          = 16
	deviceRawLen          = deviceIDLen + 8 + deviceMACLen
)

// deviceConf is a policy's compiled Devices.
type deviceConf struct {
	cookie      http.Cookie
	lifetime    time.Duration
	maxFailures int64 // 0: the key's
	window      time.Duration
	keys        keySet // the account keys a cookie is bound to and counts
}

func compileDevices(p Policy, keys []guardKey) (*deviceConf, error) {
	d := p.Devices
	if d == nil {
		return nil, nil
	}
	if d.Lifetime < 0 || d.MaxFailures < 0 || d.Window < 0 {
		return nil, fmt.Errorf("captchagate: policy %q: Devices has a negative value", p.Name)
	}
	c := &deviceConf{cookie: d.Cookie, lifetime: cmp.Or(d.Lifetime, defaultDeviceLifetime),
		maxFailures: int64(d.MaxFailures), window: d.Window}
	c.cookie.Name = cmp.Or(c.cookie.Name, defaultDeviceCookie)
	c.cookie.Path = cmp.Or(c.cookie.Path, "/")
	if c.cookie.SameSite == 0 {
		c.cookie.SameSite = http.SameSiteLaxMode
	}
	c.cookie.HttpOnly = true
	c.cookie.Value, c.cookie.MaxAge, c.cookie.Expires, c.cookie.Raw, c.cookie.RawExpires = "", 0, time.Time{}, "", ""
	if err := c.cookie.Valid(); err != nil {
		return nil, fmt.Errorf("captchagate: policy %q: Devices.Cookie: %w", p.Name, err)
	}
	for i := range keys {
		if keys[i].account && (keys[i].maxFailures > 0 || keys[i].failCeil > 0) {
			c.keys.add(i)
		}
	}
	if c.keys == 0 {
		return nil, fmt.Errorf("captchagate: policy %q has Devices but no account key (Username, Email or Phone) counting failures", p.Name)
	}
	return c, nil
}

// deviceMAC signs a device cookie: the policy, the values of the account
// keys it is bound to (as counted: canonical), the device id and the expiry.
// The message is built in ev.macBuf (pooled with ev), so the check
// allocates nothing.
func (gd *Guard) deviceMAC(ev *eval, id []byte, expires uint64, out *[32]byte) {
	m := append(ev.macBuf[:0], "device\x00"...)
	m = append(m, gd.name...)
	m = append(m, 0)
	for i := range gd.keys {
		if !gd.dev.keys.has(i) || !ev.present.has(i) {
			continue
		}
		start := len(m)
		m = append(m, byte(i), 0, 0)
		m, _ = gd.keys[i].Source.value(&ev.in, m)
		binary.BigEndian.PutUint16(m[start+1:], uint16(len(m)-start-3))
	}
	m = append(m, id...)
	m = binary.BigEndian.AppendUint64(m, expires)
	ev.macBuf = m
	gd.g.mac(out, m)
}

// knownDevice checks the request's device cookie against the account it
// names, and on success makes its account keys count on the device's
// counters (ev.trusted).
func (gd *Guard) knownDevice(ev *eval) {
	if gd.dev == nil || ev.present&gd.dev.keys == 0 {
		return
	}
	v, ok := cookieValue(ev.in.r, gd.dev.cookie.Name)
	if !ok || len(v) != b64.EncodedLen(deviceRawLen) {
		return
	}
	var src [64]byte
	var raw [deviceRawLen]byte
	if n, err := b64.Decode(raw[:], src[:copy(src[:], v)]); err != nil || n != deviceRawLen {
		return
	}
	id, exp := raw[:deviceIDLen], binary.BigEndian.Uint64(raw[deviceIDLen:])
	if int64(exp) <= gd.g.now().Unix() {
		return
	}
	gd.deviceMAC(ev, id, exp, &ev.sum)
	if subtle.ConstantTimeCompare(ev.sum[:deviceMACLen], raw[deviceIDLen+8:]) != 1 {
		return
	}
	copy(ev.device[:], id)
	ev.deviceExp = int64(exp)
	ev.trusted = ev.present & gd.dev.keys
	for set := ev.trusted; set != 0; set &= set - 1 {
		i := bits.TrailingZeros16(uint16(set))
		k := &gd.keys[i]
		v, _ := k.Source.value(&ev.in, ev.buf[:0])
		ev.bound &^= 1 << i
		gd.g.counter.hashKey(ev, i, gd.prefixOf(ev, i), v)
	}
}

// cookieValue returns the value of the first cookie called name in r's
// Cookie headers, as r.Cookie finds it but without allocating; a quoted
// value is not a device cookie's (never quoted) and is not unquoted.
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return v, true
			}
		}
	}
	return "", false
}

// prefixOf is the HMAC input before key i's value: the policy and the key's
// name, and for a known device's account key the device id.
func (gd *Guard) prefixOf(ev *eval, i int) []byte {
	k := &gd.keys[i]
	if !ev.trusted.has(i) {
		return k.prefix
	}
	p := append(ev.prefixBuf[:0], k.prefix...)
	p = append(p, "device\x00"...)
	return append(p, ev.device[:]...)
}

// setDeviceCookie sets a device cookie for the account the request named on
// w, unless the request presented one that is valid for a while yet.
func (gd *Guard) setDeviceCookie(w http.ResponseWriter, ev *eval) {
	d := gd.dev
	if d == nil || ev.present&d.keys == 0 {
		return
	}
	now := gd.g.now()
	if ev.trusted != 0 && time.Unix(ev.deviceExp, 0).Sub(now) > d.lifetime/2 {
		return
	}
	var raw [deviceRawLen]byte
	if _, err := rand.Read(raw[:deviceIDLen]); err != nil {
		gd.g.logger.Error("captchagate: no device cookie: crypto/rand failed", "policy", gd.name, "error", err)
		return
	}
	exp := uint64(now.Add(d.lifetime).Unix())
	binary.BigEndian.PutUint64(raw[deviceIDLen:], exp)
	var sum [32]byte
	gd.deviceMAC(ev, raw[:deviceIDLen], exp, &sum)
	copy(raw[deviceIDLen+8:], sum[:deviceMACLen])
	c := d.cookie
	c.Value = b64.EncodeToString(raw[:])
	c.MaxAge = int(d.lifetime / time.Second)
	http.SetCookie(w, &c)
}

// failLimit and failWindow are key i's failure threshold and window for
// this request: a known device's own, or the key's.
func (gd *Guard) failLimit(ev *eval, i int) int64 {
	if ev.trusted.has(i) && gd.dev.maxFailures > 0 {
		return gd.dev.maxFailures
	}
	return gd.keys[i].maxFailures
}

func (gd *Guard) failWindow(ev *eval, i int) time.Duration {
	if ev.trusted.has(i) && gd.dev.window > 0 {
		return gd.dev.window
	}
	return gd.keys[i].window
}

// Everyone is a key every request has, with one value: a site-wide budget.
// Give it thresholds far above one client's, so that password spraying
// across many accounts, or SMS pumping across many numbers, trips it and
// turns captchas on for every request of the policy ("under attack"), and
// a Ceiling bounds the total sent. Its name is "site".
//
//	{Source: captchagate.Everyone(), MaxFailures: 1000, Window: 15 * time.Minute}
//	{Source: captchagate.Everyone(), Rate: rate.Every(time.Second), Burst: 100, Ceiling: 5000, CeilingWindow: 24 * time.Hour}
func Everyone() Source {
	return Source{name: "site", raw: true, extract: func(_ *input, dst []byte) ([]byte, bool) {
		return append(dst, '*'), true
	}}
}
