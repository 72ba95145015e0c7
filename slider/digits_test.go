package slider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/slidersecret"
	"github.com/captchagate/captchagate/slider"
)

// digitsOf returns the digits answer a puzzle's secret carries.
func digitsOf(t *testing.T, secret []byte) string {
	t.Helper()
	require.Len(t, secret, slidersecret.Len+6+16, "the puzzle, six digits and their seed")
	var a strings.Builder
	for _, d := range secret[slidersecret.Len : slidersecret.Len+6] {
		require.LessOrEqual(t, d, byte(9))
		a.WriteByte('0' + d)
	}
	return a.String()
}

func check(t *testing.T, p slider.Puzzle, secret []byte, answer string) bool {
	t.Helper()
	ok, err := p.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: answer})
	require.NoError(t, err)
	return ok
}

// TestDigitsAreTheSecrets: a puzzle's secret carries a Digits secret, its
// digits answer the puzzle as its gap does, and the digits' media are the
// Digits' own, byte for byte, of that secret.
func TestDigitsAreTheSecrets(t *testing.T) {
	t.Parallel()
	p := slider.Puzzle{}
	secret, err := p.Issue(captchagate.IssueInfo{})
	require.NoError(t, err)
	answer := digitsOf(t, secret)
	parts, ok := slidersecret.Parse(secret[:slidersecret.Len])
	require.True(t, ok)

	assert.True(t, check(t, p, secret, answer))
	assert.True(t, check(t, p, secret, answer[:3]+" "+answer[3:]), "spaces between digits, as Digits")
	assert.True(t, check(t, p, secret, fmt.Sprintf(`{"x":%d.0,"y":5.0}`, parts.X)), "the gap still answers")
	assert.True(t, check(t, p, secret, fmt.Sprint(parts.X)))
	wrong := []byte(answer)
	wrong[5] = '0' + (wrong[5]-'0'+1)%10
	for _, a := range []string{string(wrong), answer[:5], answer + "1", answer[:5] + "x", ""} {
		assert.False(t, check(t, p, secret, a), a)
	}
	// The gap's own secret alone (as issued before the digits) has no
	// digits to answer: no answer of six digits passes it.
	assert.False(t, check(t, p, secret[:slidersecret.Len], answer))

	d := captchagate.Digits{}
	for _, f := range [][2]string{{"digits.png", "png"}, {"wav", "wav"}} {
		for _, lang := range []string{"", "ru"} {
			var got, want bytes.Buffer
			ct, err := p.Render(&got, "id1", secret, f[0], lang)
			require.NoError(t, err)
			wct, err := d.Render(&want, "id1", secret[slidersecret.Len:], f[1], lang)
			require.NoError(t, err)
			assert.Equal(t, wct, ct)
			assert.True(t, bytes.Equal(want.Bytes(), got.Bytes()), "%s %s: Digits' media", f[0], lang)
		}
	}
	_, err = p.Render(&bytes.Buffer{}, "id1", secret[:slidersecret.Len], "wav", "")
	assert.Error(t, err, "no digits, no sound")
}

// TestDigitsMediaCarryNothingOfTheGap: two puzzles alike in their digits
// and apart in everything else have the same digits picture and sound, so
// the new media say nothing of the gap; and the digits are drawn apart
// from the gap.
func TestDigitsMediaCarryNothingOfTheGap(t *testing.T) {
	t.Parallel()
	p := slider.Puzzle{}
	a, err := p.Issue(captchagate.IssueInfo{})
	require.NoError(t, err)
	b, err := p.Issue(captchagate.IssueInfo{})
	require.NoError(t, err)
	require.NotEqual(t, a[:slidersecret.Len], b[:slidersecret.Len])
	b = append(b[:slidersecret.Len:slidersecret.Len], a[slidersecret.Len:]...)
	for _, f := range []string{"digits.png", "wav"} {
		var ma, mb bytes.Buffer
		_, err := p.Render(&ma, "id", a, f, "")
		require.NoError(t, err)
		_, err = p.Render(&mb, "id", b, f, "")
		require.NoError(t, err)
		assert.True(t, bytes.Equal(ma.Bytes(), mb.Bytes()), f)
	}
	// The digits are crypto/rand's, not the gap's: across puzzles they
	// take every value at each place.
	seen := [6][10]bool{}
	for range 200 {
		s, err := p.Issue(captchagate.IssueInfo{})
		require.NoError(t, err)
		for i, c := range digitsOf(t, s) {
			seen[i][c-'0'] = true
		}
	}
	for i := range seen {
		for v, ok := range seen[i] {
			assert.True(t, ok, "digit %d never %d", i, v)
		}
	}
}

// TestMediaAndAnswers: the digits' picture and sound are listed under
// their members, the sound in the Digits' languages; answers of either
// shape are valid, others malformed.
func TestMediaAndAnswers(t *testing.T) {
	t.Parallel()
	p := slider.Puzzle{}
	got := map[string]captchagate.Media{}
	for _, m := range p.Media() {
		got[m.Format] = m
	}
	assert.Equal(t, "digits_image_url", got["digits.png"].Member)
	assert.Equal(t, "audio_url", got["wav"].Member)
	assert.Equal(t, captchagate.Digits{}.Media()[1].Langs, got["wav"].Langs)
	for _, a := range []string{"123456", "123 456", "12-34-56", "１２３４５６", `{"x":100.0,"y":5.0}`, "100", "100.5"} {
		assert.True(t, p.ValidAnswer(a), a)
	}
	for _, a := range []string{"", "12345a", "1234567", "12345678", "abcdef", "x"} {
		assert.False(t, p.ValidAnswer(a), a)
	}
}

// flow is a gate issuing puzzles through a spy, on an httptest server.
type flow struct {
	srv *httptest.Server
	spy *gatetest.SliderSpy
}

func newFlow(t *testing.T) *flow {
	spy := &gatetest.SliderSpy{}
	gate, err := captchagate.New(captchagate.Config{Challenge: spy, Secret: gatetest.Secret})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	gate.Guard(captchagate.Policy{Name: "signin", MaxFailures: 5, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	mux := http.NewServeMux()
	mux.Handle("/captcha/", gate.Handler())
	f := &flow{srv: httptest.NewServer(mux), spy: spy}
	t.Cleanup(f.srv.Close)
	return f
}

type reply struct {
	code  int
	Error string               `json:"error"`
	Code  int                  `json:"code"`
	Token string               `json:"captcha_token"`
	C     *captchagate.Captcha `json:"captcha"`
}

func (f *flow) post(t *testing.T, path string, body map[string]string) reply {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(f.srv.URL+path, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer res.Body.Close()
	var r reply
	require.NoError(t, json.NewDecoder(res.Body).Decode(&r))
	r.code = res.StatusCode
	return r
}

// puzzle issues a captcha and fetches its sound, as a blind visitor's
// browser does, so the spy knows its digits.
func (f *flow) puzzle(t *testing.T) (*captchagate.Captcha, string, int) {
	t.Helper()
	r := f.post(t, "/captcha/new", map[string]string{"policy": "signin"})
	require.Equal(t, http.StatusOK, r.code)
	c := r.C
	require.NotEmpty(t, c.AudioURL)
	raw, _ := c.Extra["digits_image_url"].(json.RawMessage)
	var du string
	require.NoError(t, json.Unmarshal(raw, &du))
	require.Equal(t, "/captcha/"+c.ID+".digits.png", du)
	res, err := http.Get(f.srv.URL + c.AudioURL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "audio/wav", res.Header.Get("Content-Type"))
	digits, ok := f.spy.Digits(c.ID)
	require.True(t, ok)
	gap, ok := f.spy.Gap(c.ID)
	require.True(t, ok)
	return c, digits, gap
}

// TestEitherAnswerSpendsTheCaptchaOnce: one captcha, one id: the digits
// buy a token, and then neither the digits nor the gap buys another; the
// gap first, and the digits after it are refused. A malformed answer is
// refused without spending the captcha.
func TestEitherAnswerSpendsTheCaptchaOnce(t *testing.T) {
	t.Parallel()
	f := newFlow(t)
	verify := func(id, answer string) reply {
		return f.post(t, "/captcha/verify", map[string]string{"captcha_id": id, "captcha_answer": answer})
	}
	point := func(x int) string { return fmt.Sprintf(`{"x":%d.0,"y":5.0}`, x) }

	c, digits, gap := f.puzzle(t)
	bad := verify(c.ID, digits[:5]+"x")
	assert.Equal(t, http.StatusBadRequest, bad.code)
	assert.Equal(t, "invalid_request", bad.Error)
	r := verify(c.ID, digits)
	require.Equal(t, http.StatusOK, r.code, "the malformed answer spent nothing")
	assert.NotEmpty(t, r.Token)
	assert.Empty(t, verify(c.ID, digits).Token)
	assert.Empty(t, verify(c.ID, point(gap)).Token)

	c, digits, gap = f.puzzle(t)
	r = verify(c.ID, point(gap))
	require.Equal(t, http.StatusOK, r.code)
	assert.NotEmpty(t, r.Token)
	assert.Empty(t, verify(c.ID, digits).Token)

	// A wrong digits answer spends the captcha as a wrong point does.
	c, digits, _ = f.puzzle(t)
	wrong := []byte(digits)
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	r = verify(c.ID, string(wrong))
	assert.Equal(t, "captcha_invalid", r.Error)
	assert.Empty(t, verify(c.ID, digits).Token)
}
