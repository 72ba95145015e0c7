package browsertest

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// SpyGate returns a gate on the in-memory store that issues Digits through a
// gatetest.Spy and logs nothing, closed when t ends, and a session cookie
// store for plain-http test servers.
func SpyGate(t testing.TB) (*captchagate.Gate, *gatetest.Spy, sessions.Store) {
	spy := &gatetest.Spy{}
	gate, err := captchagate.New(captchagate.Config{Challenge: spy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.Close() })
	store := sessions.NewCookieStore(gatetest.Secret)
	store.Options = &sessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return gate, spy, store
}
