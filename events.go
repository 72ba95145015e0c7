package captchagate

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
)

// EventKind says what happened.
type EventKind uint8

// The events a Gate reports through Config.OnEvent.
const (
	EventTripped          EventKind = iota + 1 // a key reached its threshold or ran out of send rate
	EventCeilingReached                        // a key reached its hard ceiling; the request got 429
	EventCaptchaIssued                         // a captcha was created (guard, new, refresh or after a failure)
	EventCaptchaVerified                       // a captcha was solved
	EventCaptchaRejected                       // an answer was wrong, or the captcha unknown, used, expired or for another request
	EventTokenAccepted                         // a captcha_token let a request through
	EventTokenRefused                          // a captcha_token was unknown, used, expired or for another request
	EventStoreError                            // the store failed
	EventVerifierError                         // a Challenge's Check failed (a hosted verifier)
	EventRenderError                           // an image or sound could not be rendered
	EventInternalError                         // crypto/rand or the Challenge's Issue failed
	EventCaptchaRefreshed                      // a captcha was replaced by a refresh; CaptchaID is the new one
	// EventDryRun: a guard in dry run (Policy.DryRun) let through a request
	// it would have asked for a captcha (Reason "captcha") or refused with
	// too_many_requests (Reason "limit").
	EventDryRun
)

var eventNames = [...]string{"", "tripped", "ceiling_reached", "captcha_issued", "captcha_verified",
	"captcha_rejected", "token_accepted", "token_refused", "store_error", "verifier_error", "render_error",
	"internal_error", "captcha_refreshed", "dry_run"}

// String returns the event's name, such as "captcha_issued".
func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is reported to Config.OnEvent. It never carries a secret, an answer,
// a token or, unless Config.RawEventValues, a key's value: Key is the key's
// name ("json:username") and Value a keyed hash of its value.
type Event struct {
	Kind   EventKind
	Policy string // "" for events of the handlers not tied to a policy
	Key    string // the key's name, for EventTripped, EventCeilingReached and EventDryRun
	// Value says which value of Key the event is about (which account,
	// number or address was locked out), for EventTripped,
	// EventCeilingReached and EventDryRun: "h:" and 32 hex digits of an
	// HMAC under the gate's Secret of the value as the key counts it, so
	// the same for every spelling the key counts as one and for every
	// policy and key counting that form (events of one account can be
	// grouped), and meaningless without the Secret. With Config.RawEventValues it is the
	// value itself, in the form the key counts it ("alice",
	// "+15550001234"). Never use it as a metric label: it is unbounded.
	Value     string
	CaptchaID string // for captcha events
	// Mode is the kind of challenge a captcha event is about, for a solve
	// rate per mode: "image" or "audio" (Digits: "audio" when the captcha's
	// sound was fetched from this instance before it was answered),
	// "slider", "pow" (ALTCHA), "hosted", or what a Challenge's Mode
	// method says (Moder); its Kind without one.
	Mode string
	// DryRun says the guard is in dry run (Policy.DryRun): a tripped key or
	// a reached ceiling refused nothing.
	DryRun bool
	// Reason says why a captcha or token was refused: "unknown or already
	// used", "expired", "wrong answer", "issued for another request" or
	// "verified for another sender".
	Reason string
	Err    error // for the failure events (EventStoreError and after)
	// Request is a shallow copy of the request the event is about, for its
	// method, URL, headers, RemoteAddr and context: without its body (which
	// may hold an answer, a token or a password) and without the
	// X-Captcha-Token header. A hook must not modify it.
	Request *http.Request
}

// The outcomes Event.Outcome reports, one per metric label value.
var outcomes = [...]string{"", "tripped", "ceiling", "issued", "solved", "", "token_accepted", "token_refused",
	"store_error", "verifier_error", "render_error", "internal_error", "refreshed", "dry_run"}

// Outcome names what happened in the words of a metric label: "tripped",
// "ceiling", "issued", "refreshed", "solved", "wrong", "expired",
// "refused" (a captcha unknown, used or for another request),
// "token_accepted", "token_refused", "store_error", "verifier_error",
// "render_error", "internal_error" or "dry_run". The set is fixed, so it
// bounds a metric's cardinality.
func (e Event) Outcome() string {
	if e.Kind == EventCaptchaRejected {
		switch e.Reason {
		case reasonWrong:
			return "wrong"
		case reasonExpired:
			return "expired"
		}
		return "refused"
	}
	if int(e.Kind) < len(outcomes) {
		return outcomes[e.Kind]
	}
	return "unknown"
}

// EventHooks returns one Config.OnEvent that calls each of hooks in turn,
// skipping nil ones, so that metrics and the application's own hooks share
// it:
//
//	captchagate.Config{OnEvent: captchagate.EventHooks(prom.Observe, auditLockouts)}
func EventHooks(hooks ...func(Event)) func(Event) {
	var hs []func(Event)
	for _, h := range hooks {
		if h != nil {
			hs = append(hs, h)
		}
	}
	return func(e Event) {
		for _, h := range hs {
			h(e)
		}
	}
}

func (g *Gate) emit(e Event) {
	if g.onEvent != nil {
		if e.Request != nil {
			e.Request = withoutProof(e.Request)
		}
		g.onEvent(e)
	}
	if e.Kind == EventCaptchaIssued || e.Kind == EventCaptchaVerified || e.Kind == EventTokenAccepted ||
		e.Kind == EventCaptchaRefreshed {
		return // the normal flow is not logged
	}
	level := slog.LevelInfo
	if e.Kind >= EventStoreError {
		level = slog.LevelError
	}
	if !g.logger.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("event", e.Kind.String()))
	if e.Policy != "" {
		attrs = append(attrs, slog.String("policy", e.Policy))
	}
	if e.Key != "" {
		attrs = append(attrs, slog.String("key", e.Key))
	}
	if e.Value != "" && !g.rawValues { // a raw value is the hook's, never the log's
		attrs = append(attrs, slog.String("value", e.Value))
	}
	if e.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true))
	}
	if e.CaptchaID != "" {
		// A prefix is enough to correlate and too short to fetch the captcha.
		attrs = append(attrs, slog.String("captcha", e.CaptchaID[:min(6, len(e.CaptchaID))]))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	g.logger.LogAttrs(context.Background(), level, "captchagate", attrs...)
}

// withoutProof returns a shallow copy of r without a body, forms or a token
// header, for an event hook.
func withoutProof(r *http.Request) *http.Request {
	c := new(http.Request)
	*c = *r
	c.Body, c.GetBody, c.ContentLength = http.NoBody, nil, 0
	c.Form, c.PostForm, c.MultipartForm = nil, nil, nil
	if _, ok := r.Header[TokenHeader]; ok {
		c.Header = r.Header.Clone()
		c.Header.Del(TokenHeader)
	}
	return c
}

// eventValue returns the Event.Value of key i of ev's request: the keyed
// hash of its value, or with Config.RawEventValues the value. It costs an
// HMAC, paid only by the events that carry it (trips, ceilings).
func (gd *Guard) eventValue(ev *eval, i int) string {
	k := &gd.keys[i]
	v, ok := k.Source.value(&ev.in, ev.buf[:0])
	if !ok {
		return ""
	}
	if gd.g.rawValues {
		return string(v)
	}
	var sum [32]byte
	gd.g.mac(&sum, []byte("event value\x00"), v) // not the policy's or key's name: one account, one hash, wherever it is counted
	return "h:" + hex.EncodeToString(sum[:16])
}

// lockout reports an EventTripped or EventCeilingReached of key i.
func (gd *Guard) lockout(kind EventKind, r *http.Request, ev *eval, i int) {
	g := gd.g
	if g.onEvent == nil && !g.logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	g.emit(Event{Kind: kind, Policy: gd.name, Key: gd.keys[i].name, Value: gd.eventValue(ev, i), DryRun: gd.dryRun, Request: r})
}

// modeOf returns the Event.Mode of captcha id.
func (g *Gate) modeOf(id string) string {
	if g.heard != nil && g.heard.has(id) {
		return "audio"
	}
	return g.mode
}

// heardSet remembers the last heardCap captchas whose sound this instance
// served, so that their answers count as solved by ear (Event.Mode). It is
// bounded: an older id falls out, and its answer counts as the default mode.
type heardSet struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring [heardCap]string
	next int
}

const heardCap = 4096

func newHeardSet() *heardSet { return &heardSet{ids: make(map[string]struct{})} }

func (h *heardSet) add(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; ok {
		return
	}
	if old := h.ring[h.next]; old != "" {
		delete(h.ids, old)
	}
	h.ring[h.next] = id
	h.ids[id] = struct{}{}
	h.next = (h.next + 1) % heardCap
}

func (h *heardSet) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.ids[id]
	return ok
}

func (g *Gate) storeError(r *http.Request, policy string, err error) {
	g.emit(Event{Kind: EventStoreError, Policy: policy, Err: err, Request: r})
}

// unavailable reports a store failure and returns the error to answer with.
func (g *Gate) unavailable(r *http.Request, policy string, err error) *Error {
	return g.failure(r, policy, CodeStoreUnavailable, err)
}

// failure reports a failure of the class of code (CodeStoreUnavailable,
// CodeVerifierUnavailable, CodeRenderUnavailable or CodeInternal) as its
// event and returns the error to answer with.
func (g *Gate) failure(r *http.Request, policy string, code Code, err error) *Error {
	g.emit(Event{Kind: failureEvents[code], Policy: policy, Err: err, Request: r})
	return failureError(code, err)
}

var failureEvents = map[Code]EventKind{
	CodeStoreUnavailable:    EventStoreError,
	CodeVerifierUnavailable: EventVerifierError,
	CodeRenderUnavailable:   EventRenderError,
	CodeInternal:            EventInternalError,
}
