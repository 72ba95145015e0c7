package captchagate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Handler serves the captcha endpoints under Config.Prefix (mount it there,
// with or without http.StripPrefix):
//
//	GET  {prefix}{id}.png          the image
//	GET  {prefix}{id}.wav?lang=en  the audio (en, ru, zh, ja, pt)
//	POST {prefix}new               {"policy":"login"}: a captcha up front, for forms that always show one
//	POST {prefix}refresh           {"captcha_id":"..."}: a new captcha for the same flow
//	POST {prefix}verify            {"captcha_id":"...","captcha_answer":"..."}: a captcha_token
//
// POST bodies are JSON or URL-encoded forms; captcha_id and policy may also be
// query parameters. GET never changes state. See docs/protocol.md.
func (g *Gate) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

const maxParamBody = 4 << 10

// paramBody bounds the captcha endpoints' bodies: 4 KiB, more for a
// challenge with long answers.
func (g *Gate) paramBody() int64 { return int64(max(maxParamBody, g.maxAnswerLen()+1<<10)) }

func (g *Gate) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, g.prefix)
	if !ok {
		rest = strings.TrimPrefix(r.URL.Path, "/")
	}
	var err error
	switch rest {
	case "verify", "refresh", "new":
		if r.Method != http.MethodPost {
			err = &Error{Code: CodeMethodNotAllowed, Description: "use POST", Allow: "POST"}
			break
		}
		switch rest {
		case "verify":
			err = g.serveVerify(w, r)
		case "refresh":
			err = g.serveRefresh(w, r)
		default:
			err = g.serveNew(w, r)
		}
	default:
		id, format, found := strings.Cut(rest, ".")
		if !found || !g.hasFormat(format) {
			err = &Error{Code: CodeNotFound, Description: "no such endpoint"}
			break
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			err = &Error{Code: CodeMethodNotAllowed, Description: "use GET", Allow: "GET, HEAD"}
			break
		}
		err = g.serveMedia(w, r, id, format)
	}
	if err != nil {
		g.fail(w, r, err)
	}
}

func (g *Gate) hasFormat(f string) bool {
	for _, x := range g.challenge.Formats() {
		if x == f {
			return true
		}
	}
	return false
}

func (g *Gate) serveMedia(w http.ResponseWriter, r *http.Request, id, format string) error {
	if !validID(id) {
		return invalid(CodeMalformedCaptchaID, IDField, "captcha_id is not a captcha id")
	}
	lang := ""
	if format == "wav" {
		lang = r.URL.Query().Get("lang")
		if lang != "" && !validLang(lang) {
			return invalid(CodeUnsupportedLang, "lang", "lang must be one of en, ru, zh, ja, pt")
		}
	}
	ctx, cancel := g.storeContext(r)
	err := g.allowMedia(ctx, r)
	var rec record
	if err == nil {
		rec, err = g.pending(ctx, r, id)
	}
	cancel()
	if err != nil {
		return err
	}
	m, err := g.render(r.Context(), r, id, &rec, format, lang)
	if err != nil {
		return err
	}
	defer m.release()
	h := w.Header()
	h.Set("Content-Type", m.ct)
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.b))
	return nil
}

type params struct {
	CaptchaID string `json:"captcha_id"`
	Answer    string `json:"captcha_answer"`
	Policy    string `json:"policy"`
	// The slider's seed-compatible verify.
	PointJSON string `json:"point_json"`
	Token     string `json:"token"`
	Sender    string `json:"sender"`
}

// seedDialect reports whether p is a verify request in the slider seed's
// form.
func (p *params) seedDialect() bool { return p.PointJSON != "" || p.Token != "" || p.Sender != "" }

// readParams reads a JSON or URL-encoded body of at most limit bytes
// (paramBody), then fills captcha_id and policy from the query where the body
// has none.
func readParams(r *http.Request, limit int64) (params, error) {
	var p params
	body, err := readBody(r, limit)
	if err != nil {
		return p, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
		if !isJSON && mt != "application/x-www-form-urlencoded" {
			return p, invalid(CodeUnsupportedMedia, "", "Content-Type must be application/json or application/x-www-form-urlencoded")
		}
		if !utf8.Valid(body) {
			return p, invalid(CodeMalformedBody, "", "body is not valid UTF-8")
		}
		if isJSON {
			if err := json.Unmarshal(body, &p); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) && te.Field != "" {
					return p, invalid(CodeMalformedBody, te.Field, te.Field+" must be a string")
				}
				return p, invalid(CodeMalformedBody, "", "body is not a valid JSON object")
			}
		} else {
			q, err := url.ParseQuery(string(body))
			if err != nil {
				return p, invalid(CodeMalformedBody, "", "body is not a valid form")
			}
			p.CaptchaID, p.Answer, p.Policy = q.Get(IDField), q.Get(AnswerField), q.Get("policy")
			p.PointJSON, p.Token, p.Sender = q.Get("point_json"), q.Get("token"), q.Get("sender")
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
		return invalid(CodeMissingCaptchaID, IDField, "captcha_id is required")
	}
	if !validID(id) {
		return invalid(CodeMalformedCaptchaID, IDField, "captcha_id is not a captcha id")
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

func (g *Gate) serveVerify(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r, g.paramBody())
	if err != nil {
		return err
	}
	if sl, ok := g.challenge.(seedSpeaker); ok && p.seedDialect() {
		return g.serveSeedVerify(w, r, sl.slider(), &p)
	}
	if err := checkID(p.CaptchaID); err != nil {
		return err
	}
	if err := g.checkAnswer(p.Answer); err != nil {
		return err
	}
	return g.verify(w, r, p.CaptchaID, p.Answer, "")
}

// checkAnswer refuses an answer that no captcha of the gate's kind could
// accept (missing, too long, not text, or refused by the Challenge's
// AnswerValidator), before any captcha is spent on it.
func (g *Gate) checkAnswer(answer string) error {
	if strings.TrimSpace(answer) == "" {
		return invalid(CodeMissingAnswer, AnswerField, "captcha_answer is required")
	}
	if len(answer) > g.maxAnswerLen() || !utf8.ValidString(answer) {
		return invalid(CodeMalformedAnswer, AnswerField, "captcha_answer is too long or not text")
	}
	if v, ok := g.challenge.(AnswerValidator); ok && !v.ValidAnswer(answer) {
		return invalid(CodeMalformedAnswer, AnswerField, "captcha_answer is not an answer of this kind of captcha")
	}
	return nil
}

// verify checks answer against captcha id and answers with a token, bound
// to sender too if it is not empty. Every check of the request's shape comes
// before the captcha is spent.
func (g *Gate) verify(w http.ResponseWriter, r *http.Request, id, answer, sender string) error {
	ctx, cancel := g.storeContext(r)
	defer cancel()
	if sender != "" {
		// The sender can be bound only if the captcha's policy has a Sender
		// key: read the captcha, unspent, to know its policy. An unknown,
		// used or expired one is left to solve to say so.
		rec, err := g.pending(ctx, r, id)
		var e *Error
		switch {
		case err == nil:
			if gd, ok := g.policy(rec.policy); !ok || !gd.hasSender() {
				return invalid(CodeMalformedSender, "sender", "sender cannot be bound: the captcha's policy has no Sender key")
			}
		case !errors.As(err, &e) || e.Code != CodeNotFound:
			return err
		}
	}
	rec, found, reason, err := g.solve(ctx, r, id, answer)
	if err != nil {
		return err
	}
	var sh *[16]byte
	if reason == "" && sender != "" {
		h := g.senderHash(rec.policy, sender)
		sh = &h
	}
	if reason != "" {
		g.emit(Event{Kind: EventCaptchaRejected, Policy: rec.policy, CaptchaID: id, Reason: reason, Request: r})
		e := &Error{Code: CodeCaptchaInvalid, Description: "captcha " + reason}
		if found { // a fresh captcha for the same flow, with its refresh count
			c, err := g.issue(ctx, r, bindingOf(&rec), rec.refreshes)
			var ce *Error
			if errors.As(err, &ce) {
				e.RetryAfter = ce.RetryAfter
			}
			e.Captcha = c
			if c != nil {
				e.Description += "; solve the new captcha"
			}
		} else {
			e.Description += "; retry the original request for a new one"
		}
		return e
	}
	tok, err := g.mintToken(ctx, r, rec, sh)
	if err != nil {
		return err
	}
	g.emit(Event{Kind: EventCaptchaVerified, Policy: rec.policy, CaptchaID: id, Request: r})
	writeJSON(w, http.StatusOK, tokenBody{Token: tok, ExpiresIn: int(g.tokenTTL / time.Second)})
	return nil
}

func (g *Gate) serveRefresh(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r, g.paramBody())
	if err != nil {
		return err
	}
	c, err := g.Refresh(r, p.CaptchaID)
	if err != nil {
		return err
	}
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
		return nil, &Error{Code: CodeTooManyRequests, Description: "refresh limit reached; answer this captcha"}
	}
	if err := g.allowCreate(ctx, r); err != nil {
		return nil, err
	}
	// Take, not Get: of concurrent refreshes of one captcha, one wins.
	_, found, err := g.store.Take(ctx, captchaKey(id))
	if err != nil {
		return nil, g.unavailable(r, rec.policy, err)
	}
	if !found {
		return nil, &Error{Code: CodeNotFound, Description: "unknown or used captcha"}
	}
	return g.issueUncharged(ctx, r, bindingOf(&rec), rec.refreshes+1)
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
	return g.describe(id, int(rec.refreshes)), nil
}

// pending reads captcha id without consuming it.
func (g *Gate) pending(ctx context.Context, r *http.Request, id string) (record, error) {
	v, found, err := g.store.Get(ctx, captchaKey(id))
	var rec record
	if err == nil && found {
		rec, err = decodeRecord(v)
	}
	if err != nil {
		return rec, g.unavailable(r, "", err)
	}
	if !found || g.now().UnixNano() >= rec.expires {
		return rec, &Error{Code: CodeNotFound, Description: "unknown, used or expired captcha"}
	}
	return rec, nil
}

func (g *Gate) serveNew(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r, g.paramBody())
	if err != nil {
		return err
	}
	if p.Policy == "" {
		return invalid(CodeMissingPolicy, "policy", "policy is required")
	}
	if _, ok := g.policy(p.Policy); !ok {
		return invalid(CodeUnknownPolicy, "policy", "policy names no guarded policy")
	}
	ctx, cancel := g.storeContext(r)
	defer cancel()
	c, err := g.issue(ctx, r, g.bindingFor(p.Policy, 0, nil, g.sessionHash(r)), 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, captchaBody{Captcha: c})
	return nil
}
