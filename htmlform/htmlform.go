// Package htmlform runs the captcha flow for HTML pages: it keeps the captcha
// a visitor was shown in the visitor's session (github.com/gorilla/sessions,
// any sessions.Store), binds captchas and tokens to that session, renders an
// accessible widget into the app's own form, and serves the widget's small
// script.
//
//	flow, err := htmlform.New(gate, htmlform.Options{Sessions: cookieStore, Render: renderLogin})
//	mux.Handle("/captcha/", flow.Handler())                                   // gate endpoints + widget.js
//	mux.Handle("POST /login", flow.Middleware(gate.Guard(policy)(loginHandler)))
//
// and in the login page's template, inside the form: {{.Captcha}}, where
// Captcha is flow.Widget(r, err).
//
// A classic form post that the gate stops is answered by Options.Render with
// the gate's error; the widget then shows the captcha and says in words what
// happened. The form posts only captcha_answer: the captcha's id stays in the
// session, so there is no hidden id field to tamper with. A fetch() client
// (any request that is not a form post) gets the gate's JSON, and the same
// script offers captchagate.solve(container, errorBody), which shows the
// widget, verifies the answer and resolves to a captcha_token for the retry.
//
// Whichever way, a captcha or token issued in one session is useless in
// another.
//
// The widget speaks the request's language (Flow.Language: Options.Lang, or
// the gate's choice from captchagate.WithLanguage, Accept-Language and
// Config.DefaultLanguage), and so do the gate's errors and, where it can,
// the captcha's audio; see docs/protocol.md, "Languages".
package htmlform

import (
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/sessions"

	"github.com/captchagate/captchagate"
)

// Options configures a Flow.
type Options struct {
	// Sessions keeps the visitor's session. Required; a
	// sessions.NewCookieStore with an authentication key (and, to hide the
	// pending captcha id, an encryption key) is enough. Set its Options for
	// your site (HttpOnly, Secure on https, SameSite Lax).
	Sessions sessions.Store
	// SessionName names the session (the cookie for a cookie store).
	// Default "captchagate".
	SessionName string
	// Render answers a form post the gate refused: it should show the form
	// again with Flow.Widget(r, err) inside it, with status Status(err).
	// Required.
	Render func(w http.ResponseWriter, r *http.Request, err error)
	// Lang, if set, is the language of every widget and of the gate's
	// errors on the Flow's routes (one of captchagate.Languages: en, ru,
	// zh, ja, pt, es, de, fr); the audio speaks it where it can (en, ru, zh,
	// ja, pt), else English. Default: each request's language
	// (captchagate.Gate.Language: captchagate.WithLanguage,
	// Accept-Language, Config.DefaultLanguage).
	Lang string
}

// Flow is the HTML side of a Gate. It is safe for concurrent use.
type Flow struct {
	gate     *captchagate.Gate
	sessions sessions.Store
	name     string
	render   func(http.ResponseWriter, *http.Request, error)
	lang     string
	prefix   string // path of the gate's endpoints, with the trailing slash
}

// Session values.
const (
	valueID      = "captchagate.id"      // []byte: the session's binding secret
	valuePending = "captchagate.pending" // string: the captcha the session was shown
)

// New returns the Flow of gate.
func New(gate *captchagate.Gate, o Options) (*Flow, error) {
	if gate == nil || o.Sessions == nil || o.Render == nil {
		return nil, errors.New("htmlform: New needs a gate, Options.Sessions and Options.Render")
	}
	if o.SessionName == "" {
		o.SessionName = "captchagate"
	}
	if _, ok := texts[o.Lang]; !ok && o.Lang != "" {
		return nil, errors.New("htmlform: Options.Lang must be one of " + strings.Join(captchagate.Languages(), ", "))
	}
	u, err := url.Parse(gate.URL(""))
	if err != nil {
		return nil, err
	}
	return &Flow{gate: gate, sessions: o.Sessions, name: o.SessionName, render: o.Render, lang: o.Lang, prefix: u.Path}, nil
}

// Middleware attaches the visitor's session to each request, creating it on
// the first, so that the gate binds what it issues to the session. Wrap the
// guarded route with it (outside the guard). A form post the gate refuses is
// answered by Options.Render, after the new captcha is remembered in the
// session; other requests get the gate's own error responses.
func (f *Flow) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := f.session(w, r)
		if err != nil {
			http.Error(w, "session unavailable", http.StatusInternalServerError)
			return
		}
		cs := &captchagate.Session{ID: s.Values[valueID].([]byte)}
		cs.Pending, _ = s.Values[valuePending].(string)
		if isFormPost(r) {
			cs.ErrorHandler = f.formError
		}
		next.ServeHTTP(w, captchagate.WithSession(f.withLanguage(r), cs))
	})
}

// session loads r's session, giving a new one its binding secret (and
// saving it at once, before the handler writes anything).
func (f *Flow) session(w http.ResponseWriter, r *http.Request) (*sessions.Session, error) {
	s, err := f.sessions.Get(r, f.name)
	if err != nil && s == nil {
		return nil, err
	}
	// A session that failed to decode (a tampered or stale cookie) comes
	// back new and empty: it gets a fresh secret below.
	if id, ok := s.Values[valueID].([]byte); ok && len(id) >= 16 {
		return s, nil
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	s.Values[valueID] = id
	delete(s.Values, valuePending)
	return s, s.Save(r, w)
}

// formError remembers the captcha of a refused form post in the session and
// has the app render the form again.
func (f *Flow) formError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *captchagate.Error
	if errors.As(err, &ce) && ce.Captcha != nil {
		if s, serr := f.sessions.Get(r, f.name); serr == nil {
			s.Values[valuePending] = ce.Captcha.ID
			if serr = s.Save(r, w); serr != nil {
				http.Error(w, "session unavailable", http.StatusInternalServerError)
				return
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	if ce != nil {
		ce.SetHeaders(w.Header())
	}
	f.render(w, r, err)
}

// Status is the HTTP status for a page showing err: the gate's status for
// its errors (428, 403, 429, ...), 500 for others, 200 for nil.
func Status(err error) int {
	var ce *captchagate.Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &ce):
		return ce.Code.Status()
	}
	return http.StatusInternalServerError
}

func isFormPost(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return r.Method == http.MethodPost && (strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data"))
}

//go:embed assets/widget.js assets/widget.css
var assets embed.FS

// Handler serves the gate's endpoints (gate.Handler) with sessions attached,
// and beside them widget.js and widget.css. A POST to refresh naming no
// captcha refreshes the one the session was shown and remembers the new one:
// that is how the widget's refresh button works on a form page. Mount it at
// the gate's Config.Prefix.
func (f *Flow) Handler() http.Handler {
	gh := f.Middleware(f.gate.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, f.prefix)
		if !ok {
			rest = strings.TrimPrefix(r.URL.Path, "/")
		}
		switch {
		case rest == "widget.js" || rest == "widget.css":
			f.serveAsset(w, r, rest)
		case rest == "refresh" && r.Method == http.MethodPost && r.ContentLength == 0 && r.URL.RawQuery == "":
			f.serveSessionRefresh(w, r)
		default:
			gh.ServeHTTP(w, r)
		}
	})
}

func (f *Flow) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, _ := assets.ReadFile("assets/" + name)
	ct := "text/javascript; charset=utf-8"
	if strings.HasSuffix(name, ".css") {
		ct = "text/css; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(b)
}

// serveSessionRefresh refreshes the session's pending captcha.
func (f *Flow) serveSessionRefresh(w http.ResponseWriter, r *http.Request) {
	s, err := f.session(w, r)
	if err != nil {
		http.Error(w, "session unavailable", http.StatusInternalServerError)
		return
	}
	r = captchagate.WithSession(f.withLanguage(r), &captchagate.Session{ID: s.Values[valueID].([]byte)})
	pending, _ := s.Values[valuePending].(string)
	if pending == "" {
		f.gate.Error(w, r, &captchagate.Error{Code: captchagate.CodeNotFound, Description: say(f.Language(r), tNoPending)})
		return
	}
	c, err := f.gate.Refresh(r, pending)
	if err != nil {
		f.gate.Error(w, r, err) // in r's language
		return
	}
	if c.AudioURL != "" && f.lang == "" {
		w.Header().Add("Vary", "Accept-Language")
	}
	s.Values[valuePending] = c.ID
	if err := s.Save(r, w); err != nil {
		http.Error(w, "session unavailable", http.StatusInternalServerError)
		return
	}
	writeCaptcha(w, c)
}

// Widget returns the captcha widget to put inside the form of the page r
// renders: the captcha the session is waiting on (or the one err carries),
// its image with alt text, audio and refresh buttons, the labelled answer
// field, and err in words, all in r's language (Flow.Language). It returns only the message when err is a limit
// with no captcha, and nothing when there is neither captcha nor error.
func (f *Flow) Widget(r *http.Request, err error) template.HTML {
	r = f.withLanguage(r)
	lang := f.Language(r)
	var ce *captchagate.Error
	errors.As(err, &ce)
	var c *captchagate.Captcha
	if ce != nil && ce.Captcha != nil {
		c = ce.Captcha
	} else if s, serr := f.sessions.Get(r, f.name); serr == nil {
		if id, _ := s.Values[valuePending].(string); id != "" {
			c, _ = f.gate.Lookup(r, id)
		}
	}
	msg := message(err, lang)
	if c == nil && msg == "" {
		return ""
	}
	return f.widget(c, msg, ce, lang)
}
