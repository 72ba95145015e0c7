package redisstore_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/storetest"
)

// An admin's Reset on one instance is every instance's: it names the
// counters in Redis as the guards do, from any spelling of the value.
func TestAdminResetAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	clk := storetest.NewClock()
	a := newInstance(t, srv.Addr, "adm:", clk, nil)
	b := newInstance(t, srv.Addr, "adm:", clk, nil)
	sms := `{"phone":"+1 555 000 1234"}`
	require.Equal(t, http.StatusOK, a.post(t, "/sms", sms).status)
	require.Equal(t, http.StatusOK, b.post(t, "/sms", sms).status)
	rp := a.post(t, "/sms", sms)
	require.Equal(t, http.StatusPreconditionRequired, rp.status, "the burst of 2 is spent across A and B")

	require.NoError(t, b.gate.Reset(context.Background(), "sms", "phone", "001 (555) 000-1234"))
	assert.Equal(t, http.StatusOK, a.post(t, "/sms", sms).status, "B's reset, seen by A")
	assert.Equal(t, http.StatusOK, b.post(t, "/sms", sms).status)
	assert.Equal(t, http.StatusPreconditionRequired, a.post(t, "/sms", sms).status)

	// A Combine (username+IP) cannot be named by one value.
	assert.ErrorContains(t, a.gate.Reset(context.Background(), "login", "json:username+ip", "alice"), "Combine")
}
