package main

import (
	"testing"

	"github.com/captchagate/captchagate/internal/flowtest"
)

// Trip, captcha, verify, sign in with the token, once, on chi.
func TestLoginFlow(t *testing.T) {
	t.Parallel()
	flowtest.Login(t, NewApp)
}
