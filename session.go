package captchagate

import (
	"context"
	"net/http"
)

// Session is what a server-side session tells the gate about a request. A
// session layer (package htmlform, or your own) attaches it with
// WithSession; the gate then:
//
//   - binds every captcha it issues, and so every token minted from one, to
//     ID: they are usable only by requests whose Session has the same ID, so
//     a captcha solved in one browser session is useless in another;
//   - takes the captcha an inline captcha_answer answers from Pending when
//     the request names none, so an HTML form needs no hidden id field;
//   - answers the request's gate errors with ErrorHandler, if set, instead
//     of Config.ErrorHandler (an HTML page instead of JSON, say).
type Session struct {
	// ID is a secret the session holds: at least 16 random bytes, kept
	// server-side or in an authenticated cookie. Requests without a Session,
	// or with an empty ID, bind nothing.
	ID []byte
	// Pending is the id of the captcha the session was last shown.
	Pending string
	// ErrorHandler, if set, answers this request's errors.
	ErrorHandler ErrorHandler
}

type sessionKey struct{}

// WithSession returns a shallow copy of r carrying s.
func WithSession(r *http.Request, s *Session) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
}

// SessionFrom returns the Session attached to r, or nil.
func SessionFrom(r *http.Request) *Session {
	s, _ := r.Context().Value(sessionKey{}).(*Session)
	return s
}

// sessionHash returns the keyed hash of r's session ID, or nil.
func (g *Gate) sessionHash(r *http.Request) *[16]byte {
	s := SessionFrom(r)
	if s == nil || len(s.ID) == 0 {
		return nil
	}
	var sum [32]byte
	g.mac(&sum, []byte("session\x00"), s.ID)
	h := new([16]byte)
	copy(h[:], sum[:16])
	return h
}

// Error answers err as the gate answers its own errors: with the request's
// Session.ErrorHandler if it has one, else Config.ErrorHandler. A Dialect
// answers its failures through it. The handler gets the gate's own errors
// with their Description in the request's language (Gate.Language), and
// Vary: Accept-Language when that header chose it.
func (g *Gate) Error(w http.ResponseWriter, r *http.Request, err error) {
	err = g.localize(w, r, err)
	if s := SessionFrom(r); s != nil && s.ErrorHandler != nil {
		s.ErrorHandler(w, r, err)
		return
	}
	g.errorHandler(w, r, err)
}
