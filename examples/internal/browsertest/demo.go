package browsertest

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo pages (examples/challenges, examples/cap) share a sign-in form:
// #username, #password, and a status line #state whose class says how the
// last post went ("ok", "problem", "info").

// State waits until the demo page's status line has class cls and
// returns its text.
func State(t *testing.T, ctx context.Context, cls string) string {
	t.Helper()
	Wait(t, ctx, "the state "+cls, `document.getElementById("state").className === "`+cls+`"`)
	return Eval[string](t, ctx, `document.getElementById("state").textContent`)
}

// ClearState clears the status line's class, so that State waits for the
// next post's answer rather than reading the last one's.
func ClearState(t *testing.T, ctx context.Context) {
	t.Helper()
	Eval[bool](t, ctx, `(document.getElementById("state").className = "", true)`)
}

// TripByKeyboard trips user's account on the demo page with the keyboard
// alone: the username field, Tab, a wrong password, Enter n times (each
// answered "wrong username or password", focus staying in the field),
// then the wrong password replaced by right, not yet sent. Focus is left
// in the password field.
func TripByKeyboard(t *testing.T, ctx context.Context, user, right string, n int) {
	t.Helper()
	const wrong = "nope"
	active := func() string { return Eval[string](t, ctx, `document.activeElement.id`) }
	Do(t, ctx, chromedp.Focus("#username"), chromedp.KeyEvent(user), chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "password", active(), "Tab from the username reaches the password")
	Do(t, ctx, chromedp.KeyEvent(wrong))
	for i := range n {
		ClearState(t, ctx)
		Do(t, ctx, chromedp.KeyEvent(kb.Enter))
		assert.Contains(t, State(t, ctx, "problem"), "wrong username or password", "attempt %d", i+1)
	}
	require.Equal(t, "password", active(), "focus stays in the password field")
	Do(t, ctx, chromedp.KeyEvent(kb.End))
	for range len(wrong) {
		Do(t, ctx, chromedp.KeyEvent(kb.Backspace))
	}
	Do(t, ctx, chromedp.KeyEvent(right))
}
