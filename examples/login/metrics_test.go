package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// The demo wired as main wires it: six wrong passwords for alice trip her
// account's key, and /metrics counts the trip and the captcha, never alice.
func TestMetrics(t *testing.T) {
	t.Parallel()
	hook, metrics, err := Metrics()
	require.NoError(t, err)
	gate, err := captchagate.New(captchagate.Config{Challenge: gatetest.KnownDigits{}, OnEvent: hook,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { gate.Close() })
	app, err := NewApp(gate, SessionStore(nil))
	require.NoError(t, err)
	srv := httptest.NewServer(WithMetrics(app, metrics))
	t.Cleanup(srv.Close)

	for i := 1; i <= 6; i++ {
		post(t, srv.URL, "/api/login", jsonCT, wrongLogin)
	}
	a := post(t, srv.URL, "/api/login", jsonCT, wrongLogin)
	require.Equal(t, http.StatusPreconditionRequired, a.Status)

	res, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, `captchagate_events_total{key="field:username",mode="",outcome="tripped",policy="login"} 1`+"\n")
	assert.Contains(t, text, `captchagate_events_total{key="",mode="image",outcome="issued",policy="login"} 2`+"\n")
	assert.Contains(t, text, "go_goroutines ", "the runtime's metrics")
	assert.NotContains(t, strings.ToLower(text), "alice")
}
