package capwidget

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// The dialect's wire codes, invalid_request (HTTP 400): the widget's redeem
// in a shape no widget sends. Neither spends the challenge.
const (
	// CodeMalformedRedeem: the redeem body is not {"token":"...",
	// "solutions":[numbers]} (Param names the member at fault).
	CodeMalformedRedeem captchagate.Code = 4130
	// CodeTokenMismatch: the redeem's token is not the captcha of the
	// endpoint it was posted to (a spliced redeem).
	CodeTokenMismatch captchagate.Code = 4131
)

// TokenField is where the widget puts its token in the form (its hidden
// input's default name), read by Dialect on guarded requests.
const TokenField = "cap-token"

// Dialect answers the widget's requests to the API endpoint of a captcha
// of kind "cap" ({prefix}{id}/, see APIEndpoint):
//
//	POST {prefix}{id}/challenge   the challenge JSON (as GET {prefix}{id}.json)
//	POST {prefix}{id}/redeem      {"token":id,"solutions":[...]} → {"success":true,"token":captcha_token,"expires":ms}
//
// A redeem whose proof solves the challenge is the gate's Verify: the
// captcha is spent (atomically, once) and a captcha_token minted, bound to
// the captcha's flow like any other. A proof that does not solve it spends
// nothing, up to MaxWrong of them per challenge counted in Store; the
// MaxWrong-th is passed to Verify, which spends the captcha as it does any
// wrong answer and issues a fresh one for the flow. Failures are written
// by Gate.Error (the widget shows the "error" member's text): a wrong proof
// is captcha_invalid; a spent, expired or unknown captcha is not_found
// (captcha_invalid from Verify when the dialect has no Store).
//
// As a captchagate.ProofReader it finds the token on guarded requests in
// a cap-token member of a JSON body or field of a URL-encoded form (the
// widget's hidden input); naming the widget's field captcha_token
// (data-cap-hidden-field-name) needs no reader at all.
type Dialect struct {
	// Store counts the wrong proofs of each challenge, for as long as the
	// challenge lives (pass the gate's Config.Store). Nil counts nothing:
	// every wrong proof spends its challenge, as the gate's own verify does.
	// When the store fails, the proof is treated as the MaxWrong-th.
	Store captchagate.Store
	// MaxWrong is how many wrong proofs spend a challenge. Default 3; 1
	// spends it on the first.
	MaxWrong int
}

// APIEndpoint returns the widget's data-cap-api-endpoint for captcha c (as
// the gate made it, or decoded from JSON): its challenge_url without
// ".json", and a slash; "" if c has no challenge_url.
func APIEndpoint(c *captchagate.Captcha) string {
	var u string
	switch v := c.Extra["challenge_url"].(type) {
	case string:
		u = v
	case json.RawMessage:
		json.Unmarshal(v, &u)
	}
	if !strings.HasSuffix(u, ".json") {
		return ""
	}
	return strings.TrimSuffix(u, ".json") + "/"
}

// ServeEndpoint implements captchagate.Dialect: it answers
// {id}/challenge and {id}/redeem.
func (d Dialect) ServeEndpoint(g *captchagate.Gate, w http.ResponseWriter, r *http.Request, endpoint string, body []byte) bool {
	id, action, ok := strings.Cut(endpoint, "/")
	if !ok || (action != "challenge" && action != "redeem") {
		return false
	}
	var err error
	switch action {
	case "challenge":
		var b []byte
		if b, _, err = g.RenderMedia(r, id, "json", ""); err == nil {
			writeJSON(w, b)
		}
	case "redeem":
		var tok captchagate.Token
		if tok, err = d.redeem(g, r, id, body); err == nil {
			b, _ := json.Marshal(struct {
				Success bool   `json:"success"`
				Token   string `json:"token"`
				Expires int64  `json:"expires"`
			}{true, tok.Value, time.Now().Add(tok.ExpiresIn).UnixMilli()})
			writeJSON(w, b)
		}
	}
	if err != nil {
		g.Error(w, r, err)
	}
	return true
}

func writeJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

type redeemBody struct {
	Token     *string           `json:"token"`
	Solutions []json.RawMessage `json:"solutions"`
}

// redeem checks the shape of the widget's redeem, then its proof against
// the captcha's challenge, unspent, and passes a proof that solves it (or
// the MaxWrong-th wrong one) to Verify.
func (d Dialect) redeem(g *captchagate.Gate, r *http.Request, id string, body []byte) (captchagate.Token, error) {
	var none captchagate.Token
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return none, &captchagate.Error{Code: captchagate.CodeUnsupportedMedia, Description: "The redeem must be JSON."}
	}
	var p redeemBody
	if json.Unmarshal(bytes.TrimSpace(body), &p) != nil {
		return none, malformed("", "The redeem must be a JSON object.")
	}
	if p.Token == nil || *p.Token != id {
		if p.Token == nil {
			return none, malformed("token", "token is required.")
		}
		return none, &captchagate.Error{Code: CodeTokenMismatch, Param: "token", Description: "token is not the captcha of this endpoint."}
	}
	sol, ok := numbers(p.Solutions)
	if !ok {
		return none, malformed("solutions", "solutions must be whole numbers, one per challenge.")
	}
	answer := FormatSolutions(sol)
	if d.MaxWrong == 1 || d.Store == nil {
		return g.Verify(r, captchagate.Solution{CaptchaID: id, Answer: answer})
	}
	// The challenge, read unspent (not_found if it is spent, expired or
	// unknown); charged to the client's media budget like GET {id}.json.
	b, _, err := g.RenderMedia(r, id, "json", "")
	if err != nil {
		return none, err
	}
	var c Challenge
	if err := json.Unmarshal(b, &c); err != nil {
		return none, err
	}
	if !Solves(c.Challenge, sol) && !d.spend(r.Context(), id, time.UnixMilli(c.Expires)) {
		return none, &captchagate.Error{Code: captchagate.CodeCaptchaInvalid,
			Description: "The proof does not solve the challenge; it was not spent."}
	}
	// Verify spends the captcha and checks the proof again, against the
	// secret: a right proof gets a token once, the MaxWrong-th wrong one
	// spends the captcha.
	return g.Verify(r, captchagate.Solution{CaptchaID: id, Answer: answer})
}

// spend counts a wrong proof of captcha id and reports whether it is the
// MaxWrong-th (or the store failed): the one that spends the captcha.
func (d Dialect) spend(ctx context.Context, id string, expires time.Time) bool {
	maxWrong := d.MaxWrong
	if maxWrong <= 0 {
		maxWrong = 3
	}
	// As long as the challenge lives, by the wall clock (the gate's own
	// clock is not the dialect's to read), between a minute and a day.
	window := min(max(time.Until(expires), time.Minute), 24*time.Hour)
	sum := sha256.Sum256([]byte("capwidget wrong\x00" + id))
	n, _, err := d.Store.Incr(ctx, "capwidget:wrong:"+base64.RawURLEncoding.EncodeToString(sum[:16]), 1, window)
	return err != nil || n >= int64(maxWrong)
}

func malformed(param, desc string) error {
	return &captchagate.Error{Code: CodeMalformedRedeem, Param: param, Description: desc}
}

// ReadProof implements captchagate.ProofReader: the widget's token in a
// cap-token member of a JSON body or field of a URL-encoded form.
func (Dialect) ReadProof(r *http.Request, body []byte) (captchagate.Proof, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var tok string
	switch {
	case mt == "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return captchagate.Proof{}, false
		}
		tok = q.Get(TokenField)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return captchagate.Proof{}, false
		}
		if json.Unmarshal(m[TokenField], &tok) != nil {
			return captchagate.Proof{}, false
		}
	}
	if strings.TrimSpace(tok) == "" {
		return captchagate.Proof{}, false
	}
	return captchagate.Proof{Token: tok}, true
}
