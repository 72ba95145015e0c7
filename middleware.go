package captchagate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Guard is the middleware of one Policy. Create it with Gate.NewGuard (or
// Gate.Guard); it is safe for concurrent use.
type Guard struct {
	g          *Gate
	name       string
	keys       []guardKey
	failStatus []int
	needBody   bool
}

// Guard returns the middleware of p. It panics if p is invalid, as chi's
// middleware constructors do; use NewGuard to get the error instead.
//
//	mux.Handle("POST /login", gate.Guard(policy)(loginHandler))
func (g *Gate) Guard(p Policy) func(http.Handler) http.Handler {
	gd, err := g.NewGuard(p)
	if err != nil {
		panic(err.Error())
	}
	return gd.Wrap
}

// NewGuard validates p and returns its Guard. Guards of policies with one
// Name share counters, captchas and tokens.
func (g *Gate) NewGuard(p Policy) (*Guard, error) {
	keys, statuses, err := compilePolicy(p)
	if err != nil {
		return nil, err
	}
	gd := &Guard{g: g, name: p.Name, keys: keys, failStatus: statuses}
	for i := range keys {
		gd.needBody = gd.needBody || keys[i].Source.body
		keys[i].prefix = []byte(p.Name + "\x00" + keys[i].name + "\x00")
	}
	g.mu.Lock()
	g.policies[p.Name] = gd
	g.mu.Unlock()
	return gd, nil
}

func (g *Gate) policy(name string) (*Guard, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	gd, ok := g.policies[name]
	return gd, ok
}

// Wrap returns next guarded by the policy. A request that needs a captcha and
// carries no valid proof is answered by the ErrorHandler; next is not called.
func (gd *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gd.serve(w, r, next)
	})
}

// Proof a client can send with a guarded request.
const (
	TokenHeader = "X-Captcha-Token" // header carrying a captcha_token
	TokenField  = "captcha_token"   // form or JSON field carrying a captcha_token
	IDField     = "captcha_id"      // form or JSON field of an inline answer's captcha id
	AnswerField = "captcha_answer"  // form or JSON field of an inline answer
)

// eval is the per-request evaluation of a policy. It is pooled: nothing
// handed to the application points into it.
type eval struct {
	in       input
	bodyRead bool
	bound    bool                   // hashes are the binding HMACs (else counting hashes)
	present  uint16                 // keys with a value
	reserved uint16                 // failure counters incremented for this request
	ceiled   uint16                 // ceiling counters incremented for this request
	tripped  uint16                 // keys that need a captcha
	counts   [maxKeysInPolicy]int64 // failure counts including this request
	hashes   [maxKeysInPolicy][16]byte
	fkeys    [maxKeysInPolicy]string
	ckeys    [maxKeysInPolicy]string
	keyBytes [3 * maxKeysInPolicy][storeKeyLen]byte // backing of store keys when the store keeps none
	buf      [2*maxKeyValue + 64]byte               // key values
	sum      [32]byte
}

var evalPool = sync.Pool{New: func() any { return new(eval) }}

func getEval() *eval { return evalPool.Get().(*eval) }

// putEval returns ev to the pool, dropping what it refers to.
func putEval(ev *eval) {
	ev.in = input{}
	ev.bodyRead, ev.bound = false, false
	ev.present, ev.reserved, ev.ceiled, ev.tripped = 0, 0, 0, 0
	ev.fkeys, ev.ckeys = [maxKeysInPolicy]string{}, [maxKeysInPolicy]string{}
	evalPool.Put(ev)
}

// outcome is the context of a request that reached a guarded handler: it
// carries the writer that records the status and the outcome Fail and
// Succeed set, in one allocation (it is its own context.Context).
type outcome struct {
	context.Context
	gw guardWriter
}

func (o *outcome) Value(key any) any {
	if key == (stateKey{}) {
		return &o.gw
	}
	return o.Context.Value(key)
}

func (gd *Guard) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ev := getEval()
	defer putEval(ev)
	if err := gd.extract(r, ev); err != nil {
		gd.g.fail(w, r, err)
		return
	}
	ctx, cancel := gd.g.storeContext(r)
	err := gd.count(ctx, r, ev, false)
	if err == nil && ev.tripped != 0 {
		err = gd.prove(ctx, r, ev)
	}
	if err != nil {
		gd.refund(ctx, ev)
		cancel()
		gd.g.fail(w, r, err)
		return
	}
	cancel()
	if ev.reserved == 0 {
		next.ServeHTTP(w, r)
		return
	}
	o := &outcome{Context: r.Context(), gw: guardWriter{ResponseWriter: w}}
	next.ServeHTTP(&o.gw, r.WithContext(o))
	ctx, cancel = gd.g.storeContext(r)
	gd.settle(ctx, ev, &o.gw)
	cancel()
}

// extract reads the keys' values (and the body, if a key needs it) and hashes
// them.
func (gd *Guard) extract(r *http.Request, ev *eval) error {
	ev.in = input{r: r, g: gd.g}
	if gd.needBody {
		if err := gd.loadBody(ev); err != nil {
			return err
		}
	}
	for i := range gd.keys {
		k := &gd.keys[i]
		v, ok := k.Source.value(&ev.in, ev.buf[:0])
		if !ok {
			if k.Required {
				return invalid(CodeMissingKey, k.name, "missing "+k.name)
			}
			continue
		}
		ev.present |= 1 << i
		if gd.g.keysBorrowed {
			// The in-process store names a counter by a 64-bit hash anyway:
			// a seeded maphash of the same input is enough to count by,
			// and the HMACs that bind captchas wait until a key trips.
			var mh maphash.Hash
			mh.SetSeed(gd.g.seed)
			mh.Write(k.prefix)
			mh.Write(v)
			binary.LittleEndian.PutUint64(ev.hashes[i][:], mh.Sum64())
			continue
		}
		gd.g.mac(&ev.sum, k.prefix, v)
		copy(ev.hashes[i][:], ev.sum[:16])
	}
	ev.bound = !gd.g.keysBorrowed
	return nil
}

// bind makes sure ev.hashes are the keyed HMACs that bind captchas and
// tokens (with the in-process store, extract computed only counting hashes).
func (gd *Guard) bind(ev *eval) {
	if ev.bound {
		return
	}
	ev.bound = true
	for i := range gd.keys {
		if ev.present&(1<<i) == 0 {
			continue
		}
		k := &gd.keys[i]
		v, _ := k.Source.value(&ev.in, ev.buf[:0])
		gd.g.mac(&ev.sum, k.prefix, v)
		copy(ev.hashes[i][:], ev.sum[:16])
	}
}

func (gd *Guard) loadBody(ev *eval) error {
	if ev.bodyRead {
		return nil
	}
	ev.bodyRead = true
	b, err := readBody(ev.in.r, gd.g.maxBody)
	ev.in.body = b
	return err
}

// readBody reads at most limit bytes of r's body and puts an equivalent body
// back for the next handler.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, &Error{Code: CodeRequestTooLarge, Description: fmt.Sprintf("body larger than %d bytes", limit)}
	}
	size := r.ContentLength
	if size < 0 || size > 4096 {
		size = 512
	}
	// One read into a buffer of the announced size (plus one byte to see an
	// overlong body), growing only for bodies of unknown length.
	b := make([]byte, 0, size+1)
	var err error
	for int64(len(b)) <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		n, err = r.Body.Read(b[len(b):min(cap(b), int(limit)+1)])
		b = b[:len(b)+n]
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		err = nil
	}
	r.Body.Close()
	rb := new(replayBody)
	rb.Reset(b)
	r.Body = rb
	if int64(len(b)) > limit {
		return nil, &Error{Code: CodeRequestTooLarge, Description: fmt.Sprintf("body larger than %d bytes", limit)}
	}
	if err != nil {
		return nil, &Error{Code: CodeMalformedBody, Description: "body could not be read", Err: err}
	}
	return b, nil
}

// replayBody hands the body the guard read to the next handler.
type replayBody struct{ bytes.Reader }

func (*replayBody) Close() error { return nil }

const storeKeyLen = 24

// storeKey names a counter: kind, ':' and the key hash in base64url.
func storeKey(kind byte, h *[16]byte) string {
	var b [storeKeyLen]byte
	return string(b64.AppendEncode(append(b[:0], kind, ':'), h[:]))
}

// key returns the store key of kind for key i. With the built-in memory
// store, which keeps no counter key beyond a call (it hashes them), the key
// is a view of ev's own bytes and costs no allocation; other stores get a
// string of their own.
func (ev *eval) key(g *Gate, kind byte, i int) string {
	if !g.keysBorrowed {
		return storeKey(kind, &ev.hashes[i])
	}
	slot := i
	switch kind {
	case 'r':
		slot += maxKeysInPolicy
	case 'x':
		slot += 2 * maxKeysInPolicy
	}
	b := append(ev.keyBytes[slot][:0], kind, ':')
	b = append(b, ev.hashes[i][:8]...)
	return unsafe.String(&b[0], len(b))
}

// count counts the ceilings, then reserves the failure counters and takes
// the send-rate tokens. A failure counter is incremented before the handler
// runs and given back afterwards unless the request failed, so that
// concurrent requests can never all see a count under the threshold.
// Ceilings come first so that a request refused by a ceiling takes no
// send-rate token.
//
// With peek (Check), count reads instead of writing, judges the counts as if
// this request were added, reports no events and returns store failures.
func (gd *Guard) count(ctx context.Context, r *http.Request, ev *eval, peek bool) error {
	g := gd.g
	delta, this := int64(1), int64(0)
	if peek {
		delta, this = 0, 1
	}
	var retry time.Duration
	blocked := false
	for i := range gd.keys {
		bit := uint16(1) << i
		k := &gd.keys[i]
		if ev.present&bit == 0 || k.Ceiling == 0 {
			continue
		}
		ev.ckeys[i] = ev.key(g, 'x', i)
		n, reset, err := g.store.Incr(ctx, ev.ckeys[i], delta, k.ceilWindow)
		if err != nil {
			if peek || gd.storeFailed(r, err, bit) != 0 {
				return unavailableError(err)
			}
			continue
		}
		if !peek {
			ev.ceiled |= bit
		}
		if n+this > int64(k.Ceiling) {
			blocked = true
			retry = max(retry, reset.Sub(g.now()))
			if !peek {
				g.emit(Event{Kind: EventCeilingReached, Policy: gd.name, Key: k.name, Request: r})
			}
		}
	}
	if blocked {
		return &Error{Code: CodeTooManyRequests, Description: "limit reached; retry later", RetryAfter: max(retry, time.Second)}
	}
	for i := range gd.keys {
		bit := uint16(1) << i
		if ev.present&bit == 0 {
			continue
		}
		k := &gd.keys[i]
		if k.maxFailures > 0 {
			ev.fkeys[i] = ev.key(g, 'f', i)
			n, _, err := g.store.Incr(ctx, ev.fkeys[i], delta, k.window)
			switch {
			case err != nil && peek:
				return unavailableError(err)
			case err != nil:
				ev.tripped |= gd.storeFailed(r, err, bit)
			default:
				if !peek {
					ev.reserved |= bit
					ev.counts[i] = n
				}
				if n+this > k.maxFailures {
					ev.tripped |= bit
				}
			}
		}
		if k.interval > 0 {
			ok, _, err := g.store.Allow(ctx, ev.key(g, 'r', i), k.interval, k.burst, !peek)
			switch {
			case err != nil && peek:
				return unavailableError(err)
			case err != nil:
				ev.tripped |= gd.storeFailed(r, err, bit)
			case !ok:
				ev.tripped |= bit
				if !peek {
					g.emit(Event{Kind: EventTripped, Policy: gd.name, Key: k.name, Request: r})
				}
			}
		}
	}
	return nil
}

// storeFailed reports a counting failure and returns bit if the key must be
// treated as tripped (FailClosed), 0 if it is skipped (FailOpen).
func (gd *Guard) storeFailed(r *http.Request, err error, bit uint16) uint16 {
	gd.g.storeError(r, gd.name, err)
	if gd.g.failMode == FailOpen {
		return 0
	}
	return bit
}

// refund gives back the counters a request reserved but did not use. ctx
// comes from storeContext: the writes outlive a client that hung up.
func (gd *Guard) refund(ctx context.Context, ev *eval) {
	for i := range gd.keys {
		bit := uint16(1) << i
		if ev.reserved&bit != 0 {
			gd.g.store.Incr(ctx, ev.fkeys[i], -1, gd.keys[i].window)
		}
		if ev.ceiled&bit != 0 {
			gd.g.store.Incr(ctx, ev.ckeys[i], -1, gd.keys[i].ceilWindow)
		}
	}
	ev.reserved, ev.ceiled = 0, 0
}

// settle keeps the reservations of a failed request; a successful one resets
// the per-account keys and gives back the others; any other outcome gives all
// back.
func (gd *Guard) settle(ctx context.Context, ev *eval, gw *guardWriter) {
	outcome := gw.outcome.Load()
	if outcome == outcomeNone {
		status := gw.status
		if status == 0 {
			status = http.StatusOK
		}
		switch {
		case slices.Contains(gd.failStatus, status):
			outcome = outcomeFail
		case status < 400:
			outcome = outcomeSuccess
		}
	}
	switch outcome {
	case outcomeFail:
		// The failure that reaches a threshold trips it: the next request
		// needs a captcha.
		for i := range gd.keys {
			if ev.reserved&(1<<i) != 0 && ev.counts[i] == gd.keys[i].maxFailures {
				gd.g.emit(Event{Kind: EventTripped, Policy: gd.name, Key: gd.keys[i].name, Request: ev.in.r})
			}
		}
		return
	case outcomeSuccess:
		for i := range gd.keys {
			if ev.reserved&(1<<i) != 0 && gd.keys[i].ResetOnSuccess {
				if err := gd.g.store.Reset(ctx, ev.fkeys[i]); err != nil {
					gd.g.storeError(ev.in.r, gd.name, err)
				}
				ev.reserved &^= 1 << i
			}
		}
	}
	ev.ceiled = 0 // the request reached the handler: its ceiling count stands
	gd.refund(ctx, ev)
}

// prove looks for a captcha_token or an inline answer on a tripped request
// and consumes it. It returns nil if the proof lets the request through, and
// otherwise the error to answer with, carrying a fresh captcha.
func (gd *Guard) prove(ctx context.Context, r *http.Request, ev *eval) error {
	g := gd.g
	gd.bind(ev)
	tok := r.Header.Get(TokenHeader)
	var id, answer string
	if tok == "" && r.Body != nil && r.Body != http.NoBody {
		if err := gd.loadBody(ev); err != nil {
			return err
		}
		tok = bodyField(r, ev.in.body, TokenField, 256)
		if tok == "" {
			id = bodyField(r, ev.in.body, IDField, 256)
			answer = bodyField(r, ev.in.body, AnswerField, g.maxAnswerLen())
		}
	}
	if tok == "" && id == "" && answer != "" {
		if s := SessionFrom(r); s != nil {
			id = s.Pending
		}
	}
	sess := g.sessionHash(r)
	var reason string
	switch {
	case tok != "":
		rec, why, err := g.redeem(ctx, tok)
		if err != nil {
			return g.unavailable(r, gd.name, err)
		}
		if why == "" && !g.matches(&rec, gd.name, ev.present, &ev.hashes, sess, gd.senders(ev, &rec)) {
			why = reasonMismatch
			if rec.flags&flagSender != 0 {
				why = reasonSender
			}
		}
		if why == "" {
			g.emit(Event{Kind: EventTokenAccepted, Policy: gd.name, Request: r})
			return nil
		}
		g.emit(Event{Kind: EventTokenRefused, Policy: gd.name, Reason: why, Request: r})
		reason = "captcha_token " + why
	case id != "":
		why := reasonUnknown
		if validID(id) {
			rec, _, w, err := g.solve(ctx, r, id, answer)
			if err != nil {
				return g.unavailable(r, gd.name, err)
			}
			why = w
			if why == "" && !g.matches(&rec, gd.name, ev.present, &ev.hashes, sess, nil) {
				why = reasonMismatch
			}
		}
		if why == "" {
			g.emit(Event{Kind: EventCaptchaVerified, Policy: gd.name, CaptchaID: id, Request: r})
			return nil
		}
		g.emit(Event{Kind: EventCaptchaRejected, Policy: gd.name, CaptchaID: id, Reason: why, Request: r})
		reason = "captcha " + why
	}
	b := g.bindingFor(gd.name, ev.tripped, &ev.hashes, sess)
	b.level = gd.level(ev)
	c, err := g.issue(ctx, r, b, 0)
	if err != nil {
		return err
	}
	if reason != "" {
		return &Error{Code: CodeCaptchaInvalid, Description: reason + "; solve the new captcha", Captcha: c}
	}
	return &Error{Code: CodeCaptchaRequired, Description: "captcha_token required; solve the captcha and retry", Captcha: c}
}

// level is how far past its threshold the furthest tripped failure key is.
func (gd *Guard) level(ev *eval) uint8 {
	var l int64
	for i := range gd.keys {
		k := &gd.keys[i]
		if ev.tripped&(1<<i) != 0 && ev.reserved&(1<<i) != 0 && k.maxFailures > 0 {
			l = max(l, ev.counts[i]-k.maxFailures-1)
		}
	}
	return uint8(min(l, 255))
}

// senders returns the sender hashes of the request's Sender keys, for a
// token verified for a sender.
func (gd *Guard) senders(ev *eval, rec *record) [][16]byte {
	if rec.flags&flagSender == 0 {
		return nil
	}
	var out [][16]byte
	for i := range gd.keys {
		k := &gd.keys[i]
		if !k.Sender || ev.present&(1<<i) == 0 {
			continue
		}
		v, _ := k.Source.value(&ev.in, ev.buf[:0])
		out = append(out, gd.g.senderHash(gd.name, string(v)))
	}
	return out
}

// bodyField returns a field of a JSON or URL-encoded body.
func bodyField(r *http.Request, body []byte, name string, limit int) string {
	var buf [128]byte
	var v []byte
	var ok bool
	if isForm(r) {
		v, ok = formValue(buf[:0], string(body), name)
	} else {
		v, ok = jsonField(buf[:0], body, name)
	}
	if !ok || len(v) > limit {
		return ""
	}
	return string(bytes.TrimSpace(v))
}

// Check reports, without changing any state or writing anything, whether r
// would need a captcha under the policy now: nil, or an *Error matching
// ErrCaptchaRequired or ErrTooManyRequests (or ErrInvalidRequest for a
// missing required key or an oversized body). It does not look at proof the
// request carries. A store failure is returned as an error matching
// ErrStoreUnavailable.
func (gd *Guard) Check(r *http.Request) error {
	ev := getEval()
	defer putEval(ev)
	if err := gd.extract(r, ev); err != nil {
		return err
	}
	ctx, cancel := gd.g.storeContext(r)
	defer cancel()
	if err := gd.count(ctx, r, ev, true); err != nil {
		return err
	}
	if ev.tripped != 0 {
		return &Error{Code: CodeCaptchaRequired, Description: "captcha_token required"}
	}
	return nil
}

// Outcome reporting.

type stateKey struct{}

const (
	outcomeNone int32 = iota
	outcomeFail
	outcomeSuccess
)

// Fail records that the guarded request failed (a wrong password, say),
// whatever status the handler writes. It is a no-op outside a guard that
// counts failures.
func Fail(r *http.Request) { setOutcome(r, outcomeFail) }

// Succeed records that the guarded request succeeded, whatever status the
// handler writes: per-account counters (Key.ResetOnSuccess) are reset. It is
// a no-op outside a guard that counts failures.
func Succeed(r *http.Request) { setOutcome(r, outcomeSuccess) }

func setOutcome(r *http.Request, o int32) {
	if gw, ok := r.Context().Value(stateKey{}).(*guardWriter); ok {
		gw.outcome.Store(o)
	}
}

// guardWriter records the status the handler writes. Unwrap lets
// http.ResponseController reach Flush, Hijack and deadlines.
type guardWriter struct {
	http.ResponseWriter
	status  int
	outcome atomic.Int32
}

func (w *guardWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *guardWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
