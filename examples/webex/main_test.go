package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/examples/internal/nodetest"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// nodeDir is the npm directory of the SDK and the driver.
const nodeDir = "node"

// needSDK skips t without node or the npm-installed SDK, or fails it with
// CAPTCHAGATE_REQUIRE_BROWSER=1 (as CI sets it).
func needSDK(t *testing.T) {
	t.Helper()
	nodetest.Need(t, nodeDir, "@webex/plugin-meetings", "examples/webex/node")
}

// stepReport is one line the driver writes.
type stepReport struct {
	Need      string `json:"need"`
	Done      bool   `json:"done"`
	Flow      string `json:"flow"`
	Step      string `json:"step"`
	CaptchaID string `json:"captchaID"`
	Result    *struct {
		IsPasswordValid bool    `json:"isPasswordValid"`
		RequiredCaptcha *string `json:"requiredCaptcha"`
		FailureReason   string  `json:"failureReason"`
	} `json:"result"`
	Error string `json:"error"`
	State struct {
		PasswordStatus string  `json:"passwordStatus"`
		FailureReason  string  `json:"failureReason"`
		Code           int     `json:"code"`
		CaptchaID      *string `json:"captchaID"`
	} `json:"state"`
	ImageStatus int    `json:"imageStatus"`
	ImageType   string `json:"imageType"`
	PNG         string `json:"png"`
	AudioStatus int    `json:"audioStatus"`
	WAV         string `json:"wav"`
	RefreshURL  string `json:"refreshURL"`
}

// TestWebexSDK drives the unmodified @webex/plugin-meetings (its Meeting's
// verifyPassword, fetchMeetingInfo and refreshCaptcha) against the example
// on loopback through four flows: wrong passwords, the captcha, right code
// and password; a wrong code; two refreshes; a right code with a wrong
// password (the SDK then refreshes the captcha it used), then right. The
// codes come from the server's challenge in-process (gatetest.Spy), each
// the first answer the SDK sends. Several runs, each on its own server.
func TestWebexSDK(t *testing.T) {
	needSDK(t)
	for run := 1; run <= 3; run++ {
		t.Run("run", func(t *testing.T) { driveSDK(t) })
	}
}

func driveSDK(t *testing.T) {
	spy := &gatetest.Spy{Digits: captchagate.Digits{Length: 5}} // the digit count is configurable
	start := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return start } // nothing in the flows waits
	var ev gatetest.EventCounts
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	app, err := NewApp(base, gatetest.Secret, Options{Challenge: spy, Now: clock, OnEvent: ev.Record})
	require.NoError(t, err)
	defer app.Close()
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "driver.js", base)
	cmd.Dir = nodeDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var answers []string
	steps := map[string]stepReport{}
	var order []string
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var s stepReport
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s), "driver line %q", sc.Text())
		switch {
		case s.Need == "answer":
			a, ok := spy.Answer(s.CaptchaID)
			require.True(t, ok, "the captcha the SDK holds was rendered (its image fetched) before its code is asked")
			answers = append(answers, a)
			_, err := io.WriteString(stdin, a+"\n")
			require.NoError(t, err)
		case s.Done:
			done = true
		default:
			k := s.Flow + "/" + s.Step
			if s.Step == "media" {
				k += "/" + s.CaptchaID
			}
			steps[k] = s
			order = append(order, k)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	if werr != nil || !done {
		out := stderr.String()
		for _, a := range answers {
			out = strings.ReplaceAll(out, a, "<code>")
		}
		if len(out) > 6000 {
			out = out[len(out)-6000:]
		}
		t.Fatalf("driver: %v, done=%v; its stderr (codes redacted):\n%s", werr, done, out)
	}

	get := func(flow, step string) stepReport {
		t.Helper()
		s, ok := steps[flow+"/"+step]
		require.True(t, ok, "step %s/%s reported (have %v)", flow, step, order)
		return s
	}
	id := func(s stepReport) string {
		require.NotNil(t, s.State.CaptchaID, "%s/%s: the SDK holds a captcha", s.Flow, s.Step)
		return *s.State.CaptchaID
	}
	mediaOK := func(flow, captchaID string) {
		t.Helper()
		m, ok := steps[flow+"/media/"+captchaID]
		require.True(t, ok, "%s: the image of %s fetched", flow, captchaID)
		assert.Equal(t, 200, m.ImageStatus)
		assert.Equal(t, "image/png", m.ImageType)
		assert.Equal(t, "PNG", m.PNG)
		assert.Equal(t, 200, m.AudioStatus)
		assert.Equal(t, "RIFF", m.WAV)
		assert.True(t, strings.HasPrefix(m.RefreshURL, base+Prefix+"refresh?"), "absolute refreshURL with a query: %s", m.RefreshURL)
	}
	success := func(flow string) {
		t.Helper()
		s := get(flow, "right-code-right-password")
		require.NotNil(t, s.Result, "%s: verifyPassword resolved (error %q)", flow, s.Error)
		assert.True(t, s.Result.IsPasswordValid, "%s: in", flow)
		assert.Equal(t, "NONE", s.Result.FailureReason, flow)
		assert.Equal(t, "VERIFIED", s.State.PasswordStatus, flow)
		assert.Nil(t, s.State.CaptchaID, "%s: no captcha left", flow)
	}
	// trip checks the probe and the wrong passwords, and returns the
	// captcha the fourth met.
	trip := func(flow string) string {
		t.Helper()
		p := get(flow, "probe")
		assert.Equal(t, "PasswordError", p.Error, "%s: the probe asks for the password", flow)
		assert.Equal(t, 403004, p.State.Code, flow)
		for i := 1; i <= 3; i++ {
			s := get(flow, "wrong-password-"+string(rune('0'+i)))
			require.NotNil(t, s.Result, flow)
			assert.False(t, s.Result.IsPasswordValid, flow)
			// Three wrong passwords after the probe, none asked for a
			// captcha: the probe did not count.
			assert.Nil(t, s.Result.RequiredCaptcha, "%s: wrong password %d needs no captcha yet", flow, i)
			assert.Equal(t, 403028, s.State.Code, flow)
		}
		s := get(flow, "wrong-password-4")
		require.NotNil(t, s.Result, flow)
		require.NotNil(t, s.Result.RequiredCaptcha, "%s: the fourth wrong password meets the captcha", flow)
		assert.Equal(t, 423005, s.State.Code, flow)
		assert.Equal(t, "REQUIRED", s.State.PasswordStatus, flow)
		return id(s)
	}

	// 1: wrong passwords → 423 → image → right code and password → in.
	c := trip("right")
	mediaOK("right", c)
	success("right")

	// 2: a wrong code: 423 with a new captcha; it answered, in.
	c = trip("wrong-code")
	mediaOK("wrong-code", c)
	w := get("wrong-code", "wrong-code-right-password")
	require.NotNil(t, w.Result)
	assert.False(t, w.Result.IsPasswordValid)
	assert.Equal(t, "WRONG_CAPTCHA", w.Result.FailureReason)
	assert.Equal(t, 423006, w.State.Code)
	c2 := id(w)
	assert.NotEqual(t, c, c2, "a wrong code's answer carries a new captcha")
	mediaOK("wrong-code", c2)
	success("wrong-code")

	// 3: refresh twice: a new captcha each time, the last answered.
	c = trip("refresh")
	r1 := get("refresh", "refresh-1")
	r2 := get("refresh", "refresh-2")
	assert.Empty(t, r1.Error)
	assert.Empty(t, r2.Error)
	assert.NotEqual(t, c, id(r1))
	assert.NotEqual(t, id(r1), id(r2))
	mediaOK("refresh", id(r1))
	mediaOK("refresh", id(r2))
	success("refresh")

	// 4: a right code with a wrong password: the SDK refreshes the captcha
	// it used and gets a new one; that one and the password, in.
	c = trip("used")
	mediaOK("used", c)
	u := get("used", "right-code-wrong-password")
	require.NotNil(t, u.Result, "verifyPassword resolved (error %q)", u.Error)
	assert.False(t, u.Result.IsPasswordValid)
	assert.Equal(t, "WRONG_PASSWORD", u.Result.FailureReason)
	assert.Equal(t, 403028, u.State.Code)
	c2 = id(u)
	assert.NotEqual(t, c, c2, "the used captcha was refreshed into a new one")
	mediaOK("used", c2)
	success("used")

	// Every code the SDK sent was the first it was given: five right ones
	// and the one made wrong on purpose.
	assert.Equal(t, 5, ev.Count(captchagate.EventCaptchaVerified))
	assert.Equal(t, 1, ev.Count(captchagate.EventCaptchaRejected))
	assert.Equal(t, 2, ev.Count(captchagate.EventCaptchaRefreshed))

	// Single use held: the used captcha of flow 4, with its right code and
	// the right password, is refused with a new captcha; its refresh after
	// use worked once only.
	usedCode, ok := spy.Answer(c)
	require.True(t, ok)
	body := `{"meetingKey":"444444444","password":"` + Password + `","captchaID":"` + c + `","captchaVerifyCode":"` + usedCode + `"}`
	res, err := http.Post(base+"/wbxappapi/v1/meetingInfo", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	var e struct {
		Code int    `json:"code"`
		ID   string `json:"captchaID"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&e))
	res.Body.Close()
	assert.Equal(t, http.StatusLocked, res.StatusCode)
	assert.Equal(t, 423006, e.Code)
	assert.NotEqual(t, c, e.ID)
	res, err = http.Post(base+Prefix+"refresh?captcha_id="+c+"&siteFullName=127.0.0.1", "application/json", strings.NewReader(`{"captchaId":"`+c+`"}`))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "a used captcha is refreshed once")
}
