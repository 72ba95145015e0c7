package altcha_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/store/storetest"
)

// v2App is a login guarded by a gate of ALTCHA v2 challenges on an
// injected clock: one wrong password per username, then a challenge.
type v2App struct {
	mux    *http.ServeMux
	clock  *storetest.Clock
	mu     sync.Mutex
	events []string // refusals, as kind: reason
}

func newV2App(t *testing.T, pow altcha.ProofOfWorkV2) *v2App {
	t.Helper()
	a := &v2App{mux: http.NewServeMux(), clock: storetest.NewClock()}
	g, err := captchagate.New(captchagate.Config{
		Challenge: pow,
		Secret:    gatetest.Secret,
		Now:       a.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e captchagate.Event) {
			if e.Kind == captchagate.EventCaptchaRejected {
				a.mu.Lock()
				a.events = append(a.events, e.Reason)
				a.mu.Unlock()
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	a.mux.Handle("/captcha/", g.Handler())
	policy := captchagate.Policy{Name: "login", Keys: []captchagate.Key{captchagate.Username(captchagate.JSONField("username"))}, MaxFailures: 1}
	a.mux.Handle("POST /login", g.Guard(policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})))
	return a
}

func (a *v2App) refusals() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.events...)
}

func (a *v2App) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	a.mux.ServeHTTP(w, r)
	return w
}

type v2Error struct {
	ErrorCode int                  `json:"error_code"`
	Captcha   *captchagate.Captcha `json:"captcha"`
	Token     string               `json:"captcha_token"`
}

func decode(t *testing.T, w *httptest.ResponseRecorder) v2Error {
	t.Helper()
	var e v2Error
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), w.Body.String())
	return e
}

func (a *v2App) login(user, pass string, hdr ...string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return a.do("POST", "/login", string(body), hdr...)
}

// trip fails user's login until the guard asks for a captcha.
func (a *v2App) trip(t *testing.T, user string) *captchagate.Captcha {
	t.Helper()
	for range 3 {
		if w := a.login(user, "wrong"); w.Code == http.StatusPreconditionRequired {
			return decode(t, w).Captcha
		}
	}
	t.Fatal("the guard never asked for a captcha")
	return nil
}

func (a *v2App) challenge(t *testing.T, c *captchagate.Captcha) altcha.ChallengeV2 {
	t.Helper()
	require.Equal(t, "altcha", c.Kind)
	raw, _ := c.Extra["challenge_url"].(json.RawMessage)
	var u string
	require.NoError(t, json.Unmarshal(raw, &u))
	require.NotEmpty(t, u)
	w := a.do("GET", u, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var ch altcha.ChallengeV2
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ch))
	return ch
}

func (a *v2App) verify(id, answer string) *httptest.ResponseRecorder {
	return a.do("POST", "/captcha/verify", "captcha_id="+url.QueryEscape(id)+"&captcha_answer="+url.QueryEscape(answer),
		"Content-Type", "application/x-www-form-urlencoded")
}

func b64enc(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func solve(t *testing.T, ch altcha.ChallengeV2) altcha.PayloadV2 {
	t.Helper()
	p, ok := altcha.SolveV2(ch, 1<<20)
	require.True(t, ok)
	return p
}

func TestV2Flow(t *testing.T) {
	t.Parallel()
	a := newV2App(t, altcha.ProofOfWorkV2{Cost: 20, MaxCounter: 200})
	c := a.trip(t, "alice")
	ch := a.challenge(t, c)
	assert.Equal(t, "PBKDF2/SHA-256", ch.Parameters.Algorithm)
	assert.Equal(t, int64(20), ch.Parameters.Cost)
	assert.Equal(t, int64(32), ch.Parameters.KeyLength)
	assert.Len(t, ch.Parameters.KeyPrefix, 32)
	assert.Equal(t, a.clock.Now().Add(5*time.Minute).Unix(), ch.Parameters.ExpiresAt, "the captcha's expiry, which the widget reads")
	p := solve(t, ch)
	assert.LessOrEqual(t, p.Solution.Counter, uint32(200))
	p.Solution.Time = 12.3
	w := a.verify(c.ID, p.Encode())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	tok := decode(t, w).Token
	require.Equal(t, http.StatusUnauthorized, a.login("alice", "wrong", "X-Captcha-Token", tok).Code, "the token passes the guard")

	// The same payload again: its challenge was taken on the first answer.
	w = a.verify(c.ID, p.Encode())
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decode(t, w).ErrorCode)
	assert.Equal(t, []string{"unknown or already used"}, a.refusals(), "the replay finds no captcha to check")
}

// Every forgery spends the challenge it names and is refused; the right
// payload after it is refused too (one answer a challenge).
func TestV2RefusesForgedPayloads(t *testing.T) {
	t.Parallel()
	a := newV2App(t, altcha.ProofOfWorkV2{Algorithm: "SHA-256", Cost: 3, MaxCounter: 100})
	bob := a.trip(t, "bob")
	other := solve(t, a.challenge(t, bob))
	rederive := func(p *altcha.PayloadV2) {
		salt, _ := hex.DecodeString(p.Challenge.Parameters.Salt)
		nonce, _ := hex.DecodeString(p.Challenge.Parameters.Nonce)
		pw := append(nonce, byte(p.Solution.Counter>>24), byte(p.Solution.Counter>>16), byte(p.Solution.Counter>>8), byte(p.Solution.Counter))
		key, err := altcha.DeriveKeyV2(p.Challenge.Parameters.Algorithm, int(p.Challenge.Parameters.Cost), salt, pw)
		require.NoError(t, err)
		p.Solution.DerivedKey = hex.EncodeToString(key)
		p.Challenge.Parameters.KeyPrefix = p.Solution.DerivedKey[:32]
	}
	forgeries := map[string]func(p altcha.PayloadV2) altcha.PayloadV2{
		"next counter, the issued key": func(p altcha.PayloadV2) altcha.PayloadV2 { p.Solution.Counter++; return p },
		"next counter, its own key":    func(p altcha.PayloadV2) altcha.PayloadV2 { p.Solution.Counter++; rederive(&p); return p },
		"wrong derived key": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Solution.DerivedKey = p.Challenge.Parameters.KeyPrefix + strings.Repeat("0", 32)
			return p
		},
		"derived key in capitals": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Solution.DerivedKey = strings.ToUpper(p.Solution.DerivedKey)
			return p
		},
		// A client that lowers the cost and brings the key of its own
		// cheaper challenge on the same nonce and salt.
		"wrong cost": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Challenge.Parameters.Cost = 1
			p.Solution.Counter = 0
			rederive(&p)
			return p
		},
		"other algorithm": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Challenge.Parameters.Algorithm = "SHA-512"
			rederive(&p)
			return p
		},
		// Another challenge's salt spliced with this nonce, and the key
		// that pair derives.
		"spliced salt": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Challenge.Parameters.Salt = other.Challenge.Parameters.Salt
			rederive(&p)
			return p
		},
		"spliced nonce": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Challenge.Parameters.Nonce = other.Challenge.Parameters.Nonce
			rederive(&p)
			return p
		},
		"later expiry": func(p altcha.PayloadV2) altcha.PayloadV2 { p.Challenge.Parameters.ExpiresAt += 3600; return p },
		"wrong signature": func(p altcha.PayloadV2) altcha.PayloadV2 {
			p.Challenge.Signature = strings.Repeat("0", 64)
			return p
		},
		"no signature":                func(p altcha.PayloadV2) altcha.PayloadV2 { p.Challenge.Signature = ""; return p },
		"another challenge's payload": func(altcha.PayloadV2) altcha.PayloadV2 { return other },
		"empty":                       func(altcha.PayloadV2) altcha.PayloadV2 { return altcha.PayloadV2{} },
	}
	c := a.trip(t, "mallory")
	for name, forge := range forgeries {
		right := solve(t, a.challenge(t, c))
		w := a.verify(c.ID, forge(right).Encode())
		require.Equal(t, http.StatusForbidden, w.Code, name)
		next := decode(t, w).Captcha
		require.NotNil(t, next, name)
		assert.Equal(t, http.StatusForbidden, a.verify(c.ID, right.Encode()).Code, "%s: the right payload after it", name)
		c = next
	}

	// What is not a v2 payload spends nothing (invalid_request 4104): the
	// captcha still takes its right payload.
	right := solve(t, a.challenge(t, c))
	for name, junk := range map[string]string{
		"not base64":          "not base64 !",
		"too long":            strings.Repeat("A", 2100),
		"a member not issued": b64enc(`{"challenge":{"parameters":{"keySignature":"00"}}}`),
		"counter negative":    b64enc(`{"solution":{"counter":-1}}`),
		"a v1 payload":        b64enc(`{"algorithm":"SHA-256","challenge":"ab","number":1,"salt":"s","signature":"x"}`),
	} {
		w := a.verify(c.ID, junk)
		require.Equal(t, http.StatusBadRequest, w.Code, name)
		assert.Equal(t, 4104, decode(t, w).ErrorCode, name)
	}
	require.Equal(t, http.StatusOK, a.verify(c.ID, right.Encode()).Code)
	// bob's payload, posted for mallory's captcha above, still opens his
	// own: it spent nothing of his.
	assert.Equal(t, http.StatusOK, a.verify(bob.ID, other.Encode()).Code)
}

func TestV2Expired(t *testing.T) {
	t.Parallel()
	a := newV2App(t, altcha.ProofOfWorkV2{Cost: 5, MaxCounter: 50})
	c := a.trip(t, "alice")
	p := solve(t, a.challenge(t, c))
	a.clock.Advance(5*time.Minute + time.Second)
	w := a.verify(c.ID, p.Encode())
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decode(t, w).ErrorCode)
	assert.Equal(t, []string{"expired"}, a.refusals())

	// Just inside the TTL, the same kind of payload passes.
	c = a.trip(t, "bob")
	p = solve(t, a.challenge(t, c))
	a.clock.Advance(5*time.Minute - time.Second)
	assert.Equal(t, http.StatusOK, a.verify(c.ID, p.Encode()).Code)
}

// Failures past the threshold raise the level (TestV2CounterRange shows
// the counter's range follow it), and a token earned at a lower level does
// not open a raised one: it is refused with a captcha at the account's
// level. (A constant Difficulty fails this test.)
func TestV2DifficultyClimbs(t *testing.T) {
	t.Parallel()
	pow := altcha.ProofOfWorkV2{Algorithm: "SHA-256", Cost: 1, MaxCounter: 8, RaiseEvery: 1, MaxCounterLimit: 32}
	a := newV2App(t, pow)
	token := func(c *captchagate.Captcha) string {
		w := a.verify(c.ID, solve(t, a.challenge(t, c)).Encode())
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return decode(t, w).Token
	}
	// Two captchas at level 0 (each 428 issues one), both solved.
	first, second := token(a.trip(t, "alice")), token(a.trip(t, "alice"))
	// The first token's wrong password is a failure past the threshold:
	// alice is at level 1 now.
	require.Equal(t, http.StatusUnauthorized, a.login("alice", "wrong", "X-Captcha-Token", first).Code)
	w := a.login("alice", "right", "X-Captcha-Token", second)
	require.Equal(t, http.StatusForbidden, w.Code, "a level-0 token for a level-1 account: %s", w.Body.String())
	next := decode(t, w).Captcha
	require.NotNil(t, next, "with a captcha at her level")
	// That captcha's token opens it.
	assert.Equal(t, http.StatusOK, a.login("alice", "right", "X-Captcha-Token", token(next)).Code)
}

// Forty concurrent answers with one right payload: one token.
func TestV2ConcurrentAnswers(t *testing.T) {
	t.Parallel()
	a := newV2App(t, altcha.ProofOfWorkV2{Algorithm: "SHA-256", Cost: 2, MaxCounter: 50})
	c := a.trip(t, "alice")
	payload := solve(t, a.challenge(t, c)).Encode()
	var ok atomic.Int64
	gatetest.Together(40, func() {
		if a.verify(c.ID, payload).Code == http.StatusOK {
			ok.Add(1)
		}
	})
	assert.Equal(t, int64(1), ok.Load())
}
