package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// The send-code API reads its body the way the guard's Field("phone") does:
// a form as a form (the page without JavaScript), JSON only when it is sent
// as JSON; a body under any other Content-Type is refused (415) before it is
// read, and no code is sent. The code goes to the number the guard counted.
func TestSendCodeAPIContentType(t *testing.T) {
	t.Parallel()
	gate, _, store := browsertest.SpyGate(t)
	var sent atomic.Int64
	h, err := NewApp(gate, store, func(phone, code string) { sent.Add(1) })
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	post := func(ct, body string) (int, string) {
		t.Helper()
		res, err := http.Post(srv.URL+"/api/send-code", ct, strings.NewReader(body))
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(b)
	}

	for _, c := range []struct{ ct, body string }{
		{"text/plain", `{"phone":"+1 555 0101"}`}, // the guard reads it as JSON, as the handler would
		{"", `{"phone":"+1 555 0102"}`},           // the same
	} {
		status, body := post(c.ct, c.body)
		assert.Equal(t, http.StatusUnsupportedMediaType, status, "Content-Type %q: %s", c.ct, body)
		assert.JSONEq(t, `{"error":"unsupported_media_type","error_description":"send Content-Type: application/json"}`, body)
	}
	assert.Zero(t, sent.Load(), "no code sent for a body not sent as JSON")

	// A JSON body sent as a form: the guard counts its JSON phone, the
	// handler reads the form and finds none, and refuses it.
	status, _ := post("application/x-www-form-urlencoded", `{"phone":"+1 555 0104"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Zero(t, sent.Load())

	var body string

	status, body = post("application/json; charset=utf-8", `{"phone":"+1 555 0105"}`)
	assert.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, int64(1), sent.Load())

	// A form (the page without JavaScript) sends to the number in the form,
	// the one the guard counted.
	status, body = post("application/x-www-form-urlencoded", "phone=%2B1+555+0103")
	assert.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, int64(2), sent.Load())
}
