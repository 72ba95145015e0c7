package captchagate

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Guard is the middleware of one Policy. Create it with Gate.NewGuard (or
// Gate.Guard); it is safe for concurrent use.
type Guard struct {
	g          *Gate
	name       string
	keys       []guardKey
	failStatus []int
	needBody   bool
	rates      bool // some key has a send rate
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

// NewGuard validates p and returns its Guard. A policy's Name is unique per
// Gate: NewGuard refuses a name already in use. To guard several routes with
// one policy (one set of counters), wrap each with the same Guard.
func (g *Gate) NewGuard(p Policy) (*Guard, error) {
	keys, statuses, err := compilePolicy(p)
	if err != nil {
		return nil, err
	}
	gd := &Guard{g: g, name: p.Name, keys: keys, failStatus: statuses}
	for i := range keys {
		gd.needBody = gd.needBody || keys[i].Source.body
		gd.rates = gd.rates || keys[i].interval > 0
		keys[i].prefix = []byte(p.Name + "\x00" + keys[i].name + "\x00")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.policies[p.Name]; dup {
		return nil, fmt.Errorf("captchagate: a policy named %q is already guarded by this Gate; reuse its Guard", p.Name)
	}
	g.policies[p.Name] = gd
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
	ch       [maxKeysInPolicy]uint64 // counting hashes, with the in-process store
	now      int64                   // the in-process store's clock, read once per request
	ops      []Op                    // the store operations count ran (ceilings, failures, rates)
	opsBuf   [8]Op
	buf      [2*maxKeyValue + 64]byte // key values
	sum      [32]byte
}

var evalPool = sync.Pool{New: func() any {
	ev := new(eval)
	ev.ops = ev.opsBuf[:0]
	return ev
}}

func getEval() *eval { return evalPool.Get().(*eval) }

// putEval returns ev to the pool, dropping what it refers to.
func putEval(ev *eval) {
	ev.in = input{}
	ev.bodyRead, ev.bound = false, false
	ev.present, ev.reserved, ev.ceiled, ev.tripped = 0, 0, 0, 0
	clear(ev.ops)
	ev.ops = ev.ops[:0]
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
		if gd.g.mem != nil {
			// The in-process store names a counter by a 64-bit hash anyway:
			// a seeded maphash of the same input is enough to count by,
			// and the HMACs that bind captchas wait until a key trips.
			var mh maphash.Hash
			mh.SetSeed(gd.g.seed)
			mh.Write(k.prefix)
			mh.Write(v)
			ev.ch[i] = mh.Sum64()
			continue
		}
		gd.g.mac(&ev.sum, k.prefix, v)
		copy(ev.hashes[i][:], ev.sum[:16])
	}
	ev.bound = gd.g.mem == nil
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

// storeKey names a counter: kind, ':' and the key hash in base64url.
func storeKey(kind byte, h *[16]byte) string {
	var b [24]byte
	return string(b64.AppendEncode(append(b[:0], kind, ':'), h[:]))
}

// mixKind names the counter of kind for a key's counting hash in the
// in-process store: splitmix64's finalizer over the hash and the kind, a
// bijection for each kind.
func mixKind(h uint64, kind byte) uint64 {
	x := h + uint64(kind)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// addOp appends op, the counter of kind for key i, to ev.ops. With the
// in-process store it is named by a hash (no key string is built).
func (ev *eval) addOp(g *Gate, op Op, kind byte, i int) {
	op.kind, op.key = kind, uint8(i)
	if g.mem != nil {
		op.h = mixKind(ev.ch[i], kind)
	} else {
		op.Key = storeKey(kind, &ev.hashes[i])
	}
	ev.ops = append(ev.ops, op)
}

// run runs ops: on the in-process store directly by hash at the request's
// time, on a Batcher in one round trip, on any other store one call each.
func (g *Gate) run(ctx context.Context, now int64, ops []Op) {
	switch {
	case g.mem != nil:
		for i := range ops {
			g.runMem(&ops[i], now)
		}
	case g.batcher != nil:
		g.batcher.Do(ctx, ops)
	default:
		for i := range ops {
			ops[i].Run(ctx, g.store)
		}
	}
}

func (g *Gate) runMem(op *Op, now int64) {
	switch op.Kind {
	case OpIncr:
		op.N, op.Reset, op.Err = g.mem.Incr(op.h, op.Delta, op.Window, now)
	case OpAllow:
		op.OK, op.Wait, op.Err = g.mem.Allow(op.h, op.Interval, op.Burst, op.Take, now)
	case OpReset:
		g.mem.Reset(op.h)
	}
}

// count counts the ceilings, then reserves the failure counters and takes
// the send-rate tokens. A failure counter is incremented before the handler
// runs and given back afterwards unless the request failed, so that
// concurrent requests can never all see a count under the threshold.
// Ceilings come first so that a request refused by a ceiling takes no
// send-rate token: a policy with both ceilings and send rates counts in two
// rounds, any other in one (one round trip on a Batcher).
//
// With peek (Check), count reads instead of writing, judges the counts as if
// this request were added, reports no events and returns store failures.
func (gd *Guard) count(ctx context.Context, r *http.Request, ev *eval, peek bool) error {
	g := gd.g
	delta := int64(1)
	if peek {
		delta = 0
	}
	if g.mem != nil {
		ev.now = g.mem.Now()
	}
	for i := range gd.keys {
		if k := &gd.keys[i]; ev.present&(1<<i) != 0 && k.Ceiling > 0 {
			ev.addOp(g, Op{Kind: OpIncr, Delta: delta, Window: k.ceilWindow}, 'x', i)
		}
	}
	start := 0
	if len(ev.ops) > 0 && gd.rates {
		g.run(ctx, ev.now, ev.ops)
		if err := gd.judge(r, ev, ev.ops, peek); err != nil {
			return err
		}
		start = len(ev.ops)
	}
	for i := range gd.keys {
		k := &gd.keys[i]
		if ev.present&(1<<i) == 0 {
			continue
		}
		if k.maxFailures > 0 {
			ev.addOp(g, Op{Kind: OpIncr, Delta: delta, Window: k.window}, 'f', i)
		}
		if k.interval > 0 {
			ev.addOp(g, Op{Kind: OpAllow, Interval: k.interval, Burst: k.burst, Take: !peek}, 'r', i)
		}
	}
	g.run(ctx, ev.now, ev.ops[start:])
	return gd.judge(r, ev, ev.ops[start:], peek)
}

// judge reads the results of ops: it records reservations, trips keys and
// returns the error that refuses the request outright (a ceiling reached,
// or a store failure under FailClosed or in Check).
func (gd *Guard) judge(r *http.Request, ev *eval, ops []Op, peek bool) error {
	g := gd.g
	this := int64(0) // Check judges the counts as if this request were added
	if peek {
		this = 1
	}
	var failed error
	var retry time.Duration
	blocked := false
	for j := range ops {
		op := &ops[j]
		i := int(op.key)
		bit, k := uint16(1)<<i, &gd.keys[i]
		if op.Err != nil {
			switch {
			case peek:
				failed = cmp.Or(failed, error(unavailableError(op.Err)))
			case op.kind == 'x':
				if gd.storeFailed(r, op.Err, bit) != 0 {
					failed = cmp.Or(failed, error(unavailableError(op.Err)))
				}
			default:
				ev.tripped |= gd.storeFailed(r, op.Err, bit)
			}
			continue
		}
		switch op.kind {
		case 'x':
			if !peek {
				ev.ceiled |= bit
			}
			if op.N+this > int64(k.Ceiling) {
				blocked = true
				retry = max(retry, op.Reset.Sub(g.now()))
				if !peek {
					g.emit(Event{Kind: EventCeilingReached, Policy: gd.name, Key: k.name, Request: r})
				}
			}
		case 'f':
			if !peek {
				ev.reserved |= bit
				ev.counts[i] = op.N
			}
			if op.N+this > k.maxFailures {
				ev.tripped |= bit
			}
		case 'r':
			if !op.OK {
				ev.tripped |= bit
				if !peek {
					g.emit(Event{Kind: EventTripped, Policy: gd.name, Key: k.name, Request: r})
				}
			}
		}
	}
	if failed != nil {
		return failed
	}
	if blocked {
		return &Error{Code: CodeTooManyRequests, Description: "limit reached; retry later", RetryAfter: max(retry, time.Second)}
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

// refund gives back the counters a request reserved but did not use.
func (gd *Guard) refund(ctx context.Context, ev *eval) {
	gd.giveBack(ctx, ev, ev.reserved, ev.ceiled, 0)
	ev.reserved, ev.ceiled = 0, 0
}

// giveBack decrements the failure counters of keys in fail and the ceiling
// counters of keys in ceil, and resets the failure counters of keys in
// reset. A Batcher writes them behind, without the request waiting; ctx
// comes from storeContext otherwise: the writes outlive a client that hung
// up.
func (gd *Guard) giveBack(ctx context.Context, ev *eval, fail, ceil, reset uint16) {
	g := gd.g
	var later []Op
	for j := range ev.ops {
		op := ev.ops[j]
		bit := uint16(1) << op.key
		switch {
		case op.kind == 'f' && reset&bit != 0:
			op.Kind = OpReset
		case op.kind == 'f' && fail&bit != 0, op.kind == 'x' && ceil&bit != 0:
			op.Delta = -1
		default:
			continue
		}
		op.Err = nil
		switch {
		case g.mem != nil:
			g.runMem(&op, ev.now)
		case g.batcher != nil:
			later = append(later, op)
		default:
			if op.Run(ctx, g.store); op.Err != nil {
				g.storeError(ev.in.r, gd.name, op.Err)
			}
		}
	}
	if len(later) > 0 {
		r, name := ev.in.r, gd.name
		g.batcher.Later(later, func(err error) { g.storeError(r, name, err) })
	}
}

// settle keeps the reservations of a failed request; a successful one resets
// the per-account keys and gives back the others; any other outcome gives all
// back. Success is an explicit Succeed or a written status below 400: a
// handler that wrote nothing (the client went away, a bug) is neutral.
func (gd *Guard) settle(ctx context.Context, ev *eval, gw *guardWriter) {
	outcome := gw.outcome.Load()
	if outcome == outcomeNone && gw.status != 0 {
		switch {
		case slices.Contains(gd.failStatus, gw.status):
			outcome = outcomeFail
		case gw.status < 400:
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
		// Per-account keys start afresh; the others are given back.
		var reset uint16
		for i := range gd.keys {
			if gd.keys[i].ResetOnSuccess {
				reset |= 1 << i
			}
		}
		gd.giveBack(ctx, ev, ev.reserved, 0, ev.reserved&reset)
		return
	}
	// The request reached the handler: its ceiling count stands.
	gd.giveBack(ctx, ev, ev.reserved, 0, 0)
}

// prove looks for a captcha_token or an inline answer on a tripped request
// and consumes it. It returns nil if the proof lets the request through, and
// otherwise the error to answer with, carrying a fresh captcha.
func (gd *Guard) prove(ctx context.Context, r *http.Request, ev *eval) error {
	g := gd.g
	tok, id, answer, err := gd.proof(r, ev)
	if err != nil {
		return err
	}
	gd.bind(ev)
	sess := g.sessionHash(r)
	var reason string
	var flow record // the captcha a wrong answer spent: its flow goes on
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
		rec, found, why, err := g.solve(ctx, r, id, answer)
		if err != nil {
			return err
		}
		if why == "" && !g.matches(&rec, gd.name, ev.present, &ev.hashes, sess, nil) {
			why = reasonMismatch
		}
		if found && rec.policy == gd.name {
			flow = rec
		}
		if why == "" {
			g.emit(Event{Kind: EventCaptchaVerified, Policy: gd.name, CaptchaID: id, Request: r})
			return nil
		}
		g.emit(Event{Kind: EventCaptchaRejected, Policy: gd.name, CaptchaID: id, Reason: why, Request: r})
		reason = "captcha " + why
	}
	b := g.bindingFor(gd.name, ev.tripped, &ev.hashes, sess)
	b.level = max(gd.level(ev), flow.level)
	c, err := g.issue(ctx, r, b, flow.refreshes)
	if err != nil {
		return err
	}
	if reason != "" {
		return &Error{Code: CodeCaptchaInvalid, Description: reason + "; solve the new captcha", Captcha: c}
	}
	return &Error{Code: CodeCaptchaRequired, Description: "captcha_token required; solve the captcha and retry", Captcha: c}
}

// proof reads the proof a tripped request carries: a token, or an inline
// answer to a captcha (named by the request, or the session's pending one).
// It validates them before anything is spent: a malformed id or answer is an
// invalid_request that spends no captcha and issues none.
func (gd *Guard) proof(r *http.Request, ev *eval) (tok, id, answer string, err error) {
	tok = r.Header.Get(TokenHeader)
	if tok == "" && r.Body != nil && r.Body != http.NoBody {
		if err := gd.loadBody(ev); err != nil {
			return "", "", "", err
		}
		tok, _ = bodyField(r, ev.in.body, TokenField, 256)
		if tok == "" {
			id, _ = bodyField(r, ev.in.body, IDField, 256)
			var long bool
			answer, long = bodyField(r, ev.in.body, AnswerField, gd.g.maxAnswerLen())
			if long {
				return "", "", "", invalid(CodeMalformedAnswer, AnswerField, "captcha_answer is too long or not text")
			}
		}
	}
	if tok == "" && id == "" && answer != "" {
		if s := SessionFrom(r); s != nil {
			id = s.Pending
		}
	}
	if id != "" {
		if err := checkID(id); err != nil {
			return "", "", "", err
		}
		if err := gd.g.checkAnswer(answer); err != nil {
			return "", "", "", err
		}
	}
	return tok, id, answer, nil
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

// bodyField returns a field of a JSON or URL-encoded body, and whether it
// was there but longer than limit (then v is "").
func bodyField(r *http.Request, body []byte, name string, limit int) (v string, long bool) {
	var buf [128]byte
	var b []byte
	var ok bool
	if isForm(r) {
		b, ok = formValue(buf[:0], string(body), name)
	} else {
		b, ok = jsonField(buf[:0], body, name)
	}
	if !ok {
		return "", false
	}
	if len(b) > limit {
		return "", true
	}
	return string(bytes.TrimSpace(b)), false
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
