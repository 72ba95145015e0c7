package captchagate_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/altcha"
)

func altchaApp(t *testing.T, a altcha.ProofOfWork) *loginApp {
	return newLoginApp(t, func(c *captchagate.Config) { c.Challenge = a })
}

func fetchAltcha(t *testing.T, h http.Handler, c *captchagate.Captcha) altcha.Challenge {
	t.Helper()
	require.Equal(t, "altcha", c.Kind)
	require.NotEmpty(t, member(c, "challenge_url"))
	assert.Empty(t, c.ImageURL)
	w := serve(h, "GET", member(c, "challenge_url"), "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var ch altcha.Challenge
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ch))
	return ch
}

func TestAltchaFlow(t *testing.T) {
	a := altchaApp(t, altcha.ProofOfWork{MaxNumber: 2000})
	c := a.trip(t, "alice")
	ch := fetchAltcha(t, a.mux, c)
	assert.Equal(t, "SHA-256", ch.Algorithm)
	assert.Equal(t, int64(2000), ch.MaxNumber)
	assert.Len(t, ch.Challenge, 64)
	assert.Len(t, ch.Signature, 64)
	// The salt carries its expiry, as the widget reads it.
	_, q, ok := strings.Cut(ch.Salt, "?")
	require.True(t, ok)
	exp, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(q, "expires="), "&"), 10, 64)
	require.NoError(t, err)
	assert.Equal(t, a.clock.Now().Add(5*time.Minute).Unix(), exp)

	p, ok := altcha.Solve(ch)
	require.True(t, ok)
	// As the v3 widget writes it: took in tenths of a millisecond.
	payload := altchaJSON(p, "12.3")
	tok := solveWith(t, a.mux, c.ID, payload)
	require.Equal(t, http.StatusOK, a.login(t, "alice", "right", "X-Captcha-Token", tok).Code)

	// The same payload again: the challenge was taken on its first answer.
	w := verify(a.mux, c.ID, payload)
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 4002, decodeError(t, w).ErrorCode)
}

func TestAltchaRefusesForgedPayloads(t *testing.T) {
	a := altchaApp(t, altcha.ProofOfWork{MaxNumber: 1000})
	c := a.trip(t, "alice")
	ch := fetchAltcha(t, a.mux, c)
	good, ok := altcha.Solve(ch)
	require.True(t, ok)

	// A second flow, for a payload of another challenge.
	c2 := a.trip(t, "bob")
	other, ok := altcha.Solve(fetchAltcha(t, a.mux, c2))
	require.True(t, ok)

	forgeries := map[string]func(p altcha.Payload) altcha.Payload{
		"wrong number": func(p altcha.Payload) altcha.Payload { p.Number++; return p },
		"wrong signature": func(p altcha.Payload) altcha.Payload {
			p.Signature = strings.Repeat("0", 64)
			return p
		},
		"other algorithm":             func(p altcha.Payload) altcha.Payload { p.Algorithm = "SHA-1"; return p },
		"another challenge's payload": func(altcha.Payload) altcha.Payload { return other },
		// Splicing: moving the number's first digit to the salt keeps the
		// hash input, and so the challenge hash, the same.
		"spliced salt": func(p altcha.Payload) altcha.Payload {
			n := strconv.FormatInt(p.Number+1000, 10)
			p.Salt += n[:1]
			p.Number, _ = strconv.ParseInt(n[1:], 10, 64)
			p.Challenge = ""
			return p
		},
	}
	// Each forgery spends the captcha it names; the refusal carries a fresh
	// one for the same flow, which the next forgery uses.
	cc := a.trip(t, "mallory")
	for name, forge := range forgeries {
		sp, ok := altcha.Solve(fetchAltcha(t, a.mux, cc))
		require.True(t, ok)
		fp := forge(sp)
		if fp.Challenge == "" { // the spliced payload claims the hash of its own salt and number
			sum := sha256.Sum256([]byte(fp.Salt + strconv.FormatInt(fp.Number, 10)))
			fp.Challenge = hex.EncodeToString(sum[:])
		}
		w := verify(a.mux, cc.ID, fp.Encode())
		require.Equal(t, http.StatusForbidden, w.Code, name)
		next := decodeError(t, w).Captcha
		require.NotNil(t, next, name)
		// The right payload after it is refused: one answer per challenge.
		assert.Equal(t, http.StatusForbidden, verify(a.mux, cc.ID, sp.Encode()).Code, name)
		cc = next
	}
	// What is not a payload at all is a malformed parameter: it spends
	// nothing. An empty payload ("e30" is {}) is a wrong answer.
	for _, junk := range []string{"not base64 !", strings.Repeat("A", 2000)} {
		w := verify(a.mux, cc.ID, junk)
		require.Equal(t, http.StatusBadRequest, w.Code, "%.20q", junk)
		assert.Equal(t, 4104, decodeError(t, w).ErrorCode)
	}
	w := verify(a.mux, cc.ID, "e30")
	require.Equal(t, http.StatusForbidden, w.Code)
	cc = decodeError(t, w).Captcha
	// Longer than any payload: refused before the captcha is touched.
	assert.Equal(t, http.StatusBadRequest, verify(a.mux, cc.ID, strings.Repeat("A", 2100)).Code)
	// The untouched payloads still work: forging spent nothing of theirs.
	solveWith(t, a.mux, c.ID, good.Encode())
	solveWith(t, a.mux, c2.ID, other.Encode())
}

func TestAltchaDifficultyClimbs(t *testing.T) {
	a := altchaApp(t, altcha.ProofOfWork{MaxNumber: 100, RaiseEvery: 2, MaxNumberLimit: 800})
	c := a.trip(t, "alice")
	var seen []int64
	for range 9 {
		ch := fetchAltcha(t, a.mux, c)
		seen = append(seen, ch.MaxNumber)
		p, ok := altcha.Solve(ch)
		require.True(t, ok)
		// Solved, and the password still wrong: one more failure past the
		// threshold.
		w := a.login(t, "alice", "wrong", "X-Captcha-Token", solveWith(t, a.mux, c.ID, p.Encode()))
		require.Equal(t, http.StatusUnauthorized, w.Code)
		w = a.login(t, "alice", "wrong")
		require.Equal(t, http.StatusPreconditionRequired, w.Code)
		c = decodeError(t, w).Captcha
	}
	assert.Equal(t, []int64{100, 100, 200, 200, 400, 400, 800, 800, 800}, seen)

	// Refreshing keeps the level.
	w := serve(a.mux, "POST", c.RefreshURL, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var cb struct{ Captcha *captchagate.Captcha }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cb))
	assert.Equal(t, int64(800), fetchAltcha(t, a.mux, cb.Captcha).MaxNumber)

	// Another account starts at the bottom.
	assert.Equal(t, int64(100), fetchAltcha(t, a.mux, a.trip(t, "bob")).MaxNumber)
}

func TestAltchaConcurrentAnswers(t *testing.T) {
	a := altchaApp(t, altcha.ProofOfWork{MaxNumber: 500})
	for round := range 3 {
		c := a.trip(t, "alice"+strconv.Itoa(round))
		p, ok := altcha.Solve(fetchAltcha(t, a.mux, c))
		require.True(t, ok)
		payload := p.Encode()
		var ok200 atomic.Int64
		together(40, func() {
			if verify(a.mux, c.ID, payload).Code == http.StatusOK {
				ok200.Add(1)
			}
		})
		assert.Equal(t, int64(1), ok200.Load())
	}
}

// issueAltcha issues, renders and solves one challenge outside a gate, and
// returns its secret and the solved payload as the widget would send it
// without took.
func issueAltcha(t *testing.T) ([]byte, altcha.Payload) {
	t.Helper()
	a := altcha.ProofOfWork{MaxNumber: 1000}
	secret, err := a.Issue(captchagate.IssueInfo{
		Now:     time.Now(),
		Expires: time.Now().Add(5 * time.Minute),
		Sign: func(msg []byte) []byte {
			m := hmac.New(sha256.New, testSecret)
			m.Write(msg)
			return m.Sum(nil)
		},
	})
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = a.Render(&buf, "id", secret, "json", "en")
	require.NoError(t, err)
	var ch altcha.Challenge
	require.NoError(t, json.Unmarshal(buf.Bytes(), &ch))
	p, ok := altcha.Solve(ch)
	require.True(t, ok)
	return secret, p
}

// altchaJSON is p as the widget writes it, with took's JSON text as given
// ("" leaves it out).
func altchaJSON(p altcha.Payload, took string) string {
	s := `{"algorithm":` + strconv.Quote(p.Algorithm) + `,"challenge":` + strconv.Quote(p.Challenge) +
		`,"number":` + strconv.FormatInt(p.Number, 10) + `,"salt":` + strconv.Quote(p.Salt) +
		`,"signature":` + strconv.Quote(p.Signature)
	if took != "" {
		s += `,"took":` + took
	}
	return base64.StdEncoding.EncodeToString([]byte(s + "}"))
}

// The ALTCHA v3 widget writes took as tenths of a millisecond
// (Math.floor(ms * 10) / 10), so most real payloads carry a fraction. took
// is informational: any JSON number is accepted, and a right payload passes
// whatever it says.
func TestAltchaTookIsAnyNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		took string
		want float64
	}{
		{"12.3", 12.3},
		{"0.5", 0.5},
		{"947.0", 947},
		{"947", 947},
		{"0", 0},
		{"1.5e3", 1500},
		{"-1", -1},
		{"1e400", math.MaxFloat64}, // beyond float64: held at its largest
		{"", 0},                    // absent
		{"null", 0},                // as absent
	} {
		t.Run("took "+tc.took, func(t *testing.T) {
			t.Parallel()
			secret, p := issueAltcha(t)
			answer := altchaJSON(p, tc.took)
			assert.True(t, altchaOK(secret, answer), "a right payload")
			got, ok := altcha.DecodePayload(answer)
			require.True(t, ok)
			assert.Equal(t, p.Number, got.Number)
			assert.EqualValues(t, tc.want, got.Took)
			// took cannot make a wrong payload right.
			p.Number++
			assert.False(t, altchaOK(secret, altchaJSON(p, tc.took)), "a wrong number")
		})
	}
}

// A took that is not a number is not the widget's: the payload is refused,
// right or not.
func TestAltchaTookNotANumber(t *testing.T) {
	t.Parallel()
	for _, took := range []string{`"12.3"`, `""`, `{}`, `[1]`, `true`} {
		t.Run("took "+took, func(t *testing.T) {
			t.Parallel()
			secret, p := issueAltcha(t)
			require.True(t, altchaOK(secret, altchaJSON(p, "")), "precondition: the payload is right")
			answer := altchaJSON(p, took)
			_, ok := altcha.DecodePayload(answer)
			assert.False(t, ok)
			assert.False(t, altchaOK(secret, answer))
		})
	}
}

// Encode writes every Took as a number the decoder reads back; JSON has no
// NaN or infinity.
func TestAltchaEncodeTook(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		took, want float64
	}{
		{12.3, 12.3},
		{0, 0},
		{math.Inf(1), math.MaxFloat64},
		{math.Inf(-1), -math.MaxFloat64},
		{math.NaN(), 0},
	} {
		t.Run(strconv.FormatFloat(tc.took, 'g', -1, 64), func(t *testing.T) {
			t.Parallel()
			secret, p := issueAltcha(t)
			p.Took = tc.took
			answer := p.Encode()
			assert.True(t, altchaOK(secret, answer))
			got, ok := altcha.DecodePayload(answer)
			require.True(t, ok)
			assert.Equal(t, tc.want, got.Took)
		})
	}
}

// altchaOK reports whether the ProofOfWork accepts answer to secret.
func altchaOK(secret []byte, answer string) bool {
	ok, err := altcha.ProofOfWork{}.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: answer})
	return ok && err == nil
}
