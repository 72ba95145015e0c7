package captchagate

import (
	"net/http"
	"strings"
)

// Arg is a key whose value the handler passes to Guard.Begin: the value it
// parsed itself and will authenticate, so that the key the guard counts is
// the identity the application uses, whatever shape the request had. Its
// values are trimmed, canonicalised (with an Identity) and bounded as every
// source's are. The key's name is "arg:" and name, which must be unique
// among the policy's keys. Under Guard.Wrap an Arg key is absent (and, as
// an account key, refused): use it with Begin. Arg panics if name is empty,
// longer than 64 bytes, or holds a '+' or a control character.
//
//	captchagate.Username(captchagate.Arg("username"))
func Arg(name string) Source {
	key := "arg:" + strings.TrimPrefix(funcName("Arg", name), "func:")
	return Source{name: key, extract: func(in *input, dst []byte) ([]byte, bool) {
		v, ok := in.args[name]
		if !ok {
			return dst, false
		}
		return append(dst, v...), true
	}}
}

// Attempt is a request the explicit mode let through (Guard.Begin): the
// handler reports its outcome with Fail, Succeed or End, exactly once. It
// is not safe for concurrent use.
type Attempt struct {
	gd   *Guard
	ev   *eval
	w    http.ResponseWriter
	r    *http.Request
	done bool
}

// Begin is the explicit mode of the guard: a handler that parsed the
// request itself passes the values of the policy's Arg keys (by Arg name)
// and gets the middleware's decision, proof handling, binding and counting,
// with no second reading of the request that could differ from its own.
// Keys of other sources (ClientIP, Header, ...) are read from r as Wrap
// reads them.
//
// proof is the captcha_token, or the captcha id and answer, the handler
// read from the request; if it is the zero Proof, Begin reads proof from r
// as Wrap does (the X-Captcha-Token header, or the body's captcha_token,
// captcha_id and captcha_answer if r.Body has not been read).
//
// When Begin returns an error, answer it with Gate.Error (a captcha_required
// carrying the captcha, a too_many_requests, an invalid_request for a
// missing account value...) and stop: nothing is counted. Otherwise
// authenticate, then call exactly one of the Attempt's Fail, Succeed or End;
// Succeed must come before the response is written, since with
// Policy.Devices it sets the device cookie on w.
//
//	a, err := guard.Begin(w, r, map[string]string{"username": req.Username}, captchagate.Proof{Token: req.CaptchaToken})
//	if err != nil {
//		gate.Error(w, r, err)
//		return
//	}
//	if !checkPassword(req.Username, req.Password) {
//		a.Fail()
//		http.Error(w, "wrong username or password", http.StatusUnauthorized)
//		return
//	}
//	a.Succeed()
func (gd *Guard) Begin(w http.ResponseWriter, r *http.Request, args map[string]string, proof Proof) (*Attempt, error) {
	ev := getEval()
	ev.in.args = args
	if err := gd.extract(r, ev); err != nil {
		putEval(ev)
		return nil, err
	}
	if proof != (Proof{}) {
		if err := gd.g.checkProof(proof); err != nil {
			putEval(ev)
			return nil, err
		}
		ev.read = proofRead{done: true, tok: proof.Token, id: proof.CaptchaID, answer: proof.Answer}
	}
	if ev.allowed || gd.g.allowedNet(r) {
		// Allowed (Key.Allow, Config.AllowNetworks): not counted.
		return &Attempt{gd: gd, ev: ev, w: w, r: r}, nil
	}
	if err := gd.admit(r, ev); err != nil {
		putEval(ev)
		return nil, err
	}
	if gd.rlAllowed {
		gd.allowedRateLimits(w.Header(), ev)
	}
	return &Attempt{gd: gd, ev: ev, w: w, r: r}, nil
}

// checkProof validates proof a handler passed, as readProof validates what
// it reads: nothing is spent on a malformed one.
func (g *Gate) checkProof(p Proof) error {
	switch {
	case p.Token != "":
		if !validToken(p.Token) {
			return invalid(CodeMalformedCaptchaID, TokenField, msgNotToken)
		}
	case p.CaptchaID != "":
		return g.checkInline(p.CaptchaID, p.Answer)
	case p.Answer != "":
		return invalid(CodeMissingCaptchaID, IDField, msgIDWithAnswer)
	}
	return nil
}

// checkInline validates an inline answer's captcha id and answer.
func (g *Gate) checkInline(id, answer string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return g.checkAnswer(answer)
}

// Fail records that the attempt failed (a wrong password): its failure
// counts.
func (a *Attempt) Fail() { a.end(outcomeFail) }

// Succeed records that the attempt succeeded: the client's own keys (a
// known device's, per-client Combines) are reset, account-wide ones only
// given back, and with Policy.Devices a device cookie is set on the
// ResponseWriter passed to Begin, so call it before writing the response.
func (a *Attempt) Succeed() {
	if a != nil && !a.done {
		a.gd.setDeviceCookie(a.w, a.ev)
	}
	a.end(outcomeSuccess)
}

// End records that the attempt neither failed nor succeeded (a bad request
// the handler refused before checking anything): nothing counts. After
// Fail or Succeed it does nothing, so `defer a.End()` is safe.
func (a *Attempt) End() { a.end(outcomeNone) }

func (a *Attempt) end(outcome int32) {
	if a == nil || a.done {
		return
	}
	a.done = true
	ctx, cancel := a.gd.g.storeContext(a.r)
	if a.ev.reserved != 0 {
		a.gd.settleAs(ctx, a.ev, outcome)
	}
	cancel()
	a.ev.dropOps()
	putEval(a.ev)
	a.ev = nil
}
