package captchagate

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// Languages are the languages the gate describes its errors in (the
// "error_description" of its JSON errors, Error.Description), as the
// base-language codes Config.DefaultLanguage, WithLanguage and
// Gate.Language use: English, Russian, Chinese (simplified), Japanese and
// Portuguese, the languages of Digits' audio, then Spanish, German and
// French. Wire codes and error names are never translated.
func Languages() []string { return slices.Clone(languages) }

// languages lists the tables of messages_*.go, in the matcher's order.
var languages = []string{"en", "ru", "zh", "ja", "pt", "es", "de", "fr"}

var tables = map[string]*[msgCount]string{
	"en": &messagesEN, "ru": &messagesRU, "zh": &messagesZH, "ja": &messagesJA,
	"pt": &messagesPT, "es": &messagesES, "de": &messagesDE, "fr": &messagesFR,
}

var matcher = language.NewMatcher(func() []language.Tag {
	tags := make([]language.Tag, len(languages))
	for i, l := range languages {
		tags[i] = language.MustParse(l)
	}
	return tags
}())

// maxAcceptLanguage bounds the Accept-Language the gate parses; a longer
// header is ignored (the default language answers).
const maxAcceptLanguage = 512

// MatchLanguage returns the supported language (one of Languages) that
// serves a reader of lang, an Accept-Language value ("pt-BR, en;q=0.5") or a
// single tag ("zh-Hans"), and whether there is one: "pt-BR" is pt,
// "zh-CN" is zh, "zh-TW" (traditional Chinese), "*" and garbage are none.
func MatchLanguage(lang string) (string, bool) {
	if lang == "" || len(lang) > maxAcceptLanguage {
		return "", false
	}
	tags, _, err := language.ParseAcceptLanguage(lang)
	if err != nil || len(tags) == 0 {
		return "", false
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return "", false
	}
	return languages[i], true
}

type langKey struct{}

// WithLanguage returns a shallow copy of r whose gate errors (and htmlform
// widget) are in lang, whatever the request's Accept-Language says: for an
// app that knows its user's language (an account setting, a path prefix). A
// lang the gate has no messages for (MatchLanguage) leaves the choice to
// Accept-Language.
func WithLanguage(r *http.Request, lang string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), langKey{}, lang))
}

// Language returns the language (one of Languages) the gate describes r's
// errors in: the one set by WithLanguage, else the best match of r's
// Accept-Language, else Config.DefaultLanguage. For apps rendering their own
// pages around the gate's errors.
func (g *Gate) Language(r *http.Request) string {
	l, _ := g.language(r)
	return l
}

// language returns r's language and whether it came from Accept-Language
// (the answer then varies with that header). Only error paths ask: a request
// under every threshold never parses Accept-Language.
func (g *Gate) language(r *http.Request) (lang string, byHeader bool) {
	if v, ok := r.Context().Value(langKey{}).(string); ok {
		if l, ok := MatchLanguage(v); ok {
			return l, false
		}
	}
	if h := r.Header["Accept-Language"]; len(h) > 0 {
		if l, ok := MatchLanguage(strings.Join(h, ",")); ok {
			return l, true
		}
	}
	return g.defaultLang, true
}

// languageFor returns r's language and, if it depends on Accept-Language,
// says so in w's Vary header.
func (g *Gate) languageFor(w http.ResponseWriter, r *http.Request) string {
	l, byHeader := g.language(r)
	if byHeader {
		addVary(w.Header(), "Accept-Language")
	}
	return l
}

func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, name) || f == "*" {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// localize returns err with its description in r's language, for the
// ErrorHandler. Only the gate's own errors (those said with a message) are
// translated; others, a Dialect's for one, are left as they are. e is
// copied, never changed.
func (g *Gate) localize(w http.ResponseWriter, r *http.Request, err error) error {
	e, ok := err.(*Error)
	if !ok || e.msg == msgNone {
		return err
	}
	lang := g.languageFor(w, r)
	if lang == "en" {
		return err
	}
	c := *e
	c.Description = text(lang, e.msg, e.args)
	return &c
}

// said gives e the description of message id with args, in English, and
// remembers both so that the gate can say it in the request's language. It
// returns e.
func said(e *Error, id msgID, args ...string) *Error {
	if id == msgSolveNew && len(args) == 1 {
		// The guard's reason names what it refused: "captcha_token
		// expired", "captcha wrong answer".
		if why, ok := strings.CutPrefix(args[0], "captcha_token "); ok {
			id, args = msgTokenRefusedSolve, []string{why}
		} else if why, ok := strings.CutPrefix(args[0], "captcha "); ok {
			id, args = msgCaptchaRefusedSolve, []string{why}
		}
	}
	e.msg, e.args = id, args
	e.Description = text("en", id, args)
	return e
}

// text returns message id in lang with args substituted for its {0}, {1}...
// A reason argument is itself a message, said in lang too.
func text(lang string, id msgID, args []string) string {
	t, ok := tables[lang]
	if !ok {
		t = &messagesEN
	}
	s := cmp.Or(t[id], messagesEN[id])
	if takesReason[id] && len(args) > 0 {
		if rid, ok := reasons[args[0]]; ok {
			args = append([]string{cmp.Or(t[rid], messagesEN[rid])}, args[1:]...)
		}
	}
	if !strings.Contains(s, "{") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 || i+2 >= len(s) || s[i+2] != '}' || s[i+1] < '0' || s[i+1] > '9' {
			if i < 0 {
				b.WriteString(s)
				return b.String()
			}
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		if n := int(s[i+1] - '0'); n < len(args) {
			b.WriteString(args[n])
		}
		s = s[i+3:]
	}
}

// reasons maps the reasons a proof is refused (issue.go), which events
// carry in English, to their messages.
var reasons = map[string]msgID{
	reasonUnknown:  msgReasonUnknown,
	reasonExpired:  msgReasonExpired,
	reasonWrong:    msgReasonWrong,
	reasonMismatch: msgReasonMismatch,
	reasonSender:   msgReasonSender,
	reasonLevel:    msgReasonLevel,
}

// takesReason marks the messages whose {0} is a reason.
var takesReason = map[msgID]bool{
	msgCaptchaRefused: true, msgCaptchaRefusedRetry: true, msgCaptchaRefusedSolve: true, msgTokenRefusedSolve: true, msgSolveNew: true,
}

// audioLang returns the query asking media m for r's language, "" for m's
// default (a language m does not speak gets the default).
func (g *Gate) audioLang(r *http.Request, m Media) string {
	if len(m.Langs) < 2 {
		return ""
	}
	if l := g.Language(r); l != m.Langs[0] && slices.Contains(m.Langs, l) {
		return "?lang=" + l
	}
	return ""
}

// varyAudio adds Vary: Accept-Language to a response carrying c when c's
// audio URL was chosen by that header.
func (g *Gate) varyAudio(w http.ResponseWriter, r *http.Request, c *Captcha) {
	if c != nil && c.AudioURL != "" {
		g.languageFor(w, r)
	}
}
