// Package hosted is the kind of captcha solved on a hosted service
// (Cloudflare Turnstile, hCaptcha, Google reCAPTCHA v2 or v3) for
// captchagate. It is built on captchagate's exported Challenge, Describer
// and AnswerLimiter only: it has no media of its own.
package hosted

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/captchagate/captchagate"
)

// Verifier is a captchagate.Challenge solved on a hosted service (Cloudflare Turnstile,
// hCaptcha, Google reCAPTCHA v2 or v3): the visitor runs the service's widget
// with SiteKey, and its response token is the answer, checked by calling the
// service's siteverify API with Secret, the token and the client's address.
// Everything else stays the gate's: the Captcha to solve is issued and
// stored, one answer spends it, a right one mints the same captcha_token.
//
// The check fails closed: a timeout, a transport error, a non-200 answer, a
// body that is not the documented JSON or an error code that blames the
// server's configuration is an error (the gate answers service_unavailable
// and logs the cause); timeout-or-duplicate and already-seen-response, like
// every other client-side code, are a wrong answer. Build one with
// Turnstile, HCaptcha, ReCaptchaV2 or ReCaptchaV3.
type Verifier struct {
	Service Service
	// SiteKey is the public key the widget is run with; sent to the client in
	// the Captcha (and to hCaptcha's siteverify, which checks it).
	SiteKey string
	// Secret is the site's secret for siteverify. Never sent to the client.
	Secret string
	// VerifyURL overrides the service's siteverify endpoint (tests, proxies).
	VerifyURL string
	// Hostnames, if set, are the hostnames a solved widget may report; any
	// other is a wrong answer.
	Hostnames []string
	// Action, if set, is the action the widget must report (Turnstile,
	// reCAPTCHA v3); it is also sent to the client in the Captcha.
	Action string
	// MinScore is reCAPTCHA v3's threshold: a lower score is a wrong answer.
	// Default 0.5.
	MinScore float64
	// Timeout bounds one siteverify call. Default 5 seconds.
	Timeout time.Duration
	// Client makes the call. Default: an http.Client of its own.
	Client *http.Client
}

// Service names a hosted captcha service.
type Service int

const (
	ServiceTurnstile Service = iota + 1
	ServiceHCaptcha
	ServiceReCaptchaV2
	ServiceReCaptchaV3
)

// The services' documented siteverify endpoints.
const (
	TurnstileVerifyURL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
	HCaptchaVerifyURL  = "https://api.hcaptcha.com/siteverify"
	ReCaptchaVerifyURL = "https://www.google.com/recaptcha/api/siteverify"
)

// Turnstile returns a Cloudflare Turnstile verifier.
func Turnstile(siteKey, secret string) *Verifier {
	return &Verifier{Service: ServiceTurnstile, SiteKey: siteKey, Secret: secret}
}

// HCaptcha returns an hCaptcha verifier.
func HCaptcha(siteKey, secret string) *Verifier {
	return &Verifier{Service: ServiceHCaptcha, SiteKey: siteKey, Secret: secret}
}

// ReCaptchaV2 returns a Google reCAPTCHA v2 (checkbox or invisible) verifier.
func ReCaptchaV2(siteKey, secret string) *Verifier {
	return &Verifier{Service: ServiceReCaptchaV2, SiteKey: siteKey, Secret: secret}
}

// ReCaptchaV3 returns a Google reCAPTCHA v3 verifier that wants action and
// a score of at least minScore (0.5 if 0).
func ReCaptchaV3(siteKey, secret, action string, minScore float64) *Verifier {
	return &Verifier{Service: ServiceReCaptchaV3, SiteKey: siteKey, Secret: secret, Action: action, MinScore: minScore}
}

// Mode implements captchagate.Moder: "hosted", whichever the service.
func (h *Verifier) Mode() string { return "hosted" }

// Kind implements captchagate.Challenge: "turnstile", "hcaptcha", "recaptcha" or
// "recaptcha_v3".
func (h *Verifier) Kind() string {
	switch h.Service {
	case ServiceTurnstile:
		return "turnstile"
	case ServiceHCaptcha:
		return "hcaptcha"
	case ServiceReCaptchaV2:
		return "recaptcha"
	case ServiceReCaptchaV3:
		return "recaptcha_v3"
	}
	return "hosted"
}

// Issue implements captchagate.Challenge: the stored captcha only carries
// the flow; the service holds the puzzle.
func (*Verifier) Issue(captchagate.IssueInfo) ([]byte, error) { return []byte{}, nil }

// Describe implements captchagate.Describer: the "site_key" the widget is
// run with and, if the verifier checks one, its "action".
func (h *Verifier) Describe() map[string]any {
	m := map[string]any{"site_key": h.SiteKey}
	if h.Action != "" {
		m["action"] = h.Action
	}
	return m
}

// MaxAnswerLen implements captchagate.AnswerLimiter: response tokens run to
// a few KiB.
func (*Verifier) MaxAnswerLen() int { return 4 << 10 }

func (h *Verifier) verifyURL() string {
	if h.VerifyURL != "" {
		return h.VerifyURL
	}
	switch h.Service {
	case ServiceTurnstile:
		return TurnstileVerifyURL
	case ServiceHCaptcha:
		return HCaptchaVerifyURL
	}
	return ReCaptchaVerifyURL
}

// siteverifyResponse is the union of the services' documented answers.
type siteverifyResponse struct {
	Success    *bool    `json:"success"`
	Hostname   string   `json:"hostname"`
	Action     string   `json:"action"`
	Score      *float64 `json:"score"`
	ErrorCodes []string `json:"error-codes"`
}

// clientErrors are the error codes that blame the response token, not the
// server: a wrong answer. Any other code fails closed as an error.
var clientErrors = []string{
	"missing-input-response", "invalid-input-response", "timeout-or-duplicate",
	"already-seen-response", "expired-input-response", "invalid-or-already-seen-response",
}

// ErrVerifier is matched (errors.Is) by every failure of a hosted verifier
// to give a verdict.
var ErrVerifier = errors.New("hosted: verifier failed")

// Check implements captchagate.Challenge by calling the service's
// siteverify API, bounded by Timeout. An error is a failure to get a
// verdict: the gate fails closed.
func (h *Verifier) Check(ctx context.Context, c captchagate.CheckInfo) (bool, error) {
	answer := strings.TrimSpace(c.Answer)
	if answer == "" || len(answer) > h.MaxAnswerLen() {
		return false, nil
	}
	if h.Secret == "" {
		return false, fmt.Errorf("%w: no secret configured", ErrVerifier)
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	form := url.Values{"secret": {h.Secret}, "response": {answer}}
	if c.ClientIP != "" {
		form.Set("remoteip", c.ClientIP)
	}
	if h.Service == ServiceHCaptcha && h.SiteKey != "" {
		form.Set("sitekey", h.SiteKey)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.verifyURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrVerifier, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	client := h.Client
	if client == nil {
		client = defaultHostedClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// The error names the URL, never the form: the secret stays out of logs.
		return false, fmt.Errorf("%w: %s: %v", ErrVerifier, h.Kind(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false, fmt.Errorf("%w: %s: reading the answer: %v", ErrVerifier, h.Kind(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%w: %s answered %s", ErrVerifier, h.Kind(), resp.Status)
	}
	var v siteverifyResponse
	if err := json.Unmarshal(body, &v); err != nil || v.Success == nil {
		return false, fmt.Errorf("%w: %s answered something other than its siteverify JSON", ErrVerifier, h.Kind())
	}
	if !*v.Success {
		for _, code := range v.ErrorCodes {
			if !slices.Contains(clientErrors, code) {
				return false, fmt.Errorf("%w: %s: %s", ErrVerifier, h.Kind(), strings.Join(v.ErrorCodes, ","))
			}
		}
		return false, nil
	}
	if len(h.Hostnames) > 0 && !slices.Contains(h.Hostnames, v.Hostname) {
		return false, nil
	}
	if h.Action != "" && v.Action != h.Action {
		return false, nil
	}
	if h.Service == ServiceReCaptchaV3 {
		min := h.MinScore
		if min == 0 {
			min = 0.5
		}
		if v.Score == nil || *v.Score < min {
			return false, nil
		}
	}
	return true, nil
}

var defaultHostedClient = &http.Client{
	// No redirects: siteverify answers directly, and a redirect would carry
	// the form elsewhere.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
