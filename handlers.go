package captchagate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Handler serves the captcha endpoints under Config.Prefix (mount it there,
// with or without http.StripPrefix):
//
//	GET  {prefix}{id}.png          the image (the Challenge's Media)
//	GET  {prefix}{id}.wav?lang=en  the audio (Digits: en, ru, zh, ja, pt)
//	POST {prefix}new               {"policy":"login"}: a captcha up front, for forms that always show one
//	POST {prefix}refresh           {"captcha_id":"..."}: a new captcha for the same flow
//	POST {prefix}verify            {"captcha_id":"...","captcha_answer":"..."}: a captcha_token
//
// POST bodies are JSON or URL-encoded forms; captcha_id and policy may also be
// query parameters. GET never changes state. See docs/protocol.md. A POST
// in the shape of one of Config.Dialects is answered by that Dialect.
func (g *Gate) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

const maxParamBody = 4 << 10

// paramBody bounds the captcha endpoints' bodies: 4 KiB, more for a
// challenge with long answers.
func (g *Gate) paramBody() int64 { return int64(max(maxParamBody, g.maxAnswerLen()+1<<10)) }

func (g *Gate) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.mountChecked.Load() && g.mountChecked.CompareAndSwap(false, true) {
		g.checkMount(r)
	}
	if g.cors != nil && g.cors.handle(w, r) {
		return // a preflight of an allowed origin, answered
	}
	rest, ok := strings.CutPrefix(r.URL.Path, g.prefix)
	if !ok {
		rest = strings.TrimPrefix(r.URL.Path, "/")
	}
	if err := g.serveEndpoint(w, r, rest); err != nil {
		g.Error(w, r, err)
	}
}

// checkMount warns, once, when the first request Handler serves came to a
// path outside Config.Prefix: the captcha URLs the gate sends to clients
// (Config.BaseURL and Config.Prefix) then lead elsewhere, a 404 for every
// image, sound, refresh and verify. It reads the path the client asked for
// (RequestURI), so a mount under http.StripPrefix at Prefix passes.
func (g *Gate) checkMount(r *http.Request) {
	asked := r.RequestURI
	if i := strings.IndexAny(asked, "?#"); i >= 0 {
		asked = asked[:i]
	}
	if u, err := url.ParseRequestURI(asked); err == nil && u.Path != "" {
		asked = u.Path // absolute-form requests (through a proxy) carry the scheme and host
	}
	if asked == "" || strings.HasPrefix(asked, g.prefix) || strings.HasPrefix(asked, g.basePath+g.prefix) {
		return
	}
	asked = asked[:strings.LastIndex(asked, "/")+1] // where it is mounted; never a captcha's id
	g.logger.Warn("captchagate: Handler serves a path outside Config.Prefix: the captcha URLs sent to clients "+
		"lead elsewhere (404); mount Handler at Config.Prefix (or set Prefix to where it is mounted)",
		"mounted", asked, "prefix", g.prefix, "example_url", g.URL("verify"))
}

func (g *Gate) serveEndpoint(w http.ResponseWriter, r *http.Request, rest string) error {
	if id, format, found := strings.Cut(rest, "."); found {
		m, ok := g.mediaFormat(format)
		if !ok {
			return said(&Error{Code: CodeNotFound}, msgNoEndpoint)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return said(&Error{Code: CodeMethodNotAllowed, Allow: "GET, HEAD"}, msgUseMethod, "GET")
		}
		return g.serveMedia(w, r, id, m)
	}
	own := rest == "verify" || rest == "refresh" || rest == "new"
	if !own && len(g.dialects) == 0 {
		return said(&Error{Code: CodeNotFound}, msgNoEndpoint)
	}
	if r.Method != http.MethodPost {
		return said(&Error{Code: CodeMethodNotAllowed, Allow: "POST"}, msgUseMethod, "POST")
	}
	body, err := readBody(r, g.paramBody())
	if err != nil {
		return err
	}
	for _, d := range g.dialects {
		if d.ServeEndpoint(g, w, r, rest, body) {
			return nil
		}
	}
	switch rest {
	case "verify":
		return g.serveVerify(w, r, body)
	case "refresh":
		return g.serveRefresh(w, r, body)
	case "new":
		return g.serveNew(w, r, body)
	}
	return said(&Error{Code: CodeNotFound}, msgNoEndpoint)
}

func (g *Gate) serveMedia(w http.ResponseWriter, r *http.Request, id string, m Media) error {
	md, err := g.fetchMedia(r, id, m, r.URL.Query().Get("lang"))
	if err != nil {
		return err
	}
	defer md.release()
	h := w.Header()
	h.Set("Content-Type", md.ct)
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(md.b))
	return nil
}

// RenderMedia returns the media of captcha id in format (and lang, for a
// format with languages; "" for its default), as GET {prefix}{id}.{format}
// serves it, charged to the client's media budget: for a Dialect whose
// clients want it inline (a data: URL). It fails with an *Error like the
// endpoint: not_found for a format the Challenge does not render or a
// captcha that cannot be answered, invalid_request for a malformed id or
// an unsupported lang, too_many_requests past Config.MediaRate,
// service_unavailable when the store or the renderer fails.
func (g *Gate) RenderMedia(r *http.Request, id, format, lang string) (b []byte, contentType string, err error) {
	m, ok := g.mediaFormat(format)
	if !ok {
		return nil, "", said(&Error{Code: CodeNotFound}, msgNoFormat)
	}
	md, err := g.fetchMedia(r, id, m, lang)
	if err != nil {
		return nil, "", err
	}
	defer md.release()
	return bytes.Clone(md.b), md.ct, nil
}

// fetchMedia charges the client's media budget and returns the media of
// captcha id in m's format, held for the caller (release it).
func (g *Gate) fetchMedia(r *http.Request, id string, m Media, lang string) (*media, error) {
	if !validID(id) {
		return nil, invalid(CodeMalformedCaptchaID, IDField, msgNotCaptchaID)
	}
	if len(m.Langs) == 0 {
		lang = ""
	} else if lang = cmp.Or(lang, m.Langs[0]); !slices.Contains(m.Langs, lang) {
		return nil, invalid(CodeUnsupportedLang, "lang", msgLangOneOf, strings.Join(m.Langs, ", "))
	}
	ctx, cancel := g.storeContext(r)
	err := g.allowMedia(ctx, r)
	var rec record
	if err == nil {
		rec, err = g.pending(ctx, r, id)
	}
	cancel()
	if err != nil {
		return nil, err
	}
	md, err := g.render(r.Context(), r, id, &rec, m.Format, lang)
	if err == nil && m.Member == "audio_url" && g.heard != nil {
		g.heard.add(id) // its answer counts as solved by ear (Event.Mode)
	}
	return md, err
}

type params struct {
	CaptchaID string `json:"captcha_id"`
	Answer    string `json:"captcha_answer"`
	Policy    string `json:"policy"`
}

// readParams parses body, JSON or URL-encoded, then fills captcha_id and
// policy from the query where the body has none.
func readParams(r *http.Request, body []byte) (params, error) {
	var p params
	if len(bytes.TrimSpace(body)) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
		if !isJSON && mt != "application/x-www-form-urlencoded" {
			return p, invalid(CodeUnsupportedMedia, "", msgContentType)
		}
		if !utf8.Valid(body) {
			return p, invalid(CodeMalformedBody, "", msgBodyUTF8)
		}
		if isJSON {
			if err := json.Unmarshal(body, &p); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) && te.Field != "" {
					return p, invalid(CodeMalformedBody, te.Field, msgMustBeString, te.Field)
				}
				return p, invalid(CodeMalformedBody, "", msgBodyJSON)
			}
		} else {
			q, err := url.ParseQuery(string(body))
			if err != nil {
				return p, invalid(CodeMalformedBody, "", msgBodyForm)
			}
			p.CaptchaID, p.Answer, p.Policy = q.Get(IDField), q.Get(AnswerField), q.Get("policy")
		}
	}
	if p.CaptchaID == "" || p.Policy == "" {
		q := r.URL.Query()
		if p.CaptchaID == "" {
			p.CaptchaID = q.Get(IDField)
		}
		if p.Policy == "" {
			p.Policy = q.Get("policy")
		}
	}
	p.CaptchaID = strings.TrimSpace(p.CaptchaID)
	p.Policy = strings.TrimSpace(p.Policy)
	return p, nil
}

func checkID(id string) error {
	if id == "" {
		return invalid(CodeMissingCaptchaID, IDField, msgIDRequired)
	}
	if !validID(id) {
		return invalid(CodeMalformedCaptchaID, IDField, msgNotCaptchaID)
	}
	return nil
}

type tokenBody struct {
	Token     string `json:"captcha_token"`
	ExpiresIn int    `json:"expires_in"`
}

type captchaBody struct {
	Captcha *Captcha `json:"captcha"`
}

func (g *Gate) serveVerify(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := readParams(r, body)
	if err != nil {
		return err
	}
	tok, err := g.Verify(r, Solution{CaptchaID: p.CaptchaID, Answer: p.Answer})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenBody{Token: tok.Value, ExpiresIn: int(tok.ExpiresIn / time.Second)})
	return nil
}

// checkAnswer refuses an answer that no captcha of the gate's kind could
// accept (missing, too long, not text, or refused by the Challenge's
// AnswerValidator), before any captcha is spent on it.
func (g *Gate) checkAnswer(answer string) error {
	if strings.TrimSpace(answer) == "" {
		return invalid(CodeMissingAnswer, AnswerField, msgAnswerRequired)
	}
	if len(answer) > g.maxAnswerLen() || !utf8.ValidString(answer) {
		return invalid(CodeMalformedAnswer, AnswerField, msgAnswerMalformed)
	}
	if v, ok := g.challenge.(AnswerValidator); ok && !v.ValidAnswer(answer) {
		return invalid(CodeMalformedAnswer, AnswerField, msgAnswerKind)
	}
	return nil
}

// Solution is an answer to a captcha, as the verify endpoint (or a
// Dialect's) reads it.
type Solution struct {
	CaptchaID string
	Answer    string
	// Sender, if set, binds the token to where a code is sent (a phone
	// number or an email address): only a request whose Key.Sender key has
	// that value can use it. The captcha's policy must have a Sender key.
	Sender string
}

// Token is a minted captcha_token and how long it can be used.
type Token struct {
	Value     string
	ExpiresIn time.Duration
}

// Verify checks s.Answer against captcha s.CaptchaID, spending it, and
// returns a single-use captcha_token bound like the captcha (and to
// s.Sender if set), as POST {prefix}verify does. It fails with an *Error:
// invalid_request for a malformed id, answer or sender (nothing spent),
// captcha_invalid for a wrong answer or an unknown, used or expired captcha
// (with a fresh captcha for the same flow in Error.Captcha when the captcha
// was found), service_unavailable when the store or a verifier fails.
func (g *Gate) Verify(r *http.Request, s Solution) (Token, error) {
	if err := checkID(s.CaptchaID); err != nil {
		return Token{}, err
	}
	if err := g.checkAnswer(s.Answer); err != nil {
		return Token{}, err
	}
	s.Sender = strings.TrimSpace(s.Sender)
	if len(s.Sender) > maxKeyValue {
		return Token{}, invalid(CodeMalformedSender, "sender", msgSenderLong)
	}
	ctx, cancel := g.storeContext(r)
	defer cancel()
	if s.Sender != "" {
		if err := g.canBindSender(ctx, r, s.CaptchaID); err != nil {
			return Token{}, err
		}
	}
	rec, found, reason, err := g.solve(ctx, r, s.CaptchaID, s.Answer, nil)
	if err != nil {
		return Token{}, err
	}
	if reason != "" {
		return Token{}, g.refused(ctx, r, s.CaptchaID, &rec, found, reason)
	}
	var sh *[16]byte
	if s.Sender != "" {
		h := g.senderHash(rec.policy, s.Sender)
		sh = &h
	}
	tok, err := g.mintToken(ctx, r, rec, sh)
	if err != nil {
		return Token{}, err
	}
	g.emit(Event{Kind: EventCaptchaVerified, Policy: rec.policy, CaptchaID: s.CaptchaID, Mode: g.modeOf(s.CaptchaID), Request: r})
	return Token{Value: tok, ExpiresIn: g.tokenTTL}, nil
}

// canBindSender refuses a sender for captcha id if the captcha's policy has
// no Sender key, reading the captcha unspent. An unknown, used or expired
// captcha is left to solve to say so.
func (g *Gate) canBindSender(ctx context.Context, r *http.Request, id string) error {
	rec, err := g.pending(ctx, r, id)
	var e *Error
	switch {
	case err == nil:
		if gd, ok := g.policy(rec.policy); !ok || !gd.hasSender() {
			return invalid(CodeMalformedSender, "sender", msgSenderUnbound)
		}
	case !errors.As(err, &e) || e.Code != CodeNotFound:
		return err
	}
	return nil
}

// refused reports a refused answer to captcha id and returns the
// captcha_invalid to answer with, carrying a fresh captcha for the same
// flow (with its refresh count) when the captcha was found.
func (g *Gate) refused(ctx context.Context, r *http.Request, id string, rec *record, found bool, reason string) error {
	g.emit(Event{Kind: EventCaptchaRejected, Policy: rec.policy, CaptchaID: id, Reason: reason, Mode: g.modeOf(id), Request: r})
	e := said(&Error{Code: CodeCaptchaInvalid}, msgCaptchaRefused, reason)
	if !found {
		said(e, msgCaptchaRefusedRetry, reason)
		return e
	}
	c, err := g.issue(ctx, r, bindingOf(rec), rec.refreshes)
	var ce *Error
	if errors.As(err, &ce) {
		e.RetryAfter = ce.RetryAfter
	}
	e.Captcha = c
	if c != nil {
		said(e, msgCaptchaRefusedSolve, reason)
	}
	return e
}

func (g *Gate) serveRefresh(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := readParams(r, body)
	if err != nil {
		return err
	}
	c, err := g.Refresh(r, p.CaptchaID)
	if err != nil {
		return err
	}
	g.varyAudio(w, r, c)
	writeJSON(w, http.StatusOK, captchaBody{Captcha: c})
	return nil
}

// Refresh replaces captcha id with a new one for the same flow (same policy,
// keys and session), as POST {prefix}refresh does, and returns it. The old
// id stops working. It fails with an *Error: invalid_request for a malformed
// id, not_found for an unknown, used or expired one, too_many_requests past
// Config.MaxRefreshes or the client's creation limit, service_unavailable
// when the store fails.
func (g *Gate) Refresh(r *http.Request, id string) (*Captcha, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	ctx, cancel := g.storeContext(r)
	defer cancel()
	rec, err := g.pending(ctx, r, id)
	if err != nil {
		return nil, err
	}
	if int(rec.refreshes) >= g.maxRefreshes {
		return nil, said(&Error{Code: CodeTooManyRequests}, msgRefreshLimit)
	}
	if err := g.allowCreate(ctx, r, rec.policy); err != nil {
		return nil, err
	}
	// Taken, not read: of concurrent refreshes of one captcha, one wins.
	_, found, err := g.captchas.take(ctx, id)
	if err != nil {
		return nil, g.unavailable(r, rec.policy, err)
	}
	if !found {
		return nil, said(&Error{Code: CodeNotFound}, msgUnknownUsed)
	}
	return g.issueAs(ctx, r, bindingOf(&rec), rec.refreshes+1, EventCaptchaRefreshed)
}

// Lookup describes captcha id if it can still be answered, for a page that
// shows it again (package htmlform's widget does). It fails like Refresh.
func (g *Gate) Lookup(r *http.Request, id string) (*Captcha, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	ctx, cancel := g.storeContext(r)
	defer cancel()
	rec, err := g.pending(ctx, r, id)
	if err != nil {
		return nil, err
	}
	return g.describe(r, id, int(rec.refreshes)), nil
}

// pending reads captcha id without spending it, and reports it not_found
// unless it can still be answered.
func (g *Gate) pending(ctx context.Context, r *http.Request, id string) (record, error) {
	rec, found, err := g.captchas.get(ctx, id)
	if err != nil {
		return rec, g.unavailable(r, "", err)
	}
	if !found || g.now().UnixNano() >= rec.expires {
		return rec, said(&Error{Code: CodeNotFound}, msgUnknownUsedExpired)
	}
	return rec, nil
}

func (g *Gate) serveNew(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := readParams(r, body)
	if err != nil {
		return err
	}
	c, err := g.NewCaptcha(r, p.Policy)
	if err != nil {
		return err
	}
	g.varyAudio(w, r, c)
	writeJSON(w, http.StatusOK, captchaBody{Captcha: c})
	return nil
}

// NewCaptcha issues a captcha for policy up front, as POST {prefix}new does,
// for forms that always show one: a token minted from it passes the policy's
// guard whichever keys trip, as long as it has the request's session (if
// any). It fails with an *Error: invalid_request for a missing or unknown
// policy, too_many_requests past the client's creation limit,
// service_unavailable when the store fails.
func (g *Gate) NewCaptcha(r *http.Request, policy string) (*Captcha, error) {
	if policy == "" {
		return nil, invalid(CodeMissingPolicy, "policy", msgPolicyRequired)
	}
	if _, ok := g.policy(policy); !ok {
		return nil, invalid(CodeUnknownPolicy, "policy", msgPolicyUnknown)
	}
	ctx, cancel := g.storeContext(r)
	defer cancel()
	return g.issue(ctx, r, g.bindingFor(policy, 0, nil, g.sessionHash(r)), 0)
}
