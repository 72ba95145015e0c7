package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
	"github.com/captchagate/captchagate/examples/internal/nodetest"
)

// nodeAltchaDir is the npm directory of altcha-lib (npm ci --prefix it).
const nodeAltchaDir = "node-altcha"

// needNodeAltcha returns the node binary, or skips t when node or the
// npm-installed altcha-lib is missing (fails it with
// CAPTCHAGATE_REQUIRE_BROWSER=1, as CI sets).
func needNodeAltcha(t *testing.T) string {
	t.Helper()
	return nodetest.Need(t, nodeAltchaDir, "altcha-lib", "examples/challenges/node-altcha")
}

// nodeResult is what solve.mjs prints.
type nodeResult struct {
	ChallengeStatus     int    `json:"challenge_status"`
	Counter             uint32 `json:"counter"`
	Error               string `json:"error"`
	LibVerified         bool   `json:"lib_verified"`
	LibInvalidSignature *bool  `json:"lib_invalid_signature"`
	First, Replay       *struct {
		Status int `json:"status"`
		Body   struct {
			Token     string `json:"captcha_token"`
			ErrorCode int    `json:"error_code"`
		} `json:"body"`
	}
}

// runSolve runs solve.mjs with args and decodes what it prints.
func runSolve(t *testing.T, node string, args map[string]any) nodeResult {
	t.Helper()
	a, err := json.Marshal(args)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "solve.mjs", string(a))
	cmd.Dir = nodeAltchaDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "solve.mjs: %s%s", stdout.String(), stderr.String())
	var r nodeResult
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r), stdout.String())
	return r
}

// altcha-lib's solveChallenge (npm altcha-lib 2.8.0, unmodified) solves
// the gate's v2 challenges, fetched over loopback: its first payload is
// accepted, the token opens the guarded sign-in, and the same payload
// again is refused. Three flows, each payload the first and only try.
func TestAltchaLibSolvesV2(t *testing.T) {
	node := needNodeAltcha(t)
	for _, alg := range []string{"PBKDF2/SHA-256", "SHA-256"} {
		t.Run(strings.ReplaceAll(alg, "/", "-"), func(t *testing.T) {
			var mu sync.Mutex
			var refused []string
			gate, err := captchagate.New(captchagate.Config{
				Challenge: altcha.ProofOfWorkV2{Algorithm: alg, Cost: 50, MaxCounter: 300},
				Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
				OnEvent: func(e captchagate.Event) {
					if e.Kind == captchagate.EventCaptchaRejected || e.Kind == captchagate.EventTokenRefused {
						mu.Lock()
						refused = append(refused, e.Kind.String()+": "+e.Reason)
						mu.Unlock()
					}
				},
			})
			require.NoError(t, err)
			t.Cleanup(func() { gate.Close() })
			mux := http.NewServeMux()
			mux.Handle("/captcha/", gate.Handler())
			mux.Handle("POST /api/login", gate.Guard(LoginPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct{ Username, Password string }
				json.NewDecoder(r.Body).Decode(&req)
				if req.Password != "demo" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(http.StatusOK)
			})))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			login := func(user, pass, token string) *http.Response {
				body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
				req, _ := http.NewRequest("POST", srv.URL+"/api/login", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("X-Captcha-Token", token)
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				return resp
			}
			for run := range 3 {
				user := "alice" + string(rune('a'+run))
				var c *captchagate.Captcha
				for range 4 {
					body, _ := json.Marshal(map[string]string{"username": user, "password": "nope"})
					resp, err := srv.Client().Post(srv.URL+"/api/login", "application/json", bytes.NewReader(body))
					require.NoError(t, err)
					var e struct{ Captcha *captchagate.Captcha }
					json.NewDecoder(resp.Body).Decode(&e)
					resp.Body.Close()
					if resp.StatusCode == http.StatusPreconditionRequired {
						c = e.Captcha
						break
					}
				}
				require.NotNil(t, c, "run %d: the guard asked for a captcha", run)
				var challengeURL string
				require.NoError(t, json.Unmarshal(c.Extra["challenge_url"].(json.RawMessage), &challengeURL))
				r := runSolve(t, node, map[string]any{
					"challenge_url": srv.URL + challengeURL,
					"verify_url":    srv.URL + c.VerifyURL,
					"captcha_id":    c.ID,
					"replay":        true,
				})
				require.Equal(t, http.StatusOK, r.ChallengeStatus)
				require.NotNil(t, r.First)
				mu.Lock()
				got := append([]string(nil), refused...)
				mu.Unlock()
				require.Equal(t, http.StatusOK, r.First.Status, "run %d: altcha-lib's first payload (counter %d) refused: %v", run, r.Counter, got)
				require.NotEmpty(t, r.First.Body.Token)
				require.NotNil(t, r.Replay)
				assert.Equal(t, http.StatusForbidden, r.Replay.Status, "run %d: the replay", run)
				assert.Equal(t, 4002, r.Replay.Body.ErrorCode, "run %d: the replay", run)
				assert.Equal(t, http.StatusOK, login(user, "demo", r.First.Body.Token).StatusCode, "run %d: the token signs in", run)
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{"captcha_rejected: unknown or already used", "captcha_rejected: unknown or already used",
				"captcha_rejected: unknown or already used"}, refused, "the replays, and nothing else, refused")
		})
	}
}

// altcha-lib's verifySolution accepts a v2 challenge issued by
// ProofOfWorkV2 with a known HMAC secret: the parameters are signed over
// the canonical JSON altcha-lib signs, and the solution checks out by
// altcha-lib's own rules (so the format is altcha's, not only ours).
func TestAltchaLibVerifiesV2Signature(t *testing.T) {
	node := needNodeAltcha(t)
	const key = "altcha-lib-test-secret"
	for _, alg := range []string{"PBKDF2/SHA-256", "PBKDF2/SHA-512", "SHA-384"} {
		pow := altcha.ProofOfWorkV2{Algorithm: alg, Cost: 20, MaxCounter: 100}
		secret, err := pow.Issue(captchagate.IssueInfo{
			Now: time.Now(), Expires: time.Now().Add(time.Minute),
			Sign: func(msg []byte) []byte { m := hmac.New(sha256.New, []byte(key)); m.Write(msg); return m.Sum(nil) },
		})
		require.NoError(t, err)
		var body bytes.Buffer
		_, err = pow.Render(&body, "x", secret, "json", "")
		require.NoError(t, err)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body.Bytes())
		}))
		r := runSolve(t, node, map[string]any{"challenge_url": srv.URL, "hmac_secret": key})
		srv.Close()
		require.NotNil(t, r.LibInvalidSignature, alg)
		assert.False(t, *r.LibInvalidSignature, "%s: altcha-lib finds the signature valid", alg)
		assert.True(t, r.LibVerified, "%s: altcha-lib verifies the solution", alg)
	}
}
