// Package webex is the dialect of the Webex meetings SDK's password and
// captcha flow (@webex/plugin-meetings, its meeting-info-v2 and
// Meeting.verifyPassword and refreshCaptcha; seeds 000 and 001) for
// captchagate. The same gate, counters, binding and single-use proof speak
// the SDK's shapes:
//
//	POST /meetingInfo {"meetingKey":"…","password":"…","captchaID":"…","captchaVerifyCode":"…"}
//	  a tripped flow without proof, or with a wrong, used or expired captcha:
//	  423 {"code":423005,"message":"…","captchaID":"…","verificationImageURL":"https://…",
//	       "verificationAudioURL":"https://…","refreshURL":"https://…/refresh?captcha_id=…"}
//	  (423006 when a captcha was answered wrong or was used); a wrong password
//	  is the application's own 403 with its 403xxx code.
//	POST {refreshURL}&siteFullName=host {"captchaId":"…"}
//	  200 {"captchaID":"…","verificationImageURL":"…","verificationAudioURL":"…"}
//
// The SDK reads captchaID and captchaVerifyCode from nowhere but these
// members and the refresh's id from the body only (its refreshURL stays the
// first one it was given, so the query's id is stale after a refresh). The
// refreshURL must be absolute: set captchagate.Config.BaseURL.
//
// After a wrong password sent with a right captcha the SDK refreshes the
// captcha it has just used (a workaround in the SDK for its service). The
// gate never accepts a used captcha again, and its Refresh refuses one; a
// Dialect that ran the request through Begin keeps the flow of every captcha
// it handed out, so that a used captcha's id can be refreshed once into a
// new captcha for the same flow and binding (issued by the same guard for
// the same key values, the refresher's address and session), counted against
// the flow's refresh limit. Without Begin (a guard's Wrap, with the Dialect
// as ProofReader) the used id's refresh is answered not_found.
//
// Register it as a dialect and as the error handler:
//
//	d := webex.New(webex.Options{})
//	gate, err := captchagate.New(captchagate.Config{
//		BaseURL:      "https://meet.example.com",
//		Dialects:     []captchagate.Dialect{d},
//		ErrorHandler: d.Error,
//	})
package webex

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/captchagate/captchagate"
)

// The captcha codes of the 423 answers, from the SDK's
// CAPTCHA_ERROR_REQUIRES_PASSWORD_CODES: both tell the SDK that the password
// is still required beside the captcha.
const (
	// CodeCaptchaRequired answers a tripped request that carried no captcha
	// ("PasswordError too many time, please input captcha code").
	CodeCaptchaRequired = 423005
	// CodeCaptchaInvalid answers a request whose captcha was wrong, used,
	// expired or issued for another request; the body carries a new one.
	CodeCaptchaInvalid = 423006
)

// Options configures a Dialect. The zero value is usable.
type Options struct {
	// RequiredCode and InvalidCode are the body codes of the 423 answers.
	// Default CodeCaptchaRequired and CodeCaptchaInvalid; any 423xxx works
	// with the SDK, which tells a captcha by the status alone.
	RequiredCode, InvalidCode int

	// MaxFlows bounds the flows the Dialect keeps for refreshes after use
	// (one entry per captcha handed out through Begin, until the captcha
	// expires). Default 100000. When it is full, Begin keeps no new flow
	// (the used id's refresh is then answered not_found) and a refresh
	// after use that cannot keep its new captcha is refused
	// too_many_requests: the refresh limit is never lost.
	MaxFlows int

	// Now returns the current time; give it the gate's Config.Now. Default
	// time.Now.
	Now func() time.Time
}

// Dialect speaks the Webex SDK's shapes: a captchagate.Dialect (the
// refresh), a captchagate.ProofReader (captchaID and captchaVerifyCode on
// guarded requests) and, in Error, a captchagate.ErrorHandler (the 423).
// Create it with New; it is safe for concurrent use.
type Dialect struct {
	required, invalid int
	maxFlows          int
	now               func() time.Time

	mu    sync.Mutex
	flows map[string]*flow
}

// flow is what a refresh after use needs of a captcha handed out through
// Begin: the guard and key values that issued it, and how many refreshes
// its flow has left.
type flow struct {
	guard   *captchagate.Guard
	args    map[string]string
	left    int
	expires time.Time
}

var (
	_ captchagate.Dialect     = (*Dialect)(nil)
	_ captchagate.ProofReader = (*Dialect)(nil)
)

// New returns a Dialect configured by o.
func New(o Options) *Dialect {
	d := &Dialect{required: o.RequiredCode, invalid: o.InvalidCode, maxFlows: o.MaxFlows, now: o.Now, flows: map[string]*flow{}}
	if d.required == 0 {
		d.required = CodeCaptchaRequired
	}
	if d.invalid == 0 {
		d.invalid = CodeCaptchaInvalid
	}
	if d.maxFlows <= 0 {
		d.maxFlows = 100000
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// members reads a JSON object's members by their exact names (the SDK's
// spelling; encoding/json would also match "captchaId" to "captchaID").
func members(body []byte, names ...string) (vals []string, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	vals = make([]string, len(names))
	for i, n := range names {
		raw, found := m[n]
		if !found {
			continue
		}
		if json.Unmarshal(raw, &vals[i]) != nil {
			return nil, false // not a string: not the SDK's
		}
		ok = true
	}
	return vals, ok
}

// ReadProof implements captchagate.ProofReader: the SDK sends the answer as
// captchaID and captchaVerifyCode in the JSON body, beside the password.
func (d *Dialect) ReadProof(_ *http.Request, body []byte) (captchagate.Proof, bool) {
	v, ok := members(body, "captchaID", "captchaVerifyCode")
	if !ok || v[0] == "" {
		return captchagate.Proof{}, false
	}
	return captchagate.Proof{CaptchaID: v[0], Answer: v[1]}, true
}

// ServeEndpoint implements captchagate.Dialect: it answers the SDK's
// refresh, a POST to the refreshURL with {"captchaId": …}. Other requests
// are left to the gate.
func (d *Dialect) ServeEndpoint(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool {
	if endpoint != "refresh" {
		return false
	}
	v, ok := members(body, "captchaId")
	if !ok || v[0] == "" {
		return false
	}
	c, err := d.Refresh(g, r, v[0])
	if err != nil {
		g.Error(w, r, err)
		return true
	}
	writeJSON(w, http.StatusOK, refreshBody{ID: c.ID, Image: c.ImageURL, Audio: c.AudioURL})
	return true
}

type refreshBody struct {
	ID    string `json:"captchaID"`
	Image string `json:"verificationImageURL"`
	Audio string `json:"verificationAudioURL,omitempty"`
}

type captchaBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	ID      string `json:"captchaID"`
	Image   string `json:"verificationImageURL"`
	Audio   string `json:"verificationAudioURL,omitempty"`
	Refresh string `json:"refreshURL"`
}

// Error is a captchagate.ErrorHandler (set it as Config.ErrorHandler): an
// error carrying a captcha is answered 423 in the SDK's shape, with
// RequiredCode for captcha_required and InvalidCode for captcha_invalid,
// and the gate's description (in the request's language) as its message;
// every other error is the gate's own JSON (captchagate.WriteError), with
// its status.
func (d *Dialect) Error(w http.ResponseWriter, r *http.Request, err error) {
	var e *captchagate.Error
	if !errors.As(err, &e) || e.Captcha == nil {
		captchagate.WriteError(w, r, err)
		return
	}
	code := d.required
	if errors.Is(err, captchagate.ErrCaptchaInvalid) {
		code = d.invalid
	}
	e.SetHeaders(w.Header())
	c := e.Captcha
	writeJSON(w, http.StatusLocked, captchaBody{Code: code, Message: e.Description, ID: c.ID,
		Image: c.ImageURL, Audio: c.AudioURL, Refresh: c.RefreshURL})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // our own types: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Begin is gd.Begin (captchagate's explicit mode) for a Webex request, with
// args the values of the policy's Arg keys (the meeting, say) and proof the
// request's captchaID and captchaVerifyCode (ReadProof of the body reads
// them; with the zero Proof, gd.Begin reads proof from r itself, and a
// successor of a refused captcha does not inherit its flow's count here,
// only the gate's). When it answers with a captcha, the
// Dialect keeps the captcha's flow (gd, a copy of args, its refreshes left)
// until the captcha expires, so that the captcha can be refreshed even after
// it was used. Answer its error with Error (or Gate.Error with Error as the
// ErrorHandler) and otherwise end the Attempt as captchagate's Begin says.
func (d *Dialect) Begin(w http.ResponseWriter, r *http.Request, gd *captchagate.Guard, args map[string]string, proof captchagate.Proof) (*captchagate.Attempt, error) {
	a, err := gd.Begin(w, r, args, proof)
	var e *captchagate.Error
	if errors.As(err, &e) && e.Captcha != nil {
		left := e.Captcha.RefreshesLeft
		if proof.CaptchaID != "" {
			// A wrong or used captcha's successor continues its flow.
			d.mu.Lock()
			if f, ok := d.flows[proof.CaptchaID]; ok && d.now().Before(f.expires) {
				left = min(left, f.left)
			}
			d.mu.Unlock()
		}
		e.Captcha.RefreshesLeft = left
		d.keep(e.Captcha, gd, args, left)
	}
	return a, err
}

// keep records c's flow, and reports whether there was room for it.
func (d *Dialect) keep(c *captchagate.Captcha, gd *captchagate.Guard, args map[string]string, left int) bool {
	now := d.now()
	f := &flow{guard: gd, args: make(map[string]string, len(args)), left: left,
		expires: now.Add(time.Duration(c.ExpiresIn) * time.Second)}
	for k, v := range args {
		f.args[k] = v
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.flows) >= d.maxFlows {
		for id, old := range d.flows {
			if !now.Before(old.expires) {
				delete(d.flows, id)
			}
		}
		if len(d.flows) >= d.maxFlows {
			return false
		}
	}
	d.flows[c.ID] = f
	return true
}

// take removes and returns the flow of captcha id, or nil if the Dialect
// keeps none (unknown, expired, or taken by a refresh already).
func (d *Dialect) take(id string) *flow {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.flows[id]
	if !ok {
		return nil
	}
	delete(d.flows, id)
	if !d.now().Before(f.expires) {
		return nil
	}
	return f
}

func (d *Dialect) putBack(id string, f *flow) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flows[id] = f
}

// refreshLimit is the error past a flow's refresh limit (a new value each
// time: Gate.Error may set its description).
func refreshLimit() error {
	return &captchagate.Error{Code: captchagate.CodeTooManyRequests, Description: "too many refreshes of this captcha; answer it"}
}

func notFound() error {
	return &captchagate.Error{Code: captchagate.CodeNotFound, Description: "unknown, used or expired captcha"}
}

// Refresh replaces captcha id with a new captcha for the same flow, as the
// SDK's refresh asks, and returns it. A captcha that can still be answered
// is refreshed by the gate (g.Refresh); a used one whose flow the Dialect
// keeps (Begin) is replaced once by a captcha its guard issues for the
// flow's key values, the refresher's address and session, as a request
// without proof would get. Either way the flow's refreshes left go down by
// one, and past the limit the answer is too_many_requests; the used captcha
// stays used. Errors are the gate's *captchagate.Error values.
func (d *Dialect) Refresh(g *captchagate.Gate, r *http.Request, id string) (*captchagate.Captcha, error) {
	f := d.take(id)
	if f != nil && f.left <= 0 {
		d.putBack(id, f)
		return nil, refreshLimit()
	}
	c, err := g.Refresh(r, id)
	if err == nil {
		if f != nil {
			c.RefreshesLeft = min(c.RefreshesLeft, f.left-1)
			d.keep(c, f.guard, f.args, c.RefreshesLeft)
		}
		return c, nil
	}
	if f == nil || !errors.Is(err, captchagate.ErrNotFound) {
		if f != nil {
			d.putBack(id, f)
		}
		return nil, err
	}
	return d.renew(r, f)
}

// renew issues the new captcha of a used captcha's flow f through its
// guard, on a copy of the refresh request without its body (whose members
// are not the guarded request's).
func (d *Dialect) renew(r *http.Request, f *flow) (*captchagate.Captcha, error) {
	rr := r.Clone(r.Context())
	rr.Body, rr.ContentLength = http.NoBody, 0
	rr.Header.Del("Content-Type")
	rr.Header.Del(captchagate.TokenHeader)
	a, err := f.guard.Begin(discard{}, rr, f.args, captchagate.Proof{})
	if err == nil {
		a.End() // the flow needs no captcha now: nothing to refresh
		return nil, notFound()
	}
	var e *captchagate.Error
	if !errors.As(err, &e) || e.Captcha == nil {
		return nil, err
	}
	c := e.Captcha
	c.RefreshesLeft = min(c.RefreshesLeft, f.left-1)
	if !d.keep(c, f.guard, f.args, c.RefreshesLeft) {
		return nil, refreshLimit() // never hand out a captcha whose count is lost
	}
	return c, nil
}

// discard is the ResponseWriter of renew's Begin, whose answer is not
// written.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
