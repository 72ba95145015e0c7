package captchagate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/idaas"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/slider"
)

// sliderApp: an SMS send endpoint guarded per phone (one send, then a
// captcha) on a gate issuing slider puzzles through a spy.
type sliderApp struct {
	gate   *captchagate.Gate
	spy    *gatetest.SliderSpy
	mux    *http.ServeMux
	sends  atomic.Int64
	events eventLog
}

var smsPolicy = captchagate.Policy{
	Name: "sms",
	Keys: []captchagate.Key{func() captchagate.Key {
		k := captchagate.Phone(captchagate.JSONField("phone"))
		k.Rate, k.Burst = 1.0/60, 1
		return k
	}()},
}

// The gate speaks the identity service's verify (dialect/idaas), accepting
// clientIDs if any are given.
func newSliderApp(t *testing.T, sl slider.Puzzle, clientIDs ...string) *sliderApp {
	a := &sliderApp{spy: &gatetest.SliderSpy{Puzzle: sl}, mux: http.NewServeMux()}
	a.gate, _ = newGate(t, func(c *captchagate.Config) {
		c.Challenge = a.spy
		c.Dialects = []captchagate.Dialect{idaas.Dialect{ClientIDs: clientIDs}}
		c.OnEvent = a.events.hook
	})
	a.mux.Handle("/captcha/", a.gate.Handler())
	a.mux.Handle("POST /send", a.gate.Guard(smsPolicy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.sends.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})))
	return a
}

func (a *sliderApp) send(phone string, extra ...string) *httpResult {
	body := map[string]string{"phone": phone}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(body)
	w := serve(a.mux, "POST", "/send", string(b), "Content-Type", "application/json")
	return &httpResult{w.Code, w.Body.Bytes()}
}

type httpResult struct {
	code int
	body []byte
}

// puzzle trips phone's send limit and returns the slider captcha, its
// picture fetched so the spy knows the gap.
func (a *sliderApp) puzzle(t *testing.T, phone string) (*captchagate.Captcha, int) {
	t.Helper()
	res := a.send(phone)
	if res.code == http.StatusNoContent {
		res = a.send(phone)
	}
	require.Equal(t, http.StatusPreconditionRequired, res.code, string(res.body))
	var e apiError
	require.NoError(t, json.Unmarshal(res.body, &e))
	c := e.Captcha
	require.NotNil(t, c)
	w := serve(a.mux, "GET", c.ImageURL, "")
	require.Equal(t, http.StatusOK, w.Code)
	x, ok := a.spy.Gap(c.ID)
	require.True(t, ok)
	return c, x
}

var deviceHeaders = []string{
	"Content-Type", "application/json",
	"X-operating-sys-version", "windows10.1.1",
	"X-device-fingerprint", "156aysdna213sc50",
	"X-agent", "Mozilla/5.0",
	"X-client-id", "nTo1eRIub60vPb54WeE6aojPwYwImtl4",
}

// seedError is the seed's error body (dialect/idaas): its string
// error_code and error_msg beside the gate's members, the gate's numeric
// code in "code".
type seedError struct {
	SeedCode    string               `json:"error_code"`
	SeedMsg     string               `json:"error_msg"`
	Error       string               `json:"error"`
	Code        int                  `json:"code"`
	Description string               `json:"error_description"`
	Param       string               `json:"param"`
	Captcha     *captchagate.Captcha `json:"captcha"`
}

// seedVerify posts the seed's verify. Its error, in the seed's shape, is
// returned as an apiError (ErrorCode the gate's code) and as a seedError.
func seedVerify(h http.Handler, body map[string]string, hdr ...string) (int, apiError, string) {
	code, e, _, tok := seedVerifyAll(h, body, hdr...)
	return code, e, tok
}

func seedVerifyAll(h http.Handler, body map[string]string, hdr ...string) (int, apiError, seedError, string) {
	b, _ := json.Marshal(body)
	if hdr == nil {
		hdr = deviceHeaders
	}
	w := serve(h, "POST", "/captcha/verify", string(b), hdr...)
	var se seedError
	json.Unmarshal(w.Body.Bytes(), &se)
	e := apiError{Error: se.Error, ErrorCode: se.Code, Description: se.Description, Param: se.Param, Captcha: se.Captcha}
	var tok struct {
		Token string `json:"captcha_token"`
	}
	json.Unmarshal(w.Body.Bytes(), &tok)
	return w.Code, e, se, tok.Token
}

func point(x float64) string { return fmt.Sprintf(`{"x":%.1f,"y":5.0}`, x) }

func TestSliderRenders(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{})
	c, _ := a.puzzle(t, "15200000000")
	assert.Equal(t, "slider", c.Kind)
	assert.Equal(t, "/captcha/"+c.ID+".wav", c.AudioURL, "the non-visual way through: the digits' sound")
	assert.Equal(t, "/captcha/"+c.ID+".digits.png", member(c, "digits_image_url"))
	var geo slider.Geometry
	require.NoError(t, json.Unmarshal(c.Extra["slider"].(json.RawMessage), &geo))
	assert.Equal(t, slider.Geometry{Width: 320, Height: 160, PieceWidth: 48, Y: 5}, geo)
	assert.Equal(t, "/captcha/"+c.ID+".piece.png", member(c, "piece_url"))

	bg := decodePNG(t, serve(a.mux, "GET", c.ImageURL, "").Body.Bytes())
	assert.Equal(t, image.Rect(0, 0, 320, 160), bg.Bounds())
	pieceImg := decodePNG(t, serve(a.mux, "GET", member(c, "piece_url"), "").Body.Bytes())
	assert.Equal(t, image.Rect(0, 0, 48, 160), pieceImg.Bounds())
	// The piece is opaque somewhere and transparent in the corners of its
	// image. (What its pixels and the picture's give a script away is
	// measured by slider/solver_test.go.)
	opaque := 0
	for y := range 160 {
		for xx := range 48 {
			if _, _, _, al := pieceImg.At(xx, y).RGBA(); al == 0xffff {
				opaque++
			}
		}
	}
	assert.Greater(t, opaque, 36*36)
	_, _, _, al := pieceImg.At(0, 0).RGBA()
	assert.Zero(t, al)

	// Two puzzles never share a picture.
	c2, _ := a.puzzle(t, "15200000001")
	bg2 := serve(a.mux, "GET", c2.ImageURL, "").Body.Bytes()
	assert.NotEqual(t, serve(a.mux, "GET", c.ImageURL, "").Body.Bytes(), bg2)
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

func TestSliderSeedVerify(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{})
	const phone = "15200000000"
	c, x := a.puzzle(t, phone)

	code, e, tok := seedVerify(a.mux, map[string]string{"point_json": point(float64(x) + 3), "token": c.ID, "sender": "152 0000 0000"})
	require.Equal(t, http.StatusOK, code, "%+v", e)
	require.GreaterOrEqual(t, len(tok), 80, "a sealed token")

	// The token opens the send for that sender (in any of its spellings) once.
	res := a.send("152-0000-0000", "captcha_token", tok)
	require.Equal(t, http.StatusNoContent, res.code, string(res.body))
	res = a.send(phone, "captcha_token", tok)
	require.Equal(t, http.StatusForbidden, res.code)

	// A token verified for one sender does not open another's send.
	c, x = a.puzzle(t, phone)
	_, _, tok = seedVerify(a.mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": phone})
	require.NotEmpty(t, tok)
	a.send("15299999999") // its one free send
	res = a.send("15299999999", "captcha_token", tok)
	require.Equal(t, http.StatusForbidden, res.code)
	var pe apiError
	require.NoError(t, json.Unmarshal(res.body, &pe))
	assert.Equal(t, 4002, pe.ErrorCode)
	assert.Equal(t, "verified for another sender", a.events.reason(captchagate.EventTokenRefused))
	assert.Equal(t, int64(3), a.sends.Load(), "two free sends and the one the token opened")
}

// The puzzle's way through without sight, in the seed's verify: the
// digits in point_json, with the same token, sender and headers. The token
// is bound to that sender, as a point's is; wrong digits are a failed
// check with a fresh puzzle; anything but six digits is a malformed
// point_json, which spends nothing.
func TestSliderSeedVerifyDigits(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{})
	const phone = "15200000000"
	c, _ := a.puzzle(t, phone)
	require.NotEmpty(t, c.AudioURL, "the puzzle's digits, spoken")
	w := serve(a.mux, "GET", c.AudioURL, "")
	require.Equal(t, http.StatusOK, w.Code)
	digits, ok := a.spy.Digits(c.ID)
	require.True(t, ok)

	for _, bad := range []string{"abc123", digits[:5], digits + "0"} {
		code, e, _ := seedVerify(a.mux, map[string]string{"point_json": bad, "token": c.ID, "sender": phone})
		require.Equal(t, http.StatusBadRequest, code)
		assert.Equal(t, 4115, e.ErrorCode, "%q: neither a point nor six digits", bad)
	}

	code, e, tok := seedVerify(a.mux, map[string]string{"point_json": digits[:3] + " " + digits[3:], "token": c.ID, "sender": phone})
	require.Equal(t, http.StatusOK, code, "%+v", e)
	require.NotEmpty(t, tok)
	code, e, _ = seedVerify(a.mux, map[string]string{"point_json": digits, "token": c.ID, "sender": phone})
	assert.Equal(t, http.StatusBadRequest, code, "the captcha is spent once, whichever way")
	assert.Equal(t, 4002, e.ErrorCode)

	// Bound to the sender: another's send refuses it, the sender's opens.
	a.send("15299999999") // its one free send
	res := a.send("15299999999", "captcha_token", tok)
	require.Equal(t, http.StatusForbidden, res.code)
	assert.Equal(t, "verified for another sender", a.events.reason(captchagate.EventTokenRefused))
	res = a.send("152 0000 0000", "captcha_token", tok)
	assert.Equal(t, http.StatusNoContent, res.code, string(res.body))

	// Wrong digits: a failed check, and a fresh puzzle.
	c, _ = a.puzzle(t, phone)
	digits, ok = a.spy.Digits(c.ID)
	require.True(t, ok)
	wrong := []byte(digits)
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	code, e, _ = seedVerify(a.mux, map[string]string{"point_json": string(wrong), "token": c.ID, "sender": phone})
	require.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, 4002, e.ErrorCode)
	assert.NotNil(t, e.Captcha, "a fresh puzzle for the same flow")
}

func TestSliderTolerance(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{Tolerance: 4})
	for _, tc := range []struct {
		dx float64
		ok bool
	}{{0, true}, {4, true}, {-4, true}, {4.5, false}, {-10, false}, {60, false}} {
		c, x := a.puzzle(t, "1520000"+strconv.Itoa(int(tc.dx*10)+1000))
		code, e, _ := seedVerify(a.mux, map[string]string{"point_json": point(float64(x) + tc.dx), "token": c.ID, "sender": "1"})
		if !tc.ok {
			// The seed's failed check: 400 IDAAS.SDK.CAPTCHA.0002, with the
			// gate's captcha_invalid and a fresh puzzle beside it.
			require.Equal(t, http.StatusBadRequest, code, "dx %v", tc.dx)
			assert.Equal(t, 4002, e.ErrorCode)
			assert.Equal(t, "captcha_invalid", e.Error)
			require.NotNil(t, e.Captcha, "a fresh puzzle for the same flow")
			// One attempt per puzzle: the right answer now fails too.
			code, _, se, _ := seedVerifyAll(a.mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": "1"})
			assert.Equal(t, http.StatusBadRequest, code)
			assert.Equal(t, "IDAAS.SDK.CAPTCHA.0002", se.SeedCode)
			assert.Equal(t, "Graphic verification code verification failed", se.SeedMsg)
			continue
		}
		// The phone "1" is not the puzzle's phone, but a sender needs no
		// relation to the keys that tripped: the token is bound to it.
		assert.Equal(t, http.StatusOK, code, "dx %v: %+v", tc.dx, e)
	}
}

func TestSliderSeedParameterErrors(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{}, "nTo1eRIub60vPb54WeE6aojPwYwImtl4")
	c, x := a.puzzle(t, "15200000000")
	good := map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": "15200000000"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	without := func(h string) []string {
		var out []string
		for i := 0; i < len(deviceHeaders); i += 2 {
			if deviceHeaders[i] != h {
				out = append(out, deviceHeaders[i], deviceHeaders[i+1])
			}
		}
		return out
	}
	other := append(without("X-client-id"), "X-client-id", "someone-else")
	for _, tc := range []struct {
		name  string
		body  map[string]string
		hdr   []string
		code  int
		param string
		seed  string
	}{
		{"no OS version", good, without("X-operating-sys-version"), 4111, "X-operating-sys-version", "IDAAS.SDK.PARAM.0001"},
		{"no fingerprint", good, without("X-device-fingerprint"), 4111, "X-device-fingerprint", "IDAAS.SDK.PARAM.0001"},
		{"no agent", good, without("X-agent"), 4111, "X-agent", "IDAAS.SDK.PARAM.0001"},
		{"no client id", good, without("X-client-id"), 4112, "X-client-id", "IDAAS.SDK.PARAM.0002"},
		{"unregistered client", good, other, 4113, "X-client-id", "IDAAS.SDK.PARAM.0003"},
		{"no point", with("point_json", ""), nil, 4114, "point_json", "IDAAS.SDK.PARAM.0004"},
		{"point not json", with("point_json", "237"), nil, 4115, "point_json", "IDAAS.SDK.PARAM.0004"},
		{"point without y", with("point_json", `{"x":237}`), nil, 4115, "point_json", "IDAAS.SDK.PARAM.0004"},
		{"point x not a number", with("point_json", `{"x":"237","y":5}`), nil, 4115, "point_json", "IDAAS.SDK.PARAM.0004"},
		{"no token", with("token", ""), nil, 4116, "token", "IDAAS.SDK.PARAM.0005"},
		{"token not an id", with("token", "71dd26999e314f9abb0c635336976635"), nil, 4102, "token", "IDAAS.SDK.PARAM.0005"},
		{"no sender", with("sender", ""), nil, 4117, "sender", "IDAAS.SDK.PARAM.0006"},
		{"sender too long", with("sender", string(bytes.Repeat([]byte("9"), 300))), nil, 4118, "sender", "IDAAS.SDK.PARAM.0006"},
	} {
		code, e, se, tok := seedVerifyAll(a.mux, tc.body, tc.hdr...)
		assert.Equal(t, http.StatusBadRequest, code, tc.name)
		assert.Equal(t, tc.seed, se.SeedCode, tc.name)
		assert.NotEmpty(t, se.SeedMsg, tc.name)
		assert.Equal(t, tc.code, e.ErrorCode, tc.name)
		assert.Equal(t, tc.param, e.Param, tc.name)
		assert.Equal(t, "invalid_request", e.Error, tc.name)
		assert.NotEmpty(t, e.Description, tc.name)
		assert.Empty(t, tok, tc.name)
	}
	// None of those spent the puzzle.
	code, e, tok := seedVerify(a.mux, good)
	require.Equal(t, http.StatusOK, code, "%+v", e)
	assert.NotEmpty(t, tok)
}

func TestSliderSenderNeedsSenderKey(t *testing.T) {
	spy := &gatetest.SliderSpy{}
	g, _ := newGate(t, func(c *captchagate.Config) {
		c.Challenge = spy
		c.Dialects = []captchagate.Dialect{idaas.Dialect{}}
	})
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	g.Guard(captchagate.Policy{Name: "ip", Keys: []captchagate.Key{{Source: captchagate.ClientIP(), MaxFailures: 1}}})
	w := serve(mux, "POST", "/captcha/new", `{"policy":"ip"}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, w.Code)
	var cb struct{ Captcha captchagate.Captcha }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cb))
	serve(mux, "GET", cb.Captcha.ImageURL, "")
	x, _ := spy.Gap(cb.Captcha.ID)
	code, e, tok := seedVerify(mux, map[string]string{"point_json": point(float64(x)), "token": cb.Captcha.ID, "sender": "1"})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, 4118, e.ErrorCode)
	assert.Empty(t, tok)
	// A parameter error spends no puzzle: the same answer, without the
	// sender, still solves it.
	w = verify(mux, cb.Captcha.ID, point(float64(x)))
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func TestSliderInlineAndConcurrent(t *testing.T) {
	a := newSliderApp(t, slider.Puzzle{})
	const phone = "15200000000"
	c, x := a.puzzle(t, phone)
	// Inline, on the guarded request itself: point_json or a bare x.
	res := a.send(phone, "captcha_id", c.ID, "captcha_answer", strconv.Itoa(x+2))
	require.Equal(t, http.StatusNoContent, res.code, string(res.body))

	// 40 concurrent right answers to one puzzle: one token.
	for round := range 3 {
		c, x = a.puzzle(t, phone)
		var ok atomic.Int64
		together(40, func() {
			code, _, tok := seedVerify(a.mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": phone})
			if code == http.StatusOK && tok != "" {
				ok.Add(1)
			}
		})
		assert.Equal(t, int64(1), ok.Load(), "round %d", round)
	}
}
