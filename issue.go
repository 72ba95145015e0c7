package captchagate

import (
	"cmp"
	"context"
	"net/http"
	"time"

	"github.com/captchagate/captchagate/internal/memhash"
	"github.com/captchagate/captchagate/store/memstore"
)

// clientKey is the store key of one of the client's buckets: kind 'n' for
// captcha creation, 'm' for media fetches.
func (g *Gate) clientKey(r *http.Request, kind byte) string {
	var buf [32]byte
	k := g.ips.appendClientKey(buf[:0], r)
	var sum [32]byte
	g.mac(&sum, []byte("client\x00"), k)
	return string(kind) + ":" + b64.EncodeToString(sum[:16])
}

// allowCreate takes one captcha creation, for policy, from the client's
// budget.
func (g *Gate) allowCreate(ctx context.Context, r *http.Request, policy string) error {
	return g.allowClient(ctx, r, policy, 'n', g.createInterval, g.createBurst, msgTooManyCaptchas)
}

// allowClient takes one token from the client's bucket of kind; interval 0
// means no limit. policy names, in the events of a store failure, the
// policy the budget was charged for ("" for media).
func (g *Gate) allowClient(ctx context.Context, r *http.Request, policy string, kind byte, interval time.Duration, burst int, desc msgID) error {
	if interval == 0 {
		return nil
	}
	key := g.clientKey(r, kind)
	ok, wait, err := g.store.Allow(ctx, key, interval, burst, true)
	if err != nil && storeFull(err) {
		// A full store has no room for a new client's budget: the client
		// is served without one rather than refused (a captcha it gets is
		// sealed, and renders are bounded by the render slots).
		g.storeError(r, policy, err)
		return nil
	}
	if err != nil {
		return g.unavailable(r, policy, err)
	}
	if !ok && g.estimatedBucket(key) {
		// An in-memory store at its bound read the client's budget from
		// its spill, which may be emptier than the budget was: not a
		// refusal (a captcha issued is sealed; renders are bounded by the
		// render slots).
		return nil
	}
	if !ok {
		return said(&Error{Code: CodeTooManyRequests, RetryAfter: max(wait, time.Second)}, desc)
	}
	return nil
}

// estimatedBucket reports whether the bucket at key is an in-memory store's
// estimate (memhash's spill).
func (g *Gate) estimatedBucket(key string) bool {
	m, ok := g.store.(*memstore.Store)
	if !ok {
		return false
	}
	c := (*memhash.Store)(m)
	return c.BucketEstimated(c.Hash(key), c.Now())
}

// issue creates a captcha bound to b, charging the client's creation
// budget. With the in-memory store it is sealed in its id and nothing is
// stored for it until it is answered (seal.go).
func (g *Gate) issue(ctx context.Context, r *http.Request, b binding, refreshes uint8) (*Captcha, error) {
	if err := g.allowCreate(ctx, r, b.policy); err != nil {
		return nil, err
	}
	return g.issueUncharged(ctx, r, b, refreshes)
}

// issueUncharged is issue for a caller that has charged the budget already.
func (g *Gate) issueUncharged(ctx context.Context, r *http.Request, b binding, refreshes uint8) (*Captcha, error) {
	return g.issueAs(ctx, r, b, refreshes, EventCaptchaIssued)
}

// issueAs is issueUncharged reporting the captcha as kind (issued or
// refreshed).
func (g *Gate) issueAs(ctx context.Context, r *http.Request, b binding, refreshes uint8, kind EventKind) (*Captcha, error) {
	now := g.now()
	exp := now.Add(g.captchaTTL)
	secret, err := g.challenge.Issue(IssueInfo{Now: now, Expires: exp, Level: int(b.level), Sign: g.signer()})
	if err != nil {
		return nil, g.failure(r, b.policy, CodeInternal, err)
	}
	rec := record{policy: b.policy, mask: b.mask, flags: b.flags, bind: b.bind, refreshes: refreshes,
		level: b.level, expires: exp.UnixNano(), secret: secret}
	id, err := g.captchas.put(ctx, &rec)
	if err != nil {
		return nil, g.unavailable(r, b.policy, err)
	}
	g.emit(Event{Kind: kind, Policy: b.policy, CaptchaID: id, Mode: g.mode, Request: r})
	return g.describe(r, id, int(refreshes)), nil
}

// describe returns captcha id as clients see it. Its audio URL asks for r's
// language (Gate.Language) with ?lang= where the audio speaks it and it is
// not the audio's default.
func (g *Gate) describe(r *http.Request, id string, refreshes int) *Captcha {
	c := &Captcha{
		Kind:          g.challenge.Kind(),
		ID:            id,
		RefreshURL:    g.urlBase + "refresh?captcha_id=" + id,
		VerifyURL:     g.urlBase + "verify",
		ExpiresIn:     int(g.captchaTTL / time.Second),
		RefreshesLeft: max(g.maxRefreshes-refreshes, 0),
	}
	if rd, ok := g.challenge.(Renderer); ok {
		for _, m := range rd.Media() {
			u := g.urlBase + id + "." + m.Format
			switch m.Member {
			case "":
			case "image_url":
				c.ImageURL = cmp.Or(c.ImageURL, u)
			case "audio_url":
				c.AudioURL = cmp.Or(c.AudioURL, u+g.audioLang(r, m))
			default:
				c.setExtra(m.Member, u)
			}
		}
	}
	if d, ok := g.challenge.(Describer); ok {
		for k, v := range d.Describe() {
			c.setExtra(k, v)
		}
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
	reasonLevel    = "issued at a lower difficulty than this request needs"
)

// solve checks captcha id, then spends it atomically and checks answer
// against it. check, if not nil, is asked before anything is spent: the
// reason it gives refuses the captcha without spending it, as does expiry.
// solve returns the record (for a fresh captcha's binding) and, when the
// answer does not solve it, the reason. err is a failure, reported and
// classified (a store failure, or a verifier's).
//
// The Challenge is asked with a context detached from the client's; its
// failure is returned as err (fail closed), the captcha spent.
func (g *Gate) solve(ctx context.Context, r *http.Request, id, answer string, check func(*record) string) (rec record, found bool, reason string, err error) {
	rec, found, err = g.captchas.open(ctx, id)
	if err != nil {
		return rec, false, reasonUnknown, g.unavailable(r, "", err)
	}
	if !found {
		return rec, false, reasonUnknown, nil
	}
	if g.now().UnixNano() >= rec.expires {
		return rec, true, reasonExpired, nil
	}
	if check != nil {
		if why := check(&rec); why != "" {
			return rec, true, why, nil
		}
	}
	if _, found, err = g.captchas.take(ctx, id); err != nil {
		return rec, false, reasonUnknown, g.unavailable(r, "", err)
	}
	if !found {
		return rec, false, reasonUnknown, nil
	}
	ip := ""
	if a, ok := g.ips.clientAddr(r); ok {
		ip = a.String()
	}
	ok, err := g.challenge.Check(context.WithoutCancel(r.Context()), CheckInfo{Secret: rec.secret, Answer: answer, ClientIP: ip, Request: r})
	if err != nil {
		return rec, true, "", g.failure(r, rec.policy, CodeVerifierUnavailable, err)
	}
	if !ok {
		return rec, true, reasonWrong, nil
	}
	return rec, true, "", nil
}

// mintToken issues a single-use token bound like rec and, if sender is not
// nil, to that sender too. err is a failure, reported and classified.
func (g *Gate) mintToken(ctx context.Context, r *http.Request, rec record, sender *[16]byte) (string, error) {
	b := bindingOf(&rec)
	if sender != nil {
		g.bindSender(&b, sender)
	}
	t := record{policy: b.policy, mask: b.mask, flags: b.flags, bind: b.bind, level: b.level, expires: g.now().Add(g.tokenTTL).UnixNano()}
	tok, err := g.tokens.put(ctx, &t)
	if err != nil {
		return "", g.unavailable(r, rec.policy, err)
	}
	return tok, nil
}

// redeem checks token and then consumes it atomically, returning its
// record. A token that is expired, or that check (if not nil) refuses, is
// not consumed: whoever learns a token cannot burn it with a request it
// does not reach.
func (g *Gate) redeem(ctx context.Context, tok string, check func(*record) string) (rec record, reason string, err error) {
	if !validToken(tok) {
		return rec, reasonUnknown, nil
	}
	rec, found, err := g.tokens.open(ctx, tok)
	if err != nil || !found {
		return rec, reasonUnknown, err
	}
	if g.now().UnixNano() >= rec.expires {
		return rec, reasonExpired, nil
	}
	if check != nil {
		if why := check(&rec); why != "" {
			return rec, why, nil
		}
	}
	if _, found, err = g.tokens.take(ctx, tok); err != nil || !found {
		return rec, reasonUnknown, err
	}
	return rec, "", nil
}
