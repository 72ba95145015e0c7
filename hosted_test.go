package captchagate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/hosted"
)

// siteverify is a local stand-in for a hosted service's siteverify API,
// following its documented request (a POST form of secret, response,
// remoteip; hCaptcha also sitekey) and answers (success, hostname,
// challenge_ts, error-codes; action for Turnstile and reCAPTCHA v3, score
// for reCAPTCHA v3 and hCaptcha Enterprise). Tokens it hands out are valid
// once; a second use is a duplicate, answered with the service's own code.
type siteverify struct {
	service  hosted.Service
	secret   string
	hostname string
	action   string
	score    float64

	mu       sync.Mutex
	tokens   map[string]bool // token -> used
	requests []map[string][]string
	status   int           // non-zero: answer this status
	raw      string        // non-empty: answer this body
	hang     chan struct{} // non-nil: wait for it
	srv      *httptest.Server
}

func newSiteverify(t *testing.T, service hosted.Service) *siteverify {
	s := &siteverify{service: service, secret: "0x4AAAAAAAsecret", hostname: "example.com", action: "login", score: 0.9, tokens: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.mu.Lock()
		if s.hang != nil {
			close(s.hang)
			s.hang = nil
		}
		s.mu.Unlock()
		s.srv.Close()
	})
	return s
}

// solve is what the visitor's widget does: it returns a fresh response
// token.
func (s *siteverify) solve() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := fmt.Sprintf("XXXX.DUMMY.TOKEN.%d", len(s.tokens))
	s.tokens[tok] = false
	return tok
}

func (s *siteverify) duplicateCode() string {
	if s.service == hosted.ServiceHCaptcha {
		return "already-seen-response"
	}
	return "timeout-or-duplicate"
}

func (s *siteverify) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
		writeVerify(w, map[string]any{"success": false, "error-codes": []string{"bad-request"}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.PostForm)
	if s.status != 0 {
		w.WriteHeader(s.status)
		return
	}
	if s.raw != "" {
		w.Write([]byte(s.raw))
		return
	}
	secret, resp := r.PostForm.Get("secret"), r.PostForm.Get("response")
	var codes []string
	switch {
	case secret == "":
		codes = []string{"missing-input-secret"}
	case secret != s.secret:
		codes = []string{"invalid-input-secret"}
	case resp == "":
		codes = []string{"missing-input-response"}
	}
	if codes == nil {
		used, known := s.tokens[resp]
		switch {
		case !known:
			codes = []string{"invalid-input-response"}
		case used:
			codes = []string{s.duplicateCode()}
		default:
			s.tokens[resp] = true
		}
	}
	if codes != nil {
		writeVerify(w, map[string]any{"success": false, "error-codes": codes})
		return
	}
	out := map[string]any{"success": true, "challenge_ts": "2026-11-21T10:00:00Z", "hostname": s.hostname, "error-codes": []string{}}
	switch s.service {
	case hosted.ServiceTurnstile:
		out["action"] = s.action
		out["cdata"] = ""
	case hosted.ServiceReCaptchaV3:
		out["action"] = s.action
		out["score"] = s.score
	case hosted.ServiceHCaptcha:
		out["credit"] = false
	}
	writeVerify(w, out)
}

func writeVerify(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func hostedApp(t *testing.T, sv *siteverify, mutate func(*hosted.Verifier)) (*loginApp, *bytes.Buffer) {
	h := &hosted.Verifier{Service: sv.service, SiteKey: "1x00000000000000000000AA", Secret: sv.secret, VerifyURL: sv.srv.URL,
		Hostnames: []string{"example.com"}, Timeout: 200 * time.Millisecond}
	if sv.service == hosted.ServiceTurnstile || sv.service == hosted.ServiceReCaptchaV3 {
		h.Action = "login"
	}
	if mutate != nil {
		mutate(h)
	}
	var logs bytes.Buffer
	a := newLoginApp(t, func(c *captchagate.Config) {
		c.Challenge = h
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	return a, &logs
}

var services = []hosted.Service{hosted.ServiceTurnstile, hosted.ServiceHCaptcha, hosted.ServiceReCaptchaV2, hosted.ServiceReCaptchaV3}

func TestHostedFlow(t *testing.T) {
	for _, svc := range services {
		sv := newSiteverify(t, svc)
		a, logs := hostedApp(t, sv, nil)
		c := a.trip(t, "alice")
		kind := map[hosted.Service]string{hosted.ServiceTurnstile: "turnstile", hosted.ServiceHCaptcha: "hcaptcha",
			hosted.ServiceReCaptchaV2: "recaptcha", hosted.ServiceReCaptchaV3: "recaptcha_v3"}[svc]
		assert.Equal(t, kind, c.Kind)
		assert.Equal(t, "1x00000000000000000000AA", member(c, "site_key"), kind)
		assert.Empty(t, c.ImageURL+c.AudioURL+member(c, "challenge_url")+member(c, "piece_url"), kind)
		assert.Equal(t, http.StatusNotFound, serve(a.mux, "GET", "/captcha/"+c.ID+".png", "").Code, kind)

		resp := sv.solve()
		tok := solveWith(t, a.mux, c.ID, resp)
		require.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", tok).Code, kind)

		sv.mu.Lock()
		req := sv.requests[len(sv.requests)-1]
		sv.mu.Unlock()
		assert.Equal(t, sv.secret, req["secret"][0], kind)
		assert.Equal(t, resp, req["response"][0], kind)
		assert.Equal(t, "192.0.2.1", req["remoteip"][0], kind)
		if svc == hosted.ServiceHCaptcha {
			assert.Equal(t, "1x00000000000000000000AA", req["sitekey"][0])
		}

		// The same response token again, on a new captcha: the service
		// calls it a duplicate, and that is a wrong answer, not an outage.
		c = a.trip(t, "bob")
		w := verify(a.mux, c.ID, resp)
		assert.Equal(t, http.StatusForbidden, w.Code, kind)
		assert.Equal(t, 4002, decodeError(t, w).ErrorCode, kind)
		assert.NotContains(t, logs.String(), sv.secret, kind)
	}
}

func TestHostedChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		svc    hosted.Service
		mutate func(*siteverify, *hosted.Verifier)
		status int
	}{
		{"wrong hostname", hosted.ServiceTurnstile, func(s *siteverify, _ *hosted.Verifier) { s.hostname = "evil.example" }, 403},
		{"wrong action", hosted.ServiceTurnstile, func(s *siteverify, _ *hosted.Verifier) { s.action = "signup" }, 403},
		{"v3 wrong action", hosted.ServiceReCaptchaV3, func(s *siteverify, _ *hosted.Verifier) { s.action = "homepage" }, 403},
		{"v3 low score", hosted.ServiceReCaptchaV3, func(s *siteverify, _ *hosted.Verifier) { s.score = 0.3 }, 403},
		{"v3 score at threshold", hosted.ServiceReCaptchaV3, func(s *siteverify, h *hosted.Verifier) { s.score, h.MinScore = 0.7, 0.7 }, 200},
		{"v2 any hostname when none configured", hosted.ServiceReCaptchaV2, func(s *siteverify, h *hosted.Verifier) {
			s.hostname, h.Hostnames = "other.example", nil
		}, 200},
		{"hcaptcha sitekey-secret-mismatch", hosted.ServiceHCaptcha, func(s *siteverify, _ *hosted.Verifier) {
			s.raw = `{"success":false,"error-codes":["sitekey-secret-mismatch"]}`
		}, 503},
		{"wrong secret", hosted.ServiceTurnstile, func(s *siteverify, h *hosted.Verifier) { h.Secret = "0x4AAAAAAAwrong" }, 503},
		{"no secret", hosted.ServiceTurnstile, func(s *siteverify, h *hosted.Verifier) { h.Secret = "" }, 503},
		{"service down", hosted.ServiceReCaptchaV2, func(s *siteverify, _ *hosted.Verifier) { s.status = 502 }, 503},
		{"not JSON", hosted.ServiceHCaptcha, func(s *siteverify, _ *hosted.Verifier) { s.raw = "<html>maintenance</html>" }, 503},
		{"JSON without success", hosted.ServiceHCaptcha, func(s *siteverify, _ *hosted.Verifier) { s.raw = `{"hostname":"example.com"}` }, 503},
		{"internal-error", hosted.ServiceTurnstile, func(s *siteverify, _ *hosted.Verifier) {
			s.raw = `{"success":false,"error-codes":["internal-error"]}`
		}, 503},
		{"hangs past the timeout", hosted.ServiceTurnstile, func(s *siteverify, _ *hosted.Verifier) { s.hang = make(chan struct{}) }, 503},
		{"unreachable", hosted.ServiceHCaptcha, func(s *siteverify, h *hosted.Verifier) { h.VerifyURL = "http://127.0.0.1:1/siteverify" }, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv := newSiteverify(t, tc.svc)
			var v *hosted.Verifier
			a, logs := hostedApp(t, sv, func(h *hosted.Verifier) { v = h })
			tc.mutate(sv, v)
			c := a.trip(t, "alice")
			w := verify(a.mux, c.ID, sv.solve())
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.status == http.StatusOK {
				return
			}
			e := decodeError(t, w)
			if tc.status == http.StatusServiceUnavailable {
				// Fail closed, say nothing of the cause to the client, log it
				// without the secret.
				assert.Equal(t, 5004, e.ErrorCode, "a verifier failure, not the store's")
				assert.NotContains(t, w.Body.String(), "secret")
				assert.Contains(t, logs.String(), "hosted: verifier failed")
				assert.NotContains(t, logs.String(), "0x4AAAAAAA")
			} else {
				assert.Equal(t, 4002, e.ErrorCode)
			}
			// Either way the guarded request is not let through.
			assert.Equal(t, http.StatusPreconditionRequired, a.login(t, "alice", "right").Code)
		})
	}
}

func TestHostedInlineAnswerAndConcurrency(t *testing.T) {
	sv := newSiteverify(t, hosted.ServiceTurnstile)
	a, _ := hostedApp(t, sv, nil)
	c := a.trip(t, "alice")
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": "right", "captcha_id": c.ID, "captcha_answer": sv.solve()})
	w := serve(a.mux, "POST", "/login", string(body), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	// 20 concurrent verifies of one captcha with 20 valid response tokens:
	// the captcha is spent once, so one token is minted.
	c = a.trip(t, "bob")
	resps := make([]string, 20)
	for i := range resps {
		resps[i] = sv.solve()
	}
	var mu sync.Mutex
	ok, i := 0, 0
	together(20, func() {
		mu.Lock()
		r := resps[i]
		i++
		mu.Unlock()
		if verify(a.mux, c.ID, r).Code == http.StatusOK {
			mu.Lock()
			ok++
			mu.Unlock()
		}
	})
	assert.Equal(t, 1, ok)
	sv.mu.Lock()
	calls := len(sv.requests)
	sv.mu.Unlock()
	assert.Equal(t, 2, calls, "a spent captcha never reaches the service")
}
