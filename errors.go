package captchagate

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors. An *Error matches the sentinel of its code family with
// errors.Is, so callers never need to compare codes by hand.
var (
	// ErrCaptchaRequired: the request needs a solved captcha (wire code 4001).
	ErrCaptchaRequired = errors.New("captchagate: captcha required")
	// ErrCaptchaInvalid: a captcha answer or token was wrong, unknown, used or
	// expired (wire code 4002).
	ErrCaptchaInvalid = errors.New("captchagate: captcha invalid")
	// ErrTooManyRequests: a hard ceiling or a creation limit was reached
	// (wire code 4029).
	ErrTooManyRequests = errors.New("captchagate: too many requests")
	// ErrInvalidRequest: a parameter is missing or malformed (wire codes 41xx).
	ErrInvalidRequest = errors.New("captchagate: invalid request")
	// ErrNotFound: no such captcha or route (wire code 4004).
	ErrNotFound = errors.New("captchagate: not found")
	// ErrStoreUnavailable: the store failed and the gate failed closed (wire
	// code 5003). The store's own error is wrapped but never sent to clients.
	ErrStoreUnavailable = errors.New("captchagate: store unavailable")
	// ErrVerifierUnavailable: a Challenge's Check returned an error (a
	// hosted verifier such as Turnstile could not check an answer); the gate
	// failed closed (wire code 5004).
	ErrVerifierUnavailable = errors.New("captchagate: verifier unavailable")
	// ErrRenderUnavailable: a captcha's image or sound could not be rendered,
	// because every render slot stayed busy or the Challenge's Render failed
	// (wire code 5005).
	ErrRenderUnavailable = errors.New("captchagate: render unavailable")
	// ErrInternal: a failure inside the gate that no retry is sure to fix,
	// such as crypto/rand or a Challenge's Issue failing (wire code 5000).
	ErrInternal = errors.New("captchagate: internal error")
)

// Code is a wire error code, the "error_code" member of every error body.
// Codes are part of the published protocol (docs/protocol.md) and never change
// meaning.
type Code int

// Wire error codes. The 41xx family is "invalid_request", one code per
// parameter problem so that clients can point at the faulty field.
const (
	CodeCaptchaRequired  Code = 4001 // captcha_required, HTTP 428
	CodeCaptchaInvalid   Code = 4002 // captcha_invalid, HTTP 403
	CodeTooManyRequests  Code = 4029 // too_many_requests, HTTP 429 with Retry-After
	CodeNotFound         Code = 4004 // not_found, HTTP 404
	CodeMethodNotAllowed Code = 4005 // method_not_allowed, HTTP 405 with Allow
	CodeRequestTooLarge  Code = 4013 // request_too_large, HTTP 413
	CodeInternal         Code = 5000 // internal_error, HTTP 500
	CodeStoreUnavailable Code = 5003 // service_unavailable, HTTP 503: the store failed
	// CodeVerifierUnavailable: service_unavailable, HTTP 503: a hosted
	// verifier failed.
	CodeVerifierUnavailable Code = 5004
	// CodeRenderUnavailable: service_unavailable, HTTP 503: rendering failed
	// or every render slot stayed busy.
	CodeRenderUnavailable Code = 5005

	CodeMalformedBody      Code = 4100 // invalid_request: body is not valid JSON or form data
	CodeMissingCaptchaID   Code = 4101 // invalid_request: captcha_id is empty
	CodeMalformedCaptchaID Code = 4102 // invalid_request: captcha_id is not a captcha id
	CodeMissingAnswer      Code = 4103 // invalid_request: captcha_answer is empty
	CodeMalformedAnswer    Code = 4104 // invalid_request: captcha_answer is too long or not text
	CodeUnsupportedLang    Code = 4105 // invalid_request: lang is not a supported language
	CodeMissingPolicy      Code = 4106 // invalid_request: policy is empty
	CodeUnknownPolicy      Code = 4107 // invalid_request: policy names no guarded policy
	CodeMissingKey         Code = 4108 // invalid_request: a required key (Key.Required) is absent
	CodeUnsupportedMedia   Code = 4110 // invalid_request: Content-Type is neither JSON nor a form

	// CodeMalformedSender: invalid_request: a Solution's sender is too long,
	// or the captcha's policy has no Sender key to bind it to.
	CodeMalformedSender Code = 4118
	// CodeAmbiguousKey: invalid_request: the body reads as a form and as
	// JSON (or the query and the JSON) with different values of a key's
	// field, so the guard cannot know which one the application uses.
	CodeAmbiguousKey Code = 4119
)

type codeInfo struct {
	name     string
	status   int
	sentinel error
}

var codeInfos = map[Code]codeInfo{
	CodeCaptchaRequired:     {"captcha_required", http.StatusPreconditionRequired, ErrCaptchaRequired},
	CodeCaptchaInvalid:      {"captcha_invalid", http.StatusForbidden, ErrCaptchaInvalid},
	CodeTooManyRequests:     {"too_many_requests", http.StatusTooManyRequests, ErrTooManyRequests},
	CodeNotFound:            {"not_found", http.StatusNotFound, ErrNotFound},
	CodeMethodNotAllowed:    {"method_not_allowed", http.StatusMethodNotAllowed, ErrInvalidRequest},
	CodeRequestTooLarge:     {"request_too_large", http.StatusRequestEntityTooLarge, ErrInvalidRequest},
	CodeInternal:            {"internal_error", http.StatusInternalServerError, ErrInternal},
	CodeStoreUnavailable:    {"service_unavailable", http.StatusServiceUnavailable, ErrStoreUnavailable},
	CodeVerifierUnavailable: {"service_unavailable", http.StatusServiceUnavailable, ErrVerifierUnavailable},
	CodeRenderUnavailable:   {"service_unavailable", http.StatusServiceUnavailable, ErrRenderUnavailable},
}

var invalidRequest = codeInfo{"invalid_request", http.StatusBadRequest, ErrInvalidRequest}

func (c Code) info() codeInfo {
	if i, ok := codeInfos[c]; ok {
		return i
	}
	if c >= 4100 && c < 4200 {
		return invalidRequest
	}
	return codeInfo{"error", http.StatusInternalServerError, nil}
}

// Name returns the wire name of the code's family, the "error" member.
func (c Code) Name() string { return c.info().name }

// Status returns the HTTP status the default renderer uses for the code.
func (c Code) Status() int { return c.info().status }

// Error is the error the gate hands to the ErrorHandler. It carries what a
// renderer needs: the wire code, a description safe to show to clients, the
// parameter at fault, a fresh captcha where one was issued, and how long to
// wait before retrying.
type Error struct {
	Code        Code
	Description string        // human-readable, safe for clients
	Param       string        // the parameter at fault, for invalid_request
	Captcha     *Captcha      // the captcha to solve, if one was issued
	RetryAfter  time.Duration // for too_many_requests and service_unavailable
	Allow       string        // for method_not_allowed: the allowed methods
	// RateLimitPolicy and RateLimit are the RateLimit header fields of a
	// guard's 428 and 429 answers (Config.RateLimitHeaders).
	RateLimitPolicy, RateLimit string
	Err                        error // the underlying cause; logged, never rendered

	msg  msgID    // Description's message, said in the request's language by Gate.Error
	args []string // msg's arguments
}

// Error returns "captchagate: <name>: <description>"; it never includes the
// underlying cause.
func (e *Error) Error() string {
	s := "captchagate: " + e.Code.Name()
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Is reports whether target is the sentinel of e's code family.
func (e *Error) Is(target error) bool { return target != nil && target == e.Code.info().sentinel }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrorHandler renders an error of the gate. err is usually an *Error; any
// other error is a failure the client must not see the text of. The default,
// WriteError, writes the JSON of docs/protocol.md.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

type errorBody struct {
	Error       string   `json:"error"`
	ErrorCode   Code     `json:"error_code"`
	Description string   `json:"error_description,omitempty"`
	Param       string   `json:"param,omitempty"`
	Captcha     *Captcha `json:"captcha,omitempty"`
}

// SetHeaders sets the headers e calls for: Retry-After (whole seconds,
// rounded up) and Allow when e carries them. A custom ErrorHandler that
// renders its own body calls it before writing.
func (e *Error) SetHeaders(h http.Header) {
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	if e.RateLimitPolicy != "" {
		h.Set("RateLimit-Policy", e.RateLimitPolicy)
	}
	if e.RateLimit != "" {
		h.Set("RateLimit", e.RateLimit)
	}
}

// WriteError is the default ErrorHandler: it writes err as JSON with
// Content-Type application/json and Cache-Control no-store, and the status of
// its code. An error that is not an *Error is answered as a generic 500
// internal_error; its text is never written.
func WriteError(w http.ResponseWriter, _ *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = failureError(CodeInternal, nil)
	}
	e.SetHeaders(w.Header())
	writeJSON(w, e.Code.Status(), errorBody{
		Error:       e.Code.Name(),
		ErrorCode:   e.Code,
		Description: e.Description,
		Param:       e.Param,
		Captcha:     e.Captcha,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for our own types
		b = []byte(`{"error":"error"}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	nosniff         = []string{"nosniff"}
)

// unavailableError is the client's view of a store failure; err is kept for
// logs.
func unavailableError(err error) *Error { return failureError(CodeStoreUnavailable, err) }

// failureError is the client's view of a failure it cannot fix, of the class
// of code; err is kept for logs, never rendered.
func failureError(code Code, err error) *Error {
	if code == CodeInternal {
		return said(&Error{Code: code, Err: err}, msgInternal)
	}
	return said(&Error{Code: code, RetryAfter: time.Second, Err: err}, msgUnavailable)
}

func invalid(code Code, param string, id msgID, args ...string) *Error {
	return said(&Error{Code: code, Param: param}, id, args...)
}
