package attack

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/captchagate/captchagate/internal/gatetest"
)

// P2Scenario is one part-2 scenario: it runs on a fresh clock and fresh
// targets of the env and returns its rows.
type P2Scenario struct {
	Name string
	Run  func(e *P2Env) []P2Row
}

// P2Scenarios are part 2's scenarios, in the table's order.
var P2Scenarios = []P2Scenario{
	{"free guesses, one address", func(e *P2Env) []P2Row { return e.freeGuesses([]string{"1a", "1b", "1c", "1d"}, false) }},
	{"free guesses, many addresses", func(e *P2Env) []P2Row { return e.freeGuesses([]string{"1e", "1f", "1g"}, true) }},
	{"guesses per captcha", (*P2Env).perCaptcha},
	{"owner during an attack", (*P2Env).ownerUnderAttack},
	{"regained per owner login", (*P2Env).regained},
	{"password spraying", (*P2Env).spraying},
	{"sms", (*P2Env).sms},
	{"proof scope", (*P2Env).proofScope},
	{"across instances", (*P2Env).instances},
	{"canonical usernames", (*P2Env).usernames},
}

// freeGuesses: an attacker at one account, from one address or a fresh
// address a guess. Guards: the account key's MaxFailures (1a: without it
// the first window's guesses go on past 5) and its failure ceiling (1b, 1c:
// without it the solver's guesses reach the loop's end, 2.5 ceilings).
func (e *P2Env) freeGuesses(ids []string, many bool) []P2Row {
	e.fresh()
	t := e.target()
	one := e.addr()
	src := func() netip.Addr {
		if many {
			return e.addr()
		}
		return one
	}
	how := "one address"
	if many {
		how = "a new address a guess"
	}

	// One window, no solver: guesses until the first that is not let
	// through.
	free, stop := 0, p2resp{}
	for range 4 * P2MaxFailures {
		if stop = e.send(t, guess("victim", src())); !stop.reached() {
			break
		}
		free++
	}
	// The rest of the day with a perfect solver, until a 429.
	reached, captchas, last := free, 0, p2resp{}
	for range P2FailureCeiling * 5 / 2 {
		r, solved := e.attempt(t, guess("victim", src()))
		if solved {
			captchas++
		}
		if r.reached() {
			reached++
		}
		last = r
		if r.status == http.StatusTooManyRequests {
			break
		}
	}
	withSolver := e.send(t, guess("victim", src())) // a 429 answers before a captcha is asked
	e.clk.Advance(24 * time.Hour)
	nextDay := e.send(t, guess("victim", src()))

	// No solver, one window after another: what a patient attacker gets
	// free in a day.
	perDay, windows := 0, 0
	for ; windows < 2*P2FailureCeiling/P2MaxFailures; windows++ {
		got := 0
		for range 4 * P2MaxFailures {
			if r := e.send(t, guess("patient", src())); !r.reached() {
				break
			}
			got++
		}
		perDay += got
		if got == 0 {
			break
		}
		e.clk.Advance(P2Window)
	}
	rows := []P2Row{
		{ID: ids[0], Measure: "free guesses at one account per 15-min window, no captcha (" + how + ")",
			Goal:  fmt.Sprintf("≤ %d (MaxFailures)", P2MaxFailures),
			Value: fmt.Sprintf("%d, then %d", free, stop.status),
			Pass:  free <= P2MaxFailures && stop.status == http.StatusPreconditionRequired, Enforced: true},
		{ID: ids[1], Measure: "guesses at one account per day with a perfect solver (" + how + ")",
			Goal: fmt.Sprintf("≤ %d (FailureCeiling), then 429", P2FailureCeiling),
			Value: fmt.Sprintf("%d (%d captchas solved), then %d with Retry-After %s s; after 24 h: %d",
				reached, captchas, withSolver.status, withSolver.retryAfter, nextDay.status),
			Pass: reached <= P2FailureCeiling && last.status == http.StatusTooManyRequests &&
				withSolver.status == http.StatusTooManyRequests, Enforced: true},
		{ID: ids[2], Measure: "free guesses at one account per day, no solver, 15-min window after window (" + how + ")",
			Goal:  fmt.Sprintf("≤ %d (FailureCeiling)", P2FailureCeiling),
			Value: fmt.Sprintf("%d in %d windows", perDay, windows),
			Pass:  perDay <= P2FailureCeiling, Enforced: true},
	}
	if !many {
		// The 429 says when to come back: the rest of the ceiling's day
		// (the clock did not move between the first failure and it).
		ra, _ := strconv.Atoi(withSolver.retryAfter)
		rows = append(rows, P2Row{ID: ids[3], Measure: "Retry-After of the 429 at the account's failure ceiling (one address)",
			Goal:     "the ceiling window's rest (24 h here)",
			Value:    fmt.Sprintf("%s s", withSolver.retryAfter),
			Pass:     time.Duration(ra)*time.Second >= 24*time.Hour-time.Minute,
			Enforced: true})
	}
	return rows
}

// perCaptcha: each solved captcha's token tried by TokenRacers concurrent
// wrong guesses at a tripped account. Guards: single use of tokens
// (consume-once; without it every racer reaches the handler).
func (e *P2Env) perCaptcha() []P2Row {
	e.fresh()
	t := e.target()
	src := e.addr()
	for range P2MaxFailures {
		e.send(t, guess("victim", src))
	}
	most, total, solved := 0, 0, 0
	for range e.s.TokenTrials {
		r := e.send(t, guess("victim", src))
		if r.status != http.StatusPreconditionRequired {
			e.t.Errorf("per captcha: the tripped account answered %d, want 428", r.status)
			continue
		}
		tok := e.solve(t, r.captchaID, src, "")
		if tok == "" {
			e.t.Error("per captcha: the solver got no token")
			continue
		}
		solved++
		var n atomic.Int64
		q := guess("victim", src)
		q.token = tok
		gatetest.Together(e.s.TokenRacers, func() {
			if e.send(t, q).reached() {
				n.Add(1)
			}
		})
		total += int(n.Load())
		most = max(most, int(n.Load()))
	}
	return []P2Row{{ID: "2", Measure: fmt.Sprintf("guesses per solved captcha (%d tokens, each sent by %d requests at once)",
		solved, e.s.TokenRacers),
		Goal:  "1",
		Value: fmt.Sprintf("at most %d (%d guesses for %d captchas)", most, total, solved),
		Pass:  most <= 1 && total == solved && solved > 0, Enforced: true}}
}

// ownerUnderAttack: Attackers goroutines with a perfect solver, a fresh
// address an attempt, at the owner's account while the owner signs in from
// the device of an earlier success, and from a new device. Guards: device
// cookies (3a: without them the owner meets the account's captcha and then
// its ceiling), the failure ceiling under concurrency (3c).
func (e *P2Env) ownerUnderAttack() []P2Row {
	e.fresh()
	t := e.target()
	home := e.addr()
	first := e.send(t, rightLogin("owner", home))
	dev := first.device
	if first.status != http.StatusOK || dev == "" {
		e.t.Errorf("owner: first login %d, device cookie %q: want 200 and a cookie", first.status, dev)
	}

	var next atomic.Int64
	attackers := make(map[int]int)
	var mu sync.Mutex
	var done atomic.Bool
	var known, knownFree int
	rounds := e.s.OwnerRounds
	knownStatuses := map[int]int{}
	newDev := map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the owner, known device and new devices, while the attack lasts
		defer wg.Done()
		for i := 0; ; i++ {
			if done.Load() {
				if rounds == 0 {
					break
				}
				rounds-- // the rounds after the attack
			}
			q := rightLogin("owner", home)
			q.cookie = dev
			r := e.send(t, q)
			known++
			knownStatuses[r.status]++
			if r.status == http.StatusOK {
				knownFree++
			}
			if i%4 == 0 {
				r, solved := e.attempt(t, rightLogin("owner", e.addr()))
				newDev[newDevOutcome(r, solved)]++
			}
		}
	}()
	gatetest.Together(e.s.Attackers, func() {
		st := map[int]int{}
		for next.Add(1) <= int64(e.s.AttackGuesses) {
			r, _ := e.attempt(t, guess("owner", e.addr()))
			st[r.status]++
		}
		mu.Lock()
		for k, v := range st {
			attackers[k] += v
		}
		mu.Unlock()
	})
	done.Store(true)
	wg.Wait()
	after, _ := e.attempt(t, rightLogin("owner", e.addr()))
	reached := attackers[http.StatusUnauthorized]
	return []P2Row{
		{ID: "3a", Measure: fmt.Sprintf("owner's known device during a full-speed attack (%d attempts with a solver, %d at once, a new address each): logins served without a captcha",
			e.s.AttackGuesses, e.s.Attackers),
			Goal:  "100%, never 429",
			Value: pct(knownFree, known) + "; " + statusList(knownStatuses),
			Pass:  knownFree == known && known > 0, Enforced: true},
		{ID: "3b", Measure: "owner on a new device during the attack (solves a captcha when asked); after it",
			Value: fmt.Sprintf("%s; after: %s", outcomes(newDev), withRetry(after))},
		{ID: "3c", Measure: "attacker's guesses that reached the handler during that attack",
			Goal:  fmt.Sprintf("≤ %d (FailureCeiling)", P2FailureCeiling),
			Value: fmt.Sprintf("%d; attackers' answers %s", reached, statusList(attackers)),
			Pass:  reached <= P2FailureCeiling, Enforced: true},
	}
}

// instanceCount is how many instances a scenario that runs across
// instances where it can uses: two sharing one Redis, one memstore gate.
func (e *P2Env) instanceCount() int {
	if e.b.Redis {
		return 2
	}
	return 1
}

func sentBy(ts []*P2Target) int {
	n := 0
	for _, t := range ts {
		n += int(t.sent.Load())
	}
	return n
}

func withRetry(r p2resp) string {
	if r.retryAfter == "" {
		return fmt.Sprint(r.status)
	}
	return fmt.Sprintf("%d (Retry-After %s s)", r.status, r.retryAfter)
}

func newDevOutcome(r p2resp, solved bool) string {
	switch {
	case r.status == http.StatusOK && solved:
		return "served after a captcha"
	case r.status == http.StatusOK:
		return "served"
	}
	return fmt.Sprint(r.status)
}

func outcomes(m map[string]int) string {
	s := ""
	for _, k := range []string{"served", "served after a captcha", "429", "428", "403", "503", "0"} {
		if m[k] > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", m[k], k)
		}
	}
	return s
}

// regained: the guesses an attacker without a solver gets at one account,
// without and with the owner signing in (known device and new device in
// turn) every third guess. Guards: account-wide keys never reset on
// success (with the old reset, each owner login hands the attacker 5 more).
func (e *P2Env) regained() []P2Row {
	run := func(owner bool) (reached, logins, served int) {
		e.fresh()
		t := e.target()
		home, bot := e.addr(), e.addr()
		dev := e.send(t, rightLogin("owner", home)).device
		for i := range 30 {
			if owner && i%3 == 2 {
				q := rightLogin("owner", home)
				if logins%2 == 0 {
					q.cookie = dev
				} else {
					q.src = e.addr()
				}
				r, _ := e.attempt(t, q)
				logins++
				if r.status == http.StatusOK {
					served++
				}
			}
			if e.send(t, guess("owner", bot)).reached() {
				reached++
			}
		}
		return reached, logins, served
	}
	without, _, _ := run(false)
	with, logins, served := run(true)
	per := float64(with-without) / float64(max(served, 1))
	return []P2Row{{ID: "4", Measure: fmt.Sprintf("free guesses the attacker regains per successful owner login (30 guesses; %d owner logins, known and new device in turn)", logins),
		Goal:  "0",
		Value: fmt.Sprintf("%.1f (%d reached without the owner, %d with; %d logins served)", per, without, with, served),
		Pass:  with == without && served == logins, Enforced: true}}
}

// spraying: one wrong guess at each of SprayAccounts accounts from
// SprayAddrs addresses, Attackers at once. Guards: the site-wide key
// (without it every guess reaches the handler: no account, no address
// trips).
func (e *P2Env) spraying() []P2Row {
	e.fresh()
	t := e.target()
	home := e.addr()
	dev := e.send(t, rightLogin("owner", home)).device
	addrs := make([]netip.Addr, e.s.SprayAddrs)
	for i := range addrs {
		addrs[i] = e.addr()
	}
	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	firstTrip := -1
	gatetest.Together(e.s.Attackers, func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= e.s.SprayAccounts {
				return
			}
			r := e.send(t, guess(fmt.Sprint("user", i), addrs[i%len(addrs)]))
			mu.Lock()
			statuses[r.status]++
			if r.status == http.StatusPreconditionRequired && (firstTrip < 0 || i < firstTrip) {
				firstTrip = i
			}
			mu.Unlock()
		}
	})
	reached := statuses[http.StatusUnauthorized]
	newcomer := e.send(t, rightLogin("newcomer", e.addr()))
	nc, solved := e.attempt(t, rightLogin("newcomer", e.addr()))
	q := rightLogin("owner", home)
	q.cookie = dev
	owner := e.send(t, q)
	margin := e.s.Attackers
	return []P2Row{
		{ID: "5a", Measure: fmt.Sprintf("password spraying, one wrong guess at each of %d accounts from %d addresses (%d at once): guesses that reached the handler without a captcha",
			e.s.SprayAccounts, e.s.SprayAddrs, e.s.Attackers),
			Goal:  fmt.Sprintf("≤ %d (site key's MaxFailures) + %d (requests in flight)", P2SiteFailures, margin),
			Value: fmt.Sprintf("%d; site key tripped from guess #%d; answers %s", reached, firstTrip+1, statusList(statuses)),
			Pass:  reached <= P2SiteFailures+margin && reached < e.s.SprayAccounts, Enforced: true},
		{ID: "5b", Measure: "after the trip: a newcomer from a new address; the owner's known device",
			Goal:  "newcomer: captcha, then served; known device: served, no captcha",
			Value: fmt.Sprintf("newcomer %d, then %d after a captcha; known device %d", newcomer.status, nc.status, owner.status),
			Pass: newcomer.status == http.StatusPreconditionRequired && nc.status == http.StatusOK && solved &&
				owner.status == http.StatusOK, Enforced: true},
	}
}

// Separators only: the core's phone key drops them today.
var p2Separated = []string{"+15550001234", "+1 555 000 1234", "+1 (555) 000-1234", "+1-555-000-1234", "+1.555.000.1234",
	"+1 555\u00a0000 1234"}

// Other writings of the same number: an international prefix of 00, the
// country code without '+', fullwidth digits, Arabic-Indic digits.
var p2Written = append(append([]string(nil), p2Separated...),
	"001 555 000 1234", "00 1 (555) 000-1234",
	"＋１ ５５５ ０００ １２３４", "+١٥٥٥٠٠٠١٢٣٤", "+۱۵۵۵۰۰۰۱۲۳۴")

// sms: codes sent to one number written many ways, each attempt from a new
// address with a solver; and to unique numbers from unique addresses. Guards:
// the number's ceiling (6a, 6b; without it the solver's sends reach the
// loop's end) on a canonical key (6b), and the site-wide send ceiling (6c:
// without it every unique number gets its code).
func (e *P2Env) sms() []P2Row {
	variants := func(ws []string) (int, map[int]int) {
		e.fresh()
		ts := e.targets(e.instanceCount())
		st := map[int]int{}
		for i := range e.s.SMSAttempts {
			r, _ := e.attempt(ts[i%len(ts)], smsTo(ws[i%len(ws)], e.addr()))
			st[r.status]++
		}
		return sentBy(ts), st
	}
	sepSent, sepSt := variants(p2Separated)
	allSent, allSt := variants(p2Written)

	e.fresh()
	ts := e.targets(e.instanceCount())
	st := map[int]int{}
	captchas := 0
	for i := range e.s.SMSNumbers {
		r, solved := e.attempt(ts[i%len(ts)], smsTo(fmt.Sprintf("+1777%07d", i), e.addr()))
		st[r.status]++
		if solved {
			captchas++
		}
	}
	site := sentBy(ts)
	return []P2Row{
		{ID: "6a", Measure: fmt.Sprintf("codes sent to one number written %d ways with separators (%d attempts, a new address each, with a solver; on Redis at instances A and B in turn)",
			len(p2Separated), e.s.SMSAttempts),
			Goal:  fmt.Sprintf("≤ %d (the number's Ceiling)", P2PhoneCeiling),
			Value: fmt.Sprintf("%d; answers %s", sepSent, statusList(sepSt)),
			Pass:  sepSent <= P2PhoneCeiling, Enforced: true},
		{ID: "6b", Measure: fmt.Sprintf("codes sent to one number written %d ways (00 prefix, fullwidth, Arabic-Indic digits too; %d attempts as in 6a)",
			len(p2Written), e.s.SMSAttempts),
			Goal:  fmt.Sprintf("≤ %d (the number's Ceiling)", P2PhoneCeiling),
			Value: fmt.Sprintf("%d; answers %s", allSent, statusList(allSt)),
			Pass:  allSent <= P2PhoneCeiling, Enforced: CanonicalIdentities,
			Note: "canonical phone numbers not merged in this branch"},
		{ID: "6c", Measure: fmt.Sprintf("codes sent site wide: %d unique numbers from %d unique addresses, with a solver (on Redis at A and B in turn)", e.s.SMSNumbers, e.s.SMSNumbers),
			Goal:  fmt.Sprintf("≤ %d (site-wide send Ceiling)", P2SiteSendCeiling),
			Value: fmt.Sprintf("%d (captchas solved %d); answers %s", site, captchas, statusList(st)),
			Pass:  site <= P2SiteSendCeiling && site < e.s.SMSNumbers, Enforced: true},
	}
}

// proofScope: tokens and captchas used beyond what they were issued for,
// each refused, and each refused token still good for its own request.
// Guards: proof scope (a token is bound to the account keys, the policy,
// the session), and checking it before consuming the token.
func (e *P2Env) proofScope() []P2Row {
	e.fresh()
	t := e.target()
	src := e.addr()
	trip := func(user string) p2resp {
		var r p2resp
		for range P2MaxFailures + 1 {
			r = e.send(t, guess(user, src))
		}
		return r
	}
	tokenFor := func(r p2resp, session string) string {
		if r.status != http.StatusPreconditionRequired {
			e.t.Errorf("proof scope: want a 428 to solve, got %d", r.status)
			return ""
		}
		return e.solve(t, r.captchaID, src, session)
	}
	row := func(id, measure string, refused p2resp, own p2resp, ownApplies bool) P2Row {
		v := fmt.Sprintf("%d (error_code %d)", refused.status, refused.code)
		pass := refused.status == http.StatusForbidden
		if ownApplies {
			v += fmt.Sprintf("; then for its own request: %d", own.status)
			pass = pass && own.status == http.StatusOK
		}
		goal := "refused (0 accepted)"
		if ownApplies {
			goal += "; still good for its own request"
		}
		return P2Row{ID: id, Measure: measure, Goal: goal, Value: v, Pass: pass, Enforced: true}
	}

	// A token for alice used for bob.
	ta := tokenFor(trip("alice"), "")
	trip("bob")
	q := rightLogin("bob", src)
	q.token = ta
	forBob := e.send(t, q)
	q = rightLogin("alice", src)
	q.token = ta
	forAlice := e.send(t, q)

	// A token of the login policy at the SMS route (its number tripped).
	tl := tokenFor(trip("carol"), "")
	for range P2PhoneBurst {
		e.send(t, smsTo("+15550009999", src))
	}
	s := smsTo("+15550009999", src)
	s.token = tl
	atSMS := e.send(t, s)
	q = rightLogin("carol", src)
	q.token = tl
	carol := e.send(t, q)

	// A captcha from POST new at a tripped account.
	n := e.send(t, p2req{path: "/captcha/new", src: src, body: map[string]string{"policy": "login"}})
	tn := e.solve(t, n.captchaID, src, "")
	trip("dave")
	q = rightLogin("dave", src)
	q.token = tn
	fromNew := e.send(t, q)

	// A captcha solved in one session, its token used in another.
	trip("erin")
	q = rightLogin("erin", src)
	q.session = "session-one-0123456789"
	ts := tokenFor(e.send(t, q), q.session)
	q.token = ts
	q.session = "session-two-0123456789"
	otherSession := e.send(t, q)
	q.session = "session-one-0123456789"
	sameSession := e.send(t, q)

	// Bob's captcha answered inline in alice's request (alice is still
	// tripped: her success reset nothing account-wide).
	cb := e.send(t, guess("bob", src))
	q = rightLogin("alice", src)
	q.body["captcha_id"], q.body["captcha_answer"] = cb.captchaID, gatetest.Answer
	inline := e.send(t, q)
	stillBob := p2resp{status: http.StatusForbidden}
	if e.solve(t, cb.captchaID, src, "") != "" {
		stillBob.status = http.StatusOK
	}

	return []P2Row{
		row("7a", "a token solved for alice, used for bob", forBob, forAlice, true),
		row("7b", "a token of the login policy at the SMS route", atSMS, carol, true),
		row("7c", "a captcha from POST /captcha/new at a tripped account", fromNew, p2resp{}, false),
		row("7d", "a token solved in one session, used in another", otherSession, sameSession, true),
		row("7e", "bob's captcha answered inline in alice's request (own request: bob's captcha verified after)", inline, stillBob, true),
	}
}

// instances: two instances of the target sharing one Redis key prefix and
// the secret (Redis only). Guards: device cookies verified by the secret,
// not by instance state (8a), and the device's own counters in the shared
// store (8b: a device budget kept per instance would give 5 more at B); the site key
// counted in the shared store (8c: without it each instance lets its own
// threshold through); proof scope across instances (8d).
func (e *P2Env) instances() []P2Row {
	if !e.b.Redis {
		// Two gates on one memstore do not share counts (each hashes its
		// keys with seeds of its own): the in-memory store's state is one
		// gate's, and memstore says to use Redis across instances.
		na := "n/a (one gate's state; Redis across instances)"
		return []P2Row{{ID: "8a", NA: true, Value: na}, {ID: "8b", NA: true, Value: na}, {ID: "8c", NA: true, Value: na},
			{ID: "8d", NA: true, Value: na}}
	}
	// 8a: a device cookie from A at B, the account tripped on A.
	e.fresh()
	ts := e.targets(2)
	a, b := ts[0], ts[1]
	home, bot := e.addr(), e.addr()
	dev := e.send(a, rightLogin("owner", home)).device
	for range P2MaxFailures {
		e.send(a, guess("owner", bot))
	}
	a.Flush()
	untrusted := e.send(b, rightLogin("owner", e.addr()))
	q := rightLogin("owner", home)
	q.cookie = dev
	known := e.send(b, q)
	// Its success's reset is written behind by B: once written, not before
	// (README), so A's failures below must not race it.
	b.Flush()
	// 8b: the known device's own budget: its failures on A count at B, its
	// success on B resets it at A.
	w := guess("owner", home)
	w.cookie = dev
	for range P2MaxFailures {
		e.send(a, w)
	}
	a.Flush()
	devTripped := e.send(b, w)
	devOK, _ := e.attempt(b, q)
	b.Flush()
	devReset := e.send(a, w)

	// 8c: spraying alternately at A and B.
	e.fresh()
	ts = e.targets(2)
	reached, total := [2]int{}, 2*P2SiteFailures
	addrs := []netip.Addr{e.addr(), e.addr(), e.addr(), e.addr()}
	for i := range total {
		if e.send(ts[i%2], guess(fmt.Sprint("user", i), addrs[i%len(addrs)])).reached() {
			reached[i%2]++
		}
	}

	// 8d: a token minted on A, at B for another account, then for its own.
	e.fresh()
	ts = e.targets(2)
	a, b = ts[0], ts[1]
	src := e.addr()
	var r p2resp
	for range P2MaxFailures + 1 {
		r = e.send(a, guess("alice", src))
	}
	tok := e.solve(a, r.captchaID, src, "")
	for range P2MaxFailures {
		e.send(a, guess("bob", src))
	}
	a.Flush()
	q = rightLogin("bob", src)
	q.token = tok
	forBob := e.send(b, q)
	q = rightLogin("alice", src)
	q.token = tok
	forAlice := e.send(b, q)
	b.Flush()
	again := e.send(a, q)

	return []P2Row{
		{ID: "8a", Measure: "instance B, the account tripped on A: the owner's device cookie from A; a new device",
			Goal:  "known device served without a captcha; new device 428",
			Value: fmt.Sprintf("known device %d; new device %d", known.status, untrusted.status),
			Pass:  dev != "" && known.status == http.StatusOK && untrusted.status == http.StatusPreconditionRequired, Enforced: true},
		{ID: "8b", Measure: "the known device's own budget: 5 failures on A, then at B; its success on B (after a captcha); then at A",
			Goal:  "428; 200; 401 (reset)",
			Value: fmt.Sprintf("%d; %d; %d", devTripped.status, devOK.status, devReset.status),
			Pass: devTripped.status == http.StatusPreconditionRequired && devOK.status == http.StatusOK &&
				devReset.status == http.StatusUnauthorized, Enforced: true},
		{ID: "8c", Measure: fmt.Sprintf("site key across instances: %d sprayed guesses, A and B in turn: reached", total),
			Goal:  fmt.Sprintf("≤ %d in all (one site key)", P2SiteFailures),
			Value: fmt.Sprintf("%d (A %d, B %d)", reached[0]+reached[1], reached[0], reached[1]),
			Pass:  reached[0]+reached[1] <= P2SiteFailures, Enforced: true},
		{ID: "8d", Measure: "a token minted on A: at B for another account; at B for its own; again at A",
			Goal:  "403; accepted; 403 (spent)",
			Value: fmt.Sprintf("%d; %d; %d", forBob.status, forAlice.status, again.status),
			Pass: tok != "" && forBob.status == http.StatusForbidden && forAlice.status == http.StatusOK &&
				again.status == http.StatusForbidden, Enforced: true},
	}
}

// usernames: free guesses at one account whose name is written a different
// way each guess, and on Redis sent to two instances in turn. Guards: the
// account key's canonical form (9a: case folding; 9b: NFKC too), counted
// in the shared store. Without it each writing is an account of its own
// with five free guesses.
func (e *P2Env) usernames() []P2Row {
	n, where := e.instanceCount(), "one instance"
	if n > 1 {
		where = "instances A and B in turn"
	}
	// Every name is sent 8 times, a new address each: what reaches the
	// handler without a captcha is what the writings are worth.
	free := func(names []string) (int, map[int]int) {
		e.fresh()
		ts := e.targets(n)
		got, st := 0, map[int]int{}
		for i := range 8 * len(names) {
			r := e.send(ts[i%n], guess(names[i%len(names)], e.addr()))
			st[r.status]++
			if r.reached() {
				got++
			}
		}
		return got, st
	}
	folded := []string{"alice", "Alice", "ALICE", "aLiCe", "alicE", "ALice"}
	compat := []string{"alice", "ａｌｉｃｅ", "Alice", "ＡＬＩＣＥ", "ALICE", "Ａlice", "aLiCe", "alｉce"}
	nf, stF := free(folded)
	nc, stC := free(compat)
	return []P2Row{
		{ID: "9a", Measure: fmt.Sprintf("free guesses at one account, its name written %d ways (case), each 8 times from a new address (on Redis at instances A and B in turn)", len(folded)),
			Goal:  fmt.Sprintf("≤ %d (MaxFailures)", P2MaxFailures),
			Value: fmt.Sprintf("%d (%s); answers %s", nf, where, statusList(stF)),
			Pass:  nf <= P2MaxFailures, Enforced: true},
		{ID: "9b", Measure: fmt.Sprintf("the same, written %d ways with fullwidth letters too", len(compat)),
			Goal:  fmt.Sprintf("≤ %d (MaxFailures)", P2MaxFailures),
			Value: fmt.Sprintf("%d; answers %s", nc, statusList(stC)),
			Pass:  nc <= P2MaxFailures, Enforced: CanonicalIdentities,
			Note: "canonical usernames (NFKC) not merged in this branch"},
	}
}
