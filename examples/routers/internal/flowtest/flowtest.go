// Package flowtest runs the login flow every router example must pass,
// over real HTTP.
package flowtest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// Login serves the routes newApp mounts on a gate whose captchas tell the
// test their answers once rendered, and runs the flow: five wrong passwords
// answered 401, the sixth 428 captcha_required; the captcha's image loaded
// (a PNG), its answer posted to the verify URL, the right password accepted
// with the captcha_token, and the same token refused the second time. The
// gate must log neither a mounting warning nor an unsettled guard.
func Login(t *testing.T, newApp func(*captchagate.Gate) http.Handler) {
	t.Helper()
	spy := &gatetest.Spy{}
	var log syncBuffer
	gate, err := captchagate.New(captchagate.Config{Challenge: spy, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	srv := httptest.NewServer(newApp(gate))
	t.Cleanup(srv.Close)

	const wrong, right = `{"username":"alice","password":"nope"}`, `{"username":"alice","password":"wonderland"}`
	for i := 1; i <= 5; i++ {
		a := post(t, srv.URL+"/api/login", wrong, "")
		require.Equal(t, http.StatusUnauthorized, a.Status, "wrong password %d: %s", i, a.Raw)
	}
	a := post(t, srv.URL+"/api/login", wrong, "")
	require.Equal(t, http.StatusPreconditionRequired, a.Status, "the sixth wrong password: %s", a.Raw)
	require.Equal(t, "captcha_required", a.Body.Error)
	require.NotNil(t, a.Body.Captcha, a.Raw)

	res, err := http.Get(srv.URL + a.Body.Captcha.ImageURL)
	require.NoError(t, err)
	img, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "the image URL %s is served", a.Body.Captcha.ImageURL)
	require.True(t, bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	digits, ok := spy.Answer(a.Body.Captcha.ID)
	require.True(t, ok)

	v := post(t, srv.URL+a.Body.Captcha.VerifyURL, `{"captcha_id":"`+a.Body.Captcha.ID+`","captcha_answer":"`+digits+`"}`, "")
	require.Equal(t, http.StatusOK, v.Status, "verify: %s", v.Raw)
	require.NotEmpty(t, v.Body.Token)

	in := post(t, srv.URL+"/api/login", right, v.Body.Token)
	assert.Equal(t, http.StatusOK, in.Status, "with the token: %s", in.Raw)
	assert.True(t, in.Body.OK)
	again := post(t, srv.URL+"/api/login", right, v.Body.Token)
	assert.Equal(t, http.StatusForbidden, again.Status, "the token again: %s", again.Raw)
	assert.Equal(t, "captcha_invalid", again.Body.Error)

	assert.NotContains(t, log.String(), "outside Config.Prefix", "Handler mounted at Config.Prefix")
	assert.NotContains(t, log.String(), "saw no outcome", "the guard sees the handler's statuses")
}

type answer struct {
	Status int
	Raw    string
	Body   struct {
		Error   string `json:"error"`
		OK      bool   `json:"ok"`
		Token   string `json:"captcha_token"`
		Captcha *struct {
			ID        string `json:"id"`
			ImageURL  string `json:"image_url"`
			VerifyURL string `json:"verify_url"`
		} `json:"captcha"`
	}
}

func post(t *testing.T, url, body, token string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set(captchagate.TokenHeader, token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	a := answer{Status: res.StatusCode, Raw: string(b)}
	require.NoError(t, json.Unmarshal(b, &a.Body), "%s answered %d %q", url, res.StatusCode, b)
	return a
}

// syncBuffer is a log the server's goroutines write and the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
