package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/flowtest"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
)

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

	for i, base := range []string{a, b, a, b, a} {
		w := flowtest.Post(t, base+"/api/login", flowtest.Wrong)
		assert.Equal(t, http.StatusUnauthorized, w.Status, "wrong password %d", i+1)
		assert.True(t, w.JSON, "wrong password %d: %s", i+1, w.Raw)
	}
	tripped := flowtest.Post(t, b+"/api/login", flowtest.Wrong)
	require.Equal(t, http.StatusPreconditionRequired, tripped.Status, "the sixth failure, the third on B")
	require.NotNil(t, tripped.Body.Captcha)

	flowtest.Image(t, a, tripped)                // B's captcha, drawn by A
	token := flowtest.Verify(t, a, spy, tripped) // and verified on A

	in := flowtest.Post(t, b+"/api/login", flowtest.Right, "X-Captcha-Token", token)
	assert.Equal(t, http.StatusOK, in.Status, "A's token on B")
	assert.True(t, in.Body.OK)
	for _, base := range []string{a, b} {
		again := flowtest.Post(t, base+"/api/login", flowtest.Right, "X-Captcha-Token", token)
		assert.Equal(t, http.StatusForbidden, again.Status, "the token used once on B, again")
		assert.Equal(t, "captcha_invalid", again.Body.Error)
	}
}
