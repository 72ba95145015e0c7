package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
)

type answer struct {
	Status int
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

func post(t *testing.T, url, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	a := answer{Status: res.StatusCode}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&a.Body))
	return a
}

// Two instances on one real redis-server: failures on A and B count
// together, a captcha issued by B renders and verifies on A, and the token
// A minted signs in on B, once: a second use is refused on either.
func TestTwoInstancesShareOneRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	spy := &gatetest.Spy{} // the test's stand-in for the person reading the picture
	cfg := captchagate.Config{Secret: gatetest.Secret, Challenge: spy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	start := func() string {
		in, err := NewInstance(&redis.Options{Addr: srv.Addr}, cfg)
		require.NoError(t, err)
		s := httptest.NewServer(in)
		t.Cleanup(func() {
			s.Close()
			assert.NoError(t, in.Close())
		})
		return s.URL
	}
	a, b := start(), start()

	const wrong, right = `{"username":"alice","password":"nope"}`, `{"username":"alice","password":"wonderland"}`
	for i, base := range []string{a, b, a, b, a} {
		assert.Equal(t, http.StatusUnauthorized, post(t, base+"/api/login", wrong).Status, "wrong password %d", i+1)
	}
	tripped := post(t, b+"/api/login", wrong)
	require.Equal(t, http.StatusPreconditionRequired, tripped.Status, "the sixth failure, the third on B")
	require.NotNil(t, tripped.Body.Captcha)
	c := tripped.Body.Captcha

	res, err := http.Get(a + c.ImageURL) // B's captcha, drawn by A
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	digits, ok := spy.Answer(c.ID)
	require.True(t, ok)
	v := post(t, a+c.VerifyURL, `{"captcha_id":"`+c.ID+`","captcha_answer":"`+digits+`"}`)
	require.Equal(t, http.StatusOK, v.Status, "B's captcha verified on A")
	require.NotEmpty(t, v.Body.Token)

	in := post(t, b+"/api/login", right, "X-Captcha-Token", v.Body.Token)
	assert.Equal(t, http.StatusOK, in.Status, "A's token on B")
	assert.True(t, in.Body.OK)
	for _, base := range []string{a, b} {
		again := post(t, base+"/api/login", right, "X-Captcha-Token", v.Body.Token)
		assert.Equal(t, http.StatusForbidden, again.Status, "the token used once on B, again")
		assert.Equal(t, "captcha_invalid", again.Body.Error)
	}
}
