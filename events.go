package captchagate

import (
	"context"
	"log/slog"
	"net/http"
)

// EventKind says what happened.
type EventKind uint8

// The events a Gate reports through Config.OnEvent.
const (
	EventTripped         EventKind = iota + 1 // a key reached its threshold or ran out of send rate
	EventCeilingReached                       // a key reached its hard ceiling; the request got 429
	EventCaptchaIssued                        // a captcha was created (guard, new, refresh or after a failure)
	EventCaptchaVerified                      // a captcha was solved
	EventCaptchaRejected                      // an answer was wrong, or the captcha unknown, used, expired or for another request
	EventTokenAccepted                        // a captcha_token let a request through
	EventTokenRefused                         // a captcha_token was unknown, used, expired or for another request
	EventStoreError                           // the store failed
	EventVerifierError                        // a Challenge's Check failed (a hosted verifier)
	EventRenderError                          // an image or sound could not be rendered
	EventInternalError                        // crypto/rand or the Challenge's Issue failed
)

var eventNames = [...]string{"", "tripped", "ceiling_reached", "captcha_issued", "captcha_verified",
	"captcha_rejected", "token_accepted", "token_refused", "store_error", "verifier_error", "render_error",
	"internal_error"}

// String returns the event's name, such as "captcha_issued".
func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is reported to Config.OnEvent. It never carries a secret, an answer,
// a token or a key's value: Key is the key's name ("json:username").
type Event struct {
	Kind      EventKind
	Policy    string // "" for events of the handlers not tied to a policy
	Key       string // the key's name, for EventTripped and EventCeilingReached
	CaptchaID string // for captcha events
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

func (g *Gate) emit(e Event) {
	if g.onEvent != nil {
		if e.Request != nil {
			e.Request = withoutProof(e.Request)
		}
		g.onEvent(e)
	}
	if e.Kind == EventCaptchaIssued || e.Kind == EventCaptchaVerified || e.Kind == EventTokenAccepted {
		return // the normal flow is not logged
	}
	level := slog.LevelInfo
	if e.Kind >= EventStoreError {
		level = slog.LevelError
	}
	if !g.logger.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 5)
	attrs = append(attrs, slog.String("event", e.Kind.String()))
	if e.Policy != "" {
		attrs = append(attrs, slog.String("policy", e.Policy))
	}
	if e.Key != "" {
		attrs = append(attrs, slog.String("key", e.Key))
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
