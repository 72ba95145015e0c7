package captchagate

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// A record is a stored captcha or token: the policy and key values it is bound
// to, when it expires, and for a captcha its secret and refresh count.
type record struct {
	policy    string
	mask      uint16   // which keys of the policy the binding covers
	flags     uint8    // flagSession, flagSender: what else the binding covers
	bind      [16]byte // HMAC over the policy, mask, flags, those keys' hashes and the session's
	refreshes uint8
	level     uint8 // how far past its threshold the flow's key was, for challenges that scale
	expires   int64 // unix nanoseconds
	secret    []byte
}

const (
	recordVersion = 3
	flagSession   = 1 << 0
	// flagSender: a token verified for a sender (the slider's verify names
	// one); bind is chained with the sender's hash, see bindSender.
	flagSender = 1 << 1
	recordMin  = 31
)

func (rec *record) encode() []byte {
	b := make([]byte, 0, recordMin+len(rec.policy)+len(rec.secret))
	b = append(b, recordVersion, rec.flags, rec.refreshes, rec.level)
	b = binary.BigEndian.AppendUint16(b, rec.mask)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.expires))
	b = append(b, rec.bind[:]...)
	b = append(b, byte(len(rec.policy)))
	b = append(b, rec.policy...)
	return append(b, rec.secret...)
}

var errBadRecord = errors.New("captchagate: malformed record in store")

func decodeRecord(b []byte) (record, error) {
	var rec record
	switch {
	case len(b) >= recordMin && b[0] == recordVersion:
		rec.flags, rec.refreshes, rec.level = b[1], b[2], b[3]
		b = b[4:]
	case len(b) >= recordMin-1 && b[0] == 2:
		// Version 2, without the level: records a previous release left in a
		// shared store stay readable through a rolling upgrade.
		rec.flags, rec.refreshes = b[1], b[2]
		b = b[3:]
	default:
		return rec, errBadRecord
	}
	rec.mask = binary.BigEndian.Uint16(b)
	rec.expires = int64(binary.BigEndian.Uint64(b[2:]))
	copy(rec.bind[:], b[10:26])
	n := int(b[26])
	if len(b) < 27+n {
		return rec, errBadRecord
	}
	rec.policy = string(b[27 : 27+n])
	rec.secret = append([]byte(nil), b[27+n:]...)
	return rec, nil
}

// binding is what a captcha or token is bound to.
// It also carries the flow's difficulty level, which follows it to fresh
// captchas.
type binding struct {
	policy string
	mask   uint16
	flags  uint8
	bind   [16]byte
	level  uint8
}

func bindingOf(rec *record) binding {
	return binding{policy: rec.policy, mask: rec.mask, flags: rec.flags, bind: rec.bind, level: rec.level}
}

// bindingFor computes the binding of policy to the keys in mask, whose hashes
// are in hashes, and to the session whose hash is sess (nil: none).
func (g *Gate) bindingFor(policy string, mask uint16, hashes *[maxKeysInPolicy][16]byte, sess *[16]byte) binding {
	b := binding{policy: policy, mask: mask}
	var buf [3 + (maxKeysInPolicy+1)*16]byte
	m := binary.BigEndian.AppendUint16(buf[:0], mask)
	for i := range maxKeysInPolicy {
		if mask&(1<<i) != 0 {
			m = append(m, hashes[i][:]...)
		}
	}
	if sess != nil {
		b.flags |= flagSession
		m = append(m, sess[:]...)
	}
	m = append(m, b.flags)
	var sum [32]byte
	g.mac(&sum, []byte("bind\x00"), []byte(policy), []byte{0}, m)
	copy(b.bind[:], sum[:16])
	return b
}

// matches reports whether rec is bound to policy and, for every key rec
// covers, to the same key values, and, if rec is bound to a session, to the
// session whose hash is sess.
//
// A token verified for a sender (flagSender) also needs one of senders, the
// sender hashes of the request's Sender keys, to be that sender.
func (g *Gate) matches(rec *record, policy string, present uint16, hashes *[maxKeysInPolicy][16]byte, sess *[16]byte, senders [][16]byte) bool {
	if rec.policy != policy || rec.mask&present != rec.mask {
		return false
	}
	if rec.flags&flagSession == 0 {
		sess = nil
	} else if sess == nil {
		return false
	}
	want := g.bindingFor(policy, rec.mask, hashes, sess)
	if rec.flags&flagSender == 0 {
		return subtle.ConstantTimeCompare(want.bind[:], rec.bind[:]) == 1
	}
	ok := 0
	for i := range senders {
		w := want
		g.bindSender(&w, &senders[i])
		ok |= subtle.ConstantTimeCompare(w.bind[:], rec.bind[:])
	}
	return ok == 1
}

// bindSender chains b with the hash of a sender (senderHash), so a token
// minted for it is usable only by a request whose Sender key has that value.
func (g *Gate) bindSender(b *binding, sender *[16]byte) {
	var sum [32]byte
	g.mac(&sum, []byte("sender-bind\x00"), b.bind[:], sender[:])
	copy(b.bind[:], sum[:16])
	b.flags |= flagSender
}

// senderHash is the keyed hash of a sender (a phone number or an email
// address) under policy, after senderNorm.
func (g *Gate) senderHash(policy, sender string) [16]byte {
	var sum [32]byte
	g.mac(&sum, []byte("sender\x00"), []byte(policy), []byte{0}, []byte(senderNorm(sender)))
	var h [16]byte
	copy(h[:], sum[:16])
	return h
}

// senderNorm makes the forms of one sender equal: trimmed, lower-cased and,
// for a phone number (no '@'), without spaces, dashes, dots and parentheses.
func senderNorm(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "@") {
		s = normalizePhone(s)
	}
	return s
}

const (
	idBytes    = 16 // 128-bit captcha ids, 22 characters
	tokenBytes = 24 // 192-bit tokens, 32 characters
	idLen      = 22
	tokenLen   = 32
	graceTTL   = time.Minute // expired records stay this long to say "expired"
)

var b64 = base64.RawURLEncoding

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return b64.EncodeToString(b), nil
}

func validB64(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validID reports whether s has the form of a captcha id.
func validID(s string) bool { return validB64(s, idLen) }

func captchaKey(id string) string { return "c:" + id }

func (g *Gate) tokenKey(tok string) string {
	var sum [32]byte
	g.mac(&sum, []byte("token\x00"), []byte(tok))
	return "t:" + b64.EncodeToString(sum[:16])
}

// clientKey is the store key of one of the client's buckets: kind 'n' for
// captcha creation, 'm' for media fetches.
func (g *Gate) clientKey(r *http.Request, kind byte) string {
	var buf [32]byte
	var k []byte
	if a, ok := g.ips.clientAddr(r); ok {
		k = appendAddrKey(buf[:0], a)
	}
	var sum [32]byte
	g.mac(&sum, []byte("client\x00"), k)
	return string(kind) + ":" + b64.EncodeToString(sum[:16])
}

// allowCreate takes one captcha creation from the client's budget.
func (g *Gate) allowCreate(ctx context.Context, r *http.Request) error {
	return g.allowClient(ctx, r, 'n', g.createInterval, g.createBurst, "too many captchas requested; retry later")
}

// allowClient takes one token from the client's bucket of kind; interval 0
// means no limit.
func (g *Gate) allowClient(ctx context.Context, r *http.Request, kind byte, interval time.Duration, burst int, desc string) error {
	if interval == 0 {
		return nil
	}
	ok, wait, err := g.store.Allow(ctx, g.clientKey(r, kind), interval, burst, true)
	if err != nil {
		return g.unavailable(r, "", err)
	}
	if !ok {
		return &Error{Code: CodeTooManyRequests, Description: desc, RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// issue creates and stores a captcha bound to b, charging the client's
// creation budget.
func (g *Gate) issue(ctx context.Context, r *http.Request, b binding, refreshes uint8) (*Captcha, error) {
	if err := g.allowCreate(ctx, r); err != nil {
		return nil, err
	}
	return g.issueUncharged(ctx, r, b, refreshes)
}

// issueUncharged is issue for a caller that has charged the budget already.
func (g *Gate) issueUncharged(ctx context.Context, r *http.Request, b binding, refreshes uint8) (*Captcha, error) {
	now := g.now()
	exp := now.Add(g.captchaTTL)
	var secret []byte
	var err error
	if is, ok := g.challenge.(Issuer); ok {
		secret, err = is.IssueFor(IssueInfo{Now: now, Expires: exp, Level: int(b.level), Sign: g.signer()})
	} else {
		secret, err = g.challenge.Issue()
	}
	if err != nil {
		return nil, g.failure(r, b.policy, CodeInternal, err)
	}
	id, err := randomString(idBytes)
	if err != nil {
		return nil, g.failure(r, b.policy, CodeInternal, err)
	}
	rec := record{policy: b.policy, mask: b.mask, flags: b.flags, bind: b.bind, refreshes: refreshes,
		level: b.level, expires: exp.UnixNano(), secret: secret}
	if err := g.store.Put(ctx, captchaKey(id), rec.encode(), g.captchaTTL+graceTTL); err != nil {
		return nil, g.unavailable(r, b.policy, err)
	}
	g.emit(Event{Kind: EventCaptchaIssued, Policy: b.policy, CaptchaID: id, Request: r})
	return g.describe(id, int(refreshes)), nil
}

func (g *Gate) describe(id string, refreshes int) *Captcha {
	c := &Captcha{
		Kind:          g.challenge.Kind(),
		ID:            id,
		RefreshURL:    g.urlBase + "refresh?captcha_id=" + id,
		VerifyURL:     g.urlBase + "verify",
		ExpiresIn:     int(g.captchaTTL / time.Second),
		RefreshesLeft: max(g.maxRefreshes-refreshes, 0),
	}
	for _, f := range g.challenge.Formats() {
		switch f {
		case "png", "jpg", "svg", "gif", "webp":
			if c.ImageURL == "" {
				c.ImageURL = g.urlBase + id + "." + f
			}
		case "wav", "mp3", "ogg":
			if c.AudioURL == "" {
				c.AudioURL = g.urlBase + id + "." + f
			}
		case "json":
			c.ChallengeURL = g.urlBase + id + "." + f
		case "piece.png":
			c.PieceURL = g.urlBase + id + "." + f
		}
	}
	if d, ok := g.challenge.(Describer); ok {
		d.Describe(c)
	}
	return c
}

// Reasons a proof is refused, for descriptions and events.
const (
	reasonUnknown  = "unknown or already used"
	reasonExpired  = "expired"
	reasonWrong    = "wrong answer"
	reasonMismatch = "issued for another request"
	reasonSender   = "verified for another sender"
)

// solve consumes captcha id atomically and checks answer against it. It
// returns the consumed record (for a fresh captcha's binding) and, when the
// answer does not solve it, the reason. err is a failure, reported and
// classified (a store failure, or a verifier's).
//
// A Challenge that is a RemoteChecker is asked with a context of its own
// deadline; its failure is returned as err (fail closed), the captcha spent.
func (g *Gate) solve(ctx context.Context, r *http.Request, id, answer string) (rec record, found bool, reason string, err error) {
	v, found, err := g.store.Take(ctx, captchaKey(id))
	if err == nil && found {
		rec, err = decodeRecord(v)
	}
	if err != nil {
		return rec, false, reasonUnknown, g.unavailable(r, "", err)
	}
	if !found {
		return rec, false, reasonUnknown, nil
	}
	if g.now().UnixNano() >= rec.expires {
		return rec, true, reasonExpired, nil
	}
	if rc, ok := g.challenge.(RemoteChecker); ok {
		ip := ""
		if a, ok := g.ips.clientAddr(r); ok {
			ip = a.String()
		}
		ok, err := rc.CheckRemote(context.WithoutCancel(r.Context()), CheckInfo{Secret: rec.secret, Answer: answer, ClientIP: ip, Request: r})
		if err != nil {
			return rec, true, "", g.failure(r, rec.policy, CodeVerifierUnavailable, err)
		}
		if !ok {
			return rec, true, reasonWrong, nil
		}
		return rec, true, "", nil
	}
	if !g.challenge.Check(rec.secret, answer) {
		return rec, true, reasonWrong, nil
	}
	return rec, true, "", nil
}

// mintToken stores a single-use token bound like rec and, if sender is not
// nil, to that sender too. err is a failure, reported and classified.
func (g *Gate) mintToken(ctx context.Context, r *http.Request, rec record, sender *[16]byte) (string, error) {
	tok, err := randomString(tokenBytes)
	if err != nil {
		return "", g.failure(r, rec.policy, CodeInternal, err)
	}
	b := bindingOf(&rec)
	if sender != nil {
		g.bindSender(&b, sender)
	}
	t := record{policy: b.policy, mask: b.mask, flags: b.flags, bind: b.bind, expires: g.now().Add(g.tokenTTL).UnixNano()}
	if err := g.store.Put(ctx, g.tokenKey(tok), t.encode(), g.tokenTTL+graceTTL); err != nil {
		return "", g.unavailable(r, rec.policy, err)
	}
	return tok, nil
}

// redeem consumes token atomically and returns its record.
func (g *Gate) redeem(ctx context.Context, tok string) (rec record, reason string, err error) {
	if !validB64(tok, tokenLen) {
		return rec, reasonUnknown, nil
	}
	v, found, err := g.store.Take(ctx, g.tokenKey(tok))
	if err != nil || !found {
		return rec, reasonUnknown, err
	}
	if rec, err = decodeRecord(v); err != nil {
		return rec, reasonUnknown, err
	}
	if g.now().UnixNano() >= rec.expires {
		return rec, reasonExpired, nil
	}
	return rec, "", nil
}
