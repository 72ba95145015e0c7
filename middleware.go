package captchagate

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"slices"
	"strconv"
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
	rates      bool        // some key has a send rate
	dev        *deviceConf // Policy.Devices, compiled
	dryRun     bool        // Policy.DryRun
	// The RateLimit header fields (ratelimit.go): the RateLimit-Policy
	// value ("" when they are off) and the quoted item name of each key's
	// limits (failures, failure ceiling, ceiling, rate).
	rlPolicy    string
	rlPolicyHdr []string // {rlPolicy}, len == cap
	rlAllowed   bool     // RateLimitHeaders.Allowed, and the policy has limits: set on allowed answers
	rlNames     [maxKeysInPolicy][4]string
	// scoped are the keys a proof must be bound to when they trip: the
	// account keys and the per-client ones (Identity, Sender,
	// ResetOnSuccess). reset are the keys a success resets.
	scoped, reset keySet
	// The keys of each of count's rounds: with a ceiling; with a failure
	// counter, coarse (not ResetOnSuccess) or per-account; with a send rate.
	ceilKeys, coarseKeys, accountKeys, rateKeys keySet

	// settledOne is set by the first request whose outcome the guard saw
	// (a status, Fail or Succeed); until then unsettled counts the others,
	// and the guard warns once past unsettledWarn (settle).
	settledOne atomic.Bool
	unsettled  atomic.Int64
}

// unsettledWarn is how many requests a guard sees end with no outcome (no
// status written through it, no Fail or Succeed), and none with one, before
// it warns that its integration cannot see outcomes: a router that writes
// through a writer of its own (gin), or errors written after the
// middleware returned (echo), leave every failure uncounted.
const unsettledWarn = 10

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
	gd := &Guard{g: g, name: p.Name, keys: keys, failStatus: statuses, dryRun: p.DryRun}
	for i := range keys {
		k := &keys[i]
		if err := g.compileAllow(k); err != nil {
			return nil, fmt.Errorf("captchagate: policy %q key %s %w", p.Name, k.name, err)
		}
		gd.needBody = gd.needBody || k.Source.body
		gd.rates = gd.rates || k.interval > 0
		gd.setRounds(i)
		k.prefix = []byte(p.Name + "\x00" + k.name + "\x00")
		if k.Identity != 0 || k.Sender || k.ResetOnSuccess {
			gd.scoped.add(i)
		}
		if k.ResetOnSuccess {
			gd.reset.add(i)
		}
	}
	if gd.dev, err = compileDevices(p, keys); err != nil {
		return nil, err
	}
	gd.compileRateLimits()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.policies[p.Name]; dup {
		return nil, fmt.Errorf("captchagate: a policy named %q is already guarded by this Gate; reuse its Guard", p.Name)
	}
	for _, other := range g.policies {
		if gd.dev != nil && other.dev != nil && other.dev.cookie.Name == gd.dev.cookie.Name {
			return nil, fmt.Errorf("captchagate: policy %q: device cookie %q is policy %q's already; name another in Devices.Cookie", p.Name, gd.dev.cookie.Name, other.name)
		}
	}
	g.policies[p.Name] = gd
	return gd, nil
}

// setRounds puts key i in the sets of the rounds it counts in.
func (gd *Guard) setRounds(i int) {
	k := &gd.keys[i]
	if k.Ceiling > 0 {
		gd.ceilKeys.add(i)
	}
	fails := k.maxFailures > 0 || k.failCeil > 0
	switch {
	case fails && (k.ResetOnSuccess || k.Identity != 0 || k.Sender):
		gd.accountKeys.add(i)
	case fails:
		gd.coarseKeys.add(i)
	}
	if k.interval > 0 {
		gd.rateKeys.add(i)
	}
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
	allowed  bool // a key's value is in its Allow list
	// rateLimit is the RateLimit value of the limits that answered (judge).
	rateLimit []byte
	present   keySet                    // keys with a value
	bound     keySet                    // keys whose hashes are the binding HMACs
	reserved  keySet                    // failure counters incremented for this request
	ceiled    keySet                    // ceiling counters incremented for this request
	taken     keySet                    // send-rate tokens taken for this request
	tripped   keySet                    // keys that need a captcha
	limited   keySet                    // keys past a ceiling (in dry run, the request goes on)
	counts    [maxKeysInPolicy]int64    // failure counts including this request
	hashes    [maxKeysInPolicy][16]byte // binding hashes (of the keys in bound)
	ch        [maxKeysInPolicy]uint64   // counting hashes, with the in-process store
	now       int64                     // the in-process store's clock, read once per request (0: not yet)
	ops       []Op                      // the store operations count ran (ceilings, failures, rates)
	notes     []opNote                  // what each of ops counts
	opsBuf    [8]Op
	notesBuf  [8]opNote
	buf       [2*maxKeyValue + 64]byte // key values
	sum       [32]byte
	read      proofRead // the proof the request carries, once proof has read it
	// A known device (Policy.Devices): its id and cookie's expiry, and the
	// account keys that count on its counters.
	trusted   keySet
	device    [deviceIDLen]byte
	deviceExp int64
	prefixBuf [160]byte
	macBuf    []byte // a device cookie's MAC input (pooled with ev)
}

// proofRead is what proof found, kept so that counting (carriesProof) and
// proving read the request's proof once.
type proofRead struct {
	done            bool
	tok, id, answer string
	err             error
}

var evalPool = sync.Pool{New: func() any {
	ev := new(eval)
	ev.ops, ev.notes = ev.opsBuf[:0], ev.notesBuf[:0]
	return ev
}}

func getEval() *eval { return evalPool.Get().(*eval) }

// putEval returns ev to the pool, dropping what it refers to.
func putEval(ev *eval) {
	ev.in = input{}
	ev.bodyRead, ev.allowed = false, false
	ev.rateLimit = ev.rateLimit[:0]
	ev.present, ev.bound, ev.reserved, ev.ceiled, ev.taken, ev.tripped, ev.trusted, ev.limited = 0, 0, 0, 0, 0, 0, 0, 0
	ev.now = 0
	ev.read = proofRead{}
	clear(ev.ops)
	ev.ops, ev.notes = ev.ops[:0], ev.notes[:0]
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
	if gd.g.allowedNet(r) {
		next.ServeHTTP(w, r) // Config.AllowNetworks: not counted
		return
	}
	ev := getEval()
	defer putEval(ev)
	if err := gd.extract(r, ev); err != nil {
		gd.g.Error(w, r, err)
		return
	}
	if ev.allowed {
		next.ServeHTTP(w, r) // Key.Allow: not counted
		return
	}
	if err := gd.admit(r, ev); err != nil {
		gd.g.Error(w, r, err)
		return
	}
	if gd.rlAllowed {
		gd.allowedRateLimits(w.Header(), ev)
	}
	if ev.reserved == 0 {
		ev.dropOps()
		next.ServeHTTP(w, r)
		return
	}
	o := &outcome{Context: r.Context(), gw: guardWriter{ResponseWriter: w, gd: gd, ev: ev}}
	next.ServeHTTP(&o.gw, r.WithContext(o))
	ctx, cancel := gd.g.storeContext(r)
	gd.settle(ctx, ev, &o.gw)
	cancel()
	ev.dropOps()
}

// admit counts the request whose keys ev holds and, if a key tripped, proves
// it; a request it refuses (the error to answer with) is refunded: nothing
// it counted stays. Wrap and Begin both let a request in through it.
func (gd *Guard) admit(r *http.Request, ev *eval) error {
	ctx, cancel := gd.g.storeContext(r)
	defer cancel()
	err := gd.count(ctx, r, ev, serving)
	if gd.dryRun {
		// Counted, reported, never refused: a store failure was reported
		// by count, a ceiling or a trip is reported here.
		gd.dryRunPass(r, ev, ev.limited != 0)
		return nil
	}
	if err == nil && ev.tripped != 0 {
		err = gd.prove(ctx, r, ev)
	}
	if err != nil {
		gd.refund(ctx, ev)
	}
	return err
}

// extract reads the keys' values (and the body, if a key needs it) and has
// the counter name their counters.
func (gd *Guard) extract(r *http.Request, ev *eval) error {
	ev.in = input{r: r, g: gd.g, args: ev.in.args}
	if gd.needBody {
		if err := gd.loadBody(ev); err != nil {
			return err
		}
	}
	for i := range gd.keys {
		k := &gd.keys[i]
		v, ok := k.Source.value(&ev.in, ev.buf[:0])
		if !ok {
			if ev.in.err != nil {
				return ev.in.err // read two ways by two parsers: refused
			}
			if k.Required {
				return invalid(CodeMissingKey, k.name, msgMissingKey, k.name)
			}
			continue
		}
		if k.allow != nil {
			if _, ok := k.allow[string(v)]; ok {
				ev.allowed = true
			}
		}
		ev.present.add(i)
		gd.g.counter.hashKey(ev, i, k.prefix, v)
	}
	gd.knownDevice(ev)
	return nil
}

// bind makes sure ev.hashes hold the keyed HMACs that bind captchas and
// tokens, for every key present (memCounter counts by other hashes).
func (gd *Guard) bind(ev *eval) {
	for i := range gd.keys {
		if !ev.present.has(i) || ev.bound.has(i) {
			continue
		}
		k := &gd.keys[i]
		v, _ := k.Source.value(&ev.in, ev.buf[:0])
		gd.g.bindKey(ev, i, gd.prefixOf(ev, i), v)
	}
}

// bindKey sets the binding hash of key i: the HMAC of prefix (the policy and
// the key's name) and its value v.
func (g *Gate) bindKey(ev *eval, i int, prefix, v []byte) {
	g.mac(&ev.sum, prefix, v)
	copy(ev.hashes[i][:], ev.sum[:16])
	ev.bound.add(i)
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
		return nil, said(&Error{Code: CodeRequestTooLarge}, msgBodyTooLarge, strconv.FormatInt(limit, 10))
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
		return nil, said(&Error{Code: CodeRequestTooLarge}, msgBodyTooLarge, strconv.FormatInt(limit, 10))
	}
	if err != nil {
		return nil, said(&Error{Code: CodeMalformedBody, Err: err}, msgBodyUnreadable)
	}
	return b, nil
}

// replayBody hands the body the guard read to the next handler.
type replayBody struct{ bytes.Reader }

func (*replayBody) Close() error { return nil }

// count counts the ceilings, then reserves the failure counters and takes
// the send-rate tokens. A failure counter is incremented before the handler
// runs and given back afterwards unless the request failed, so that
// concurrent requests can never all see a count under the threshold.
//
// A request refused outright leaves nothing behind: a key that alone refuses
// it is judged before the counters it would not need are created. The order
// is three rounds:
//
//  1. the ceilings: one reached refuses the request (429), which then takes
//     no send-rate token and creates no failure counter;
//  2. the failure counters of the coarse keys (those without
//     ResetOnSuccess: an address, a device): one already tripped refuses a
//     request that carries no proof at all (prove asks for a captcha), and
//     then the per-account counters are not created;
//  3. the per-account failure counters (ResetOnSuccess) and the send rates.
//
// Every round increments (reserves) rather than reads, so the concurrency
// guarantee holds in each; a round is judged at once only when it may refuse
// (mayRefuse), so a request under every threshold is judged once. Where rounds are free (the in-process store, a
// plain Store at one call an operation anyway), the three run apart. On a
// Batcher a round is a round trip: rounds 1 and 2 go together and round 3
// after them only when the policy has both ceilings and send rates (two
// round trips, as ceilings always needed); otherwise all go in one, and a
// request refused by a coarse key gives back the per-account counters it
// created, which the store deletes at zero in the same step
// (Store.Incr), so nothing stays behind there either.
//
// Peeking (Check), count reads instead of writing, judges the counts as if
// this request were added, reports no events and returns store failures.
func (gd *Guard) count(ctx context.Context, r *http.Request, ev *eval, mode countMode) error {
	c, free := gd.g.counter, gd.g.freeRounds
	ran, judged := 0, 0 // ev.ops[:ran] have run, ev.ops[:judged] are judged
	gd.addOps(ev, gd.ceilKeys&ev.present, ceilingCount, mode)
	ceilings := len(ev.ops) > 0
	if free && ceilings {
		c.run(ctx, ev, ev.ops, ev.notes)
		ran = len(ev.ops)
		if err := gd.judge(r, ev, 0, mode); err != nil {
			return err
		}
		judged = ran
	}
	gd.addOps(ev, gd.coarseKeys&ev.present, failureCount, mode)
	later := (gd.accountKeys|gd.rateKeys)&ev.present != 0
	if (free || ceilings && gd.rates) && ran < len(ev.ops) && later {
		c.run(ctx, ev, ev.ops[ran:], ev.notes[ran:])
		ran = len(ev.ops)
		// Judged now only if something may refuse: the common request
		// is judged once, after round 3.
		if gd.mayRefuse(ev, judged, mode) {
			if err := gd.judge(r, ev, judged, mode); err != nil {
				return err
			}
			judged = ran
			if mode == serving && ev.tripped != 0 && !gd.dryRun && !gd.carriesProof(r, ev) {
				return nil // refused by the coarse keys alone: prove asks for a captcha
			}
		}
	}
	gd.addOps(ev, gd.accountKeys&ev.present, failureCount, mode)
	gd.addOps(ev, gd.rateKeys&ev.present, sendRate, mode)
	if ran < len(ev.ops) {
		c.run(ctx, ev, ev.ops[ran:], ev.notes[ran:])
	}
	return gd.judge(r, ev, judged, mode)
}

// addOps appends to ev.ops the counters of kind of the keys in set: added
// (reserved, taken) when serving, read when peeking.
func (gd *Guard) addOps(ev *eval, set keySet, kind counterKind, mode countMode) {
	delta := int64(1)
	if mode == peeking {
		delta = 0
	}
	for ; set != 0; set &= set - 1 {
		i := bits.TrailingZeros16(uint16(set))
		k := &gd.keys[i]
		switch op := ev.addOp(kind, i); kind {
		case ceilingCount:
			op.Kind, op.Delta, op.Window = OpIncr, delta, k.ceilWindow
		case failureCount:
			if gd.failLimit(ev, i) > 0 {
				op.Kind, op.Delta, op.Window = OpIncr, delta, gd.failWindow(ev, i)
			} else {
				// Only the failure ceiling counts: the slot becomes it.
				ev.notes[len(ev.notes)-1].kind = failureCeil
				op.Kind, op.Delta, op.Window = OpIncr, delta, k.failCeilWin
				continue
			}
			if k.failCeil > 0 {
				op := ev.addOp(failureCeil, i)
				op.Kind, op.Delta, op.Window = OpIncr, delta, k.failCeilWin
			}
		case sendRate:
			op.Kind, op.Interval, op.Burst, op.Take = OpAllow, k.interval, k.burst, mode == serving
		}
	}
}

// mayRefuse reports whether judging ev.ops from the index from on may
// refuse the request or trip a key: a store failure, or a count past its
// ceiling or threshold (as judge counts them). It only saves the common
// request a judging pass: ops it passes over are judged with round 3's.
func (gd *Guard) mayRefuse(ev *eval, from int, mode countMode) bool {
	this := int64(0)
	if mode == peeking {
		this = 1
	}
	for j := from; j < len(ev.ops); j++ {
		op, k := &ev.ops[j], &gd.keys[ev.notes[j].key]
		switch {
		case op.Err != nil,
			ev.notes[j].kind == failureCount && op.N+this > gd.failLimit(ev, int(ev.notes[j].key)),
			ev.notes[j].kind == failureCeil && op.N+this > k.failCeil,
			ev.notes[j].kind == ceilingCount && op.N+this > int64(k.Ceiling):
			return true
		}
	}
	return false
}

// carriesProof reports whether r carries proof that prove would try: a
// well-formed token or captcha id. It spends nothing.
func (gd *Guard) carriesProof(r *http.Request, ev *eval) bool {
	tok, id, _, err := gd.proof(r, ev)
	return err == nil && (tok != "" || id != "")
}

// judge reads the results of ev.ops from the index from on: it records
// reservations, trips keys and returns the error that refuses the request
// outright (a ceiling reached, or a store failure under FailClosed or in
// Check).
func (gd *Guard) judge(r *http.Request, ev *eval, from int, mode countMode) error {
	g := gd.g
	this := int64(0) // Check judges the counts as if this request were added
	if mode == peeking {
		this = 1
	}
	var failed error
	var retry time.Duration
	blocked := false
	for j := from; j < len(ev.ops); j++ {
		op, note := &ev.ops[j], ev.notes[j]
		i, k := int(note.key), &gd.keys[note.key]
		if op.Err != nil {
			failed = cmp.Or(failed, gd.countFailed(r, ev, note, op.Err, mode))
			continue
		}
		switch note.kind {
		case ceilingCount:
			if mode == serving {
				ev.ceiled.add(i)
			}
			switch {
			case op.N+this <= int64(k.Ceiling):
			case g.counter.estimated(ev, j):
				// The count is a full store's over-estimate (a newcomer's,
				// most likely): a captcha, not a refusal.
				ev.tripped.add(i)
			default:
				blocked = true
				ev.limited.add(i)
				retry = max(retry, gd.noteLimit(ev, i, note.kind, op.Reset.Sub(g.now())))
				if mode == serving {
					gd.lockout(EventCeilingReached, r, ev, i)
				}
			}
		case failureCount:
			if mode == serving {
				ev.reserved.add(i)
				ev.counts[i] = op.N
			}
			// A known device answers for its own failures only: an
			// address or the site tripped by others asks it nothing.
			if op.N+this > gd.failLimit(ev, i) && (ev.trusted == 0 || !gd.coarseKeys.has(i)) {
				ev.tripped.add(i)
				gd.noteLimit(ev, i, failureCount, gd.resetOf(ev, j))
			}
		case failureCeil:
			if mode == serving {
				ev.reserved.add(i)
			}
			switch {
			case op.N+this <= k.failCeil:
			case g.counter.estimated(ev, j):
				ev.tripped.add(i) // a full store's over-estimate: a captcha
			default:
				// Past the account's (or the device's) failure ceiling:
				// refused even with a captcha.
				blocked = true
				ev.limited.add(i)
				retry = max(retry, gd.noteLimit(ev, i, note.kind, op.Reset.Sub(g.now())))
				if mode == serving {
					gd.lockout(EventCeilingReached, r, ev, i)
				}
			}
		case sendRate:
			if op.OK && mode == serving {
				ev.taken.add(i)
			}
			if !op.OK {
				ev.tripped.add(i)
				gd.noteLimit(ev, i, sendRate, op.Wait)
				if mode == serving {
					gd.lockout(EventTripped, r, ev, i)
				}
			}
		}
	}
	if failed != nil {
		return failed
	}
	if blocked && !(gd.dryRun && mode == serving) {
		return gd.setRateLimits(said(&Error{Code: CodeTooManyRequests, RetryAfter: max(retry, time.Second)}, msgLimitReached), ev)
	}
	return nil
}

// countFailed decides on a counter the store failed to count (err), and
// returns the error that refuses the request, if any. Peeking, that is the
// failure itself. Serving, the failure is reported; then a store that is
// full (ErrStoreFull: it could not create the counter) trips the key, under
// either FailMode: the request is asked for a captcha, which costs the
// store nothing when it is a Marker, so a full store degrades to captchas,
// never to 503 and never to an uncounted guess. On other failures, under
// FailOpen the key is skipped, and under FailClosed a ceiling refuses the
// request and any other counter trips its key.
func (gd *Guard) countFailed(r *http.Request, ev *eval, note opNote, err error, mode countMode) error {
	if mode == peeking {
		return unavailableError(err)
	}
	gd.g.storeError(r, gd.name, err)
	switch {
	case storeFull(err):
		ev.tripped.add(int(note.key))
	case gd.g.failMode == FailOpen:
	case note.kind == ceilingCount:
		return unavailableError(err)
	default:
		ev.tripped.add(int(note.key))
	}
	return nil
}

// refund gives back the counters a request reserved and the send-rate
// tokens it took, when it is refused without reaching the handler.
func (gd *Guard) refund(ctx context.Context, ev *eval) {
	gd.giveBack(ctx, ev, ev.reserved, ev.ceiled, 0, ev.taken)
	ev.reserved, ev.ceiled, ev.taken = 0, 0, 0
}

// giveBack decrements the failure counters of keys in fail and the ceiling
// counters of keys in ceil, resets the failure counters of keys in reset,
// and returns the send-rate tokens of keys in tokens (OpReturn). It turns the first of ev.ops into those give-backs and resets (a
// request's last use of its ops) and hands them to the counter, which may
// write them behind; ctx comes from storeContext: the writes outlive a
// client that hung up.
func (gd *Guard) giveBack(ctx context.Context, ev *eval, fail, ceil, reset, tokens keySet) {
	n := 0
	for j := range ev.ops {
		op, note := &ev.ops[j], ev.notes[j]
		i := int(note.key)
		switch {
		case (note.kind == failureCount || note.kind == failureCeil) && reset.has(i):
			op.Kind = OpReset
		case (note.kind == failureCount || note.kind == failureCeil) && fail.has(i), note.kind == ceilingCount && ceil.has(i):
			op.Delta = -1
		case note.kind == sendRate && tokens.has(i):
			op.Kind = OpReturn
		default:
			continue
		}
		if op.Err != nil {
			op.Err = nil
		}
		if n < j {
			ev.ops[n], ev.notes[n] = *op, note
		}
		n++
	}
	if n > 0 {
		gd.g.counter.giveBack(ctx, ev, ev.ops[:n], ev.notes[:n], storeReport{gd.g, ev.in.r, gd.name})
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
	if !gd.settledOne.Load() {
		gd.noteOutcome(outcome != outcomeNone || gw.status != 0)
	}
	gd.settleAs(ctx, ev, outcome)
}

// noteOutcome counts requests that ended with no outcome the guard could
// see, until one ends with one, and warns once when they reach
// unsettledWarn.
func (gd *Guard) noteOutcome(seen bool) {
	if seen {
		gd.settledOne.Store(true)
		return
	}
	if gd.unsettled.Load() < unsettledWarn && gd.unsettled.Add(1) == unsettledWarn { // past it: loads only
		gd.g.logger.Warn("captchagate: a guard saw no outcome of its last requests (no status written through it, "+
			"no Fail or Succeed): it counts no failure. A router that writes responses through a writer of its own, "+
			"or writes errors after the middleware returned, needs its adapter, or Fail(r) and Succeed(r) in the handler",
			"policy", gd.name, "requests", unsettledWarn)
	}
}

// settleAs settles ev's counters as outcome says.
func (gd *Guard) settleAs(ctx context.Context, ev *eval, outcome int32) {
	switch outcome {
	case outcomeFail:
		// The failure that reaches a threshold trips it: the next request
		// needs a captcha.
		for i := range gd.keys {
			if ev.reserved.has(i) && ev.counts[i] == gd.failLimit(ev, i) {
				gd.lockout(EventTripped, ev.in.r, ev, i)
			}
		}
		return
	case outcomeSuccess:
		// The client's own keys (a known device's, per-client Combines)
		// start afresh; the others, the account-wide ones among them, are
		// given back: a success changes nothing another client sees.
		gd.giveBack(ctx, ev, ev.reserved, 0, ev.reserved&(gd.reset|ev.trusted), 0)
		return
	}
	// The request reached the handler: its ceiling count stands.
	gd.giveBack(ctx, ev, ev.reserved, 0, 0, 0)
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
		if reason, err = gd.spendToken(ctx, r, ev, sess, tok); err != nil || reason == "" {
			return err
		}
	case id != "":
		if flow, reason, err = gd.spendAnswer(ctx, r, ev, sess, id, answer); err != nil || reason == "" {
			return err
		}
	}
	// Bound to the keys that tripped and to the request's account and
	// client keys whether they tripped or not: a captcha asked for by an
	// address's trip is still this account's.
	b := g.bindingFor(gd.name, ev.tripped|ev.present&gd.scoped, &ev.hashes, sess)
	b.level = max(gd.level(ev), flow.level)
	c, err := g.issue(ctx, r, b, flow.refreshes)
	if err != nil {
		return err
	}
	if reason != "" {
		return gd.setRateLimits(said(&Error{Code: CodeCaptchaInvalid, Captcha: c}, msgSolveNew, reason), ev)
	}
	return gd.setRateLimits(said(&Error{Code: CodeCaptchaRequired, Captcha: c}, msgTokenRequiredSolve), ev)
}

// spendToken checks token against the request and then consumes it, and
// reports why it does not let the request through ("" if it does). A token
// refused by the check (another request's, expired) is not consumed.
func (gd *Guard) spendToken(ctx context.Context, r *http.Request, ev *eval, sess *[16]byte, tok string) (reason string, err error) {
	g := gd.g
	_, why, err := g.redeem(ctx, tok, func(rec *record) string { return gd.scope(rec, ev, sess, true) })
	if err != nil {
		return "", g.unavailable(r, gd.name, err)
	}
	if why == "" {
		g.emit(Event{Kind: EventTokenAccepted, Policy: gd.name, Request: r})
		return "", nil
	}
	g.emit(Event{Kind: EventTokenRefused, Policy: gd.name, Reason: why, Request: r})
	return "captcha_token " + why, nil
}

// scope reports why the proof rec does not reach this request ("" if it
// does): it must be the policy's, bound to the same values of every key it
// covers and to the session, cover every tripped key of the account or
// the client (Guard.scoped: a captcha from POST new, or from a trip of the
// address alone, opens no tripped account), and, with a Scaler challenge,
// have been issued at the difficulty the request now needs.
func (gd *Guard) scope(rec *record, ev *eval, sess *[16]byte, token bool) string {
	g := gd.g
	var senders [][16]byte
	if token {
		senders = gd.senders(ev, rec)
	}
	switch {
	case !g.matches(rec, gd.name, ev.present, &ev.hashes, sess, senders):
		if rec.flags&flagSender != 0 {
			return reasonSender
		}
		return reasonMismatch
	case ev.tripped&gd.scoped&^rec.mask != 0:
		return reasonMismatch
	}
	if sc, ok := g.challenge.(Scaler); ok && sc.Difficulty(int(rec.level)) < sc.Difficulty(int(gd.level(ev))) {
		return reasonLevel
	}
	return ""
}

// spendAnswer checks captcha id against the request, then consumes it and
// checks answer against it, and reports why it does not let the request
// through ("" if it does); flow is the captcha when it was this policy's,
// whose flow a fresh captcha continues. A captcha refused by the check is
// not consumed.
func (gd *Guard) spendAnswer(ctx context.Context, r *http.Request, ev *eval, sess *[16]byte, id, answer string) (flow record, reason string, err error) {
	g := gd.g
	rec, found, why, err := g.solve(ctx, r, id, answer, func(rec *record) string { return gd.scope(rec, ev, sess, false) })
	if err != nil {
		return flow, "", err
	}
	if found && rec.policy == gd.name {
		flow = rec
	}
	if why == "" {
		g.emit(Event{Kind: EventCaptchaVerified, Policy: gd.name, CaptchaID: id, Mode: g.modeOf(id), Request: r})
		return flow, "", nil
	}
	g.emit(Event{Kind: EventCaptchaRejected, Policy: gd.name, CaptchaID: id, Reason: why, Mode: g.modeOf(id), Request: r})
	return flow, "captcha " + why, nil
}

// proof reads the proof a tripped request carries: a token, or an inline
// answer to a captcha (named by the request, or the session's pending one),
// in the gate's own shape or else a ProofReader dialect's.
// It validates them before anything is spent: a malformed id or answer is an
// invalid_request that spends no captcha and issues none.
func (gd *Guard) proof(r *http.Request, ev *eval) (tok, id, answer string, err error) {
	if !ev.read.done {
		tok, id, answer, err = gd.readProof(r, ev)
		ev.read = proofRead{true, tok, id, answer, err}
	}
	return ev.read.tok, ev.read.id, ev.read.answer, ev.read.err
}

// readProof is proof's first reading.
func (gd *Guard) readProof(r *http.Request, ev *eval) (tok, id, answer string, err error) {
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
				return "", "", "", invalid(CodeMalformedAnswer, AnswerField, msgAnswerMalformed)
			}
		}
	}
	if tok == "" && id == "" && answer == "" {
		p := gd.g.dialectProof(r, ev.in.body)
		tok, id, answer = p.Token, p.CaptchaID, p.Answer
	}
	if tok == "" && id == "" && answer != "" {
		if s := SessionFrom(r); s != nil {
			id = s.Pending
		}
	}
	if id != "" {
		if err := gd.g.checkInline(id, answer); err != nil {
			return "", "", "", err
		}
	}
	return tok, id, answer, nil
}

// level is how far past its threshold the furthest tripped failure key is.
func (gd *Guard) level(ev *eval) uint8 {
	var l int64
	for i := range gd.keys {
		if limit := gd.failLimit(ev, i); ev.tripped.has(i) && ev.reserved.has(i) && limit > 0 {
			l = max(l, ev.counts[i]-limit-1)
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
	if gd.dryRun || ev.allowed || gd.g.allowedNet(r) {
		return nil // nothing is ever asked of it
	}
	ctx, cancel := gd.g.storeContext(r)
	defer cancel()
	if err := gd.count(ctx, r, ev, peeking); err != nil {
		return err
	}
	if ev.tripped != 0 {
		return said(&Error{Code: CodeCaptchaRequired}, msgTokenRequired)
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
		if o == outcomeSuccess && gw.status == 0 && gw.gd != nil {
			gw.gd.setDeviceCookie(gw.ResponseWriter, gw.ev)
		}
	}
}

// guardWriter records the status the handler writes. Unwrap lets
// http.ResponseController reach Flush, Hijack and deadlines. gd and ev are
// the guard and the request's evaluation, for Succeed to set a device
// cookie (Policy.Devices) before the response is written.
type guardWriter struct {
	http.ResponseWriter
	status  int
	outcome atomic.Int32
	gd      *Guard
	ev      *eval
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
