package captchagate_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/store/memstore"
)

// render returns the bytes of one medium of a digits captcha.
func render(t *testing.T, d captchagate.Digits, id string, secret []byte, format, lang string) []byte {
	t.Helper()
	var b bytes.Buffer
	_, err := d.Render(&b, id, secret, format, lang)
	require.NoError(t, err)
	return b.Bytes()
}

// withSeed is digits followed by a 16-byte seed filled with b.
func withSeed(digits []byte, b byte) []byte {
	return append(append([]byte{}, digits...), bytes.Repeat([]byte{b}, 16)...)
}

// A digits captcha renders from the seed in its secret alone: the same
// (id, secret) gives the same bytes on every render, in any process (the
// drawing has no per-process key), and another seed for the same digits
// gives another picture and sound, so the noise is the captcha's own.
func TestDigitsRenderFromTheSecretsSeed(t *testing.T) {
	t.Parallel()
	d := captchagate.Digits{}
	digits := []byte{3, 1, 4, 1, 5, 9}
	one, other := withSeed(digits, 7), withSeed(digits, 8)
	for _, m := range []struct{ format, lang string }{{"png", ""}, {"wav", "en"}, {"wav", "ja"}} {
		t.Run(m.format+m.lang, func(t *testing.T) {
			t.Parallel()
			a := render(t, d, "id-a", one, m.format, m.lang)
			assert.Equal(t, a, render(t, d, "id-a", one, m.format, m.lang), "one captcha, one rendering")
			assert.Equal(t, a, render(t, d, "id-b", one, m.format, m.lang), "the seed, not the id, draws the noise")
			assert.NotEqual(t, a, render(t, d, "id-a", other, m.format, m.lang), "another seed, the same digits: other noise")
		})
	}
	// A secret of digits alone (issued before the seed) still renders, the
	// same each time, and checks against its digits.
	a := render(t, d, "id-a", digits, "png", "")
	assert.Equal(t, a, render(t, d, "id-a", digits, "png", ""))
	assert.NotEqual(t, a, render(t, d, "id-b", digits, "png", ""), "its seed comes from the id")
	assert.True(t, check(d, digits, "314159"))
	// The seed is no part of the answer.
	assert.True(t, check(d, one, "314159"))
	assert.False(t, check(d, one, "314159"+"7777777777777777"))
	assert.False(t, check(d, one, "314158"))
}

// Issued secrets carry seeds of their own: two captchas with the same
// digits still look different.
func TestDigitsIssueDrawsASeed(t *testing.T) {
	t.Parallel()
	d := captchagate.Digits{Length: 4}
	seen := map[string]bool{}
	for range 50 {
		s, err := d.Issue(captchagate.IssueInfo{})
		require.NoError(t, err)
		require.Len(t, s, 4+16)
		seen[string(s[4:])] = true
	}
	assert.Len(t, seen, 50)
}

// sharedStore is a store two gates share that keeps captchas as records
// (it hides the in-memory store's own spend marks, which are per gate).
type sharedStore struct{ captchagate.Store }

// Two gates on one secret and one shared store (two instances of an app)
// serve one captcha's picture and sound byte for byte alike.
func TestDigitsMediaAlikeOnTwoInstances(t *testing.T) {
	t.Parallel()
	mem := memstore.New(memstore.Options{})
	t.Cleanup(func() { mem.Close() })
	st := sharedStore{mem}
	var mux [2]*http.ServeMux
	for i := range mux {
		g, err := captchagate.New(captchagate.Config{
			Secret: testSecret, Store: st, CreateBurst: 100,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		t.Cleanup(func() { g.Close() })
		mux[i] = http.NewServeMux()
		mux[i].Handle("/captcha/", g.Handler())
		g.NewGuard(captchagate.Policy{Name: "p", MaxFailures: 1, Keys: []captchagate.Key{{Source: captchagate.ClientIP()}}})
	}
	c := newCaptcha(t, mux[0], "p")
	for _, u := range []string{c.ImageURL, c.AudioURL, c.AudioURL + "?lang=zh"} {
		a, b := get(t, mux[0], u), get(t, mux[1], u)
		assert.NotEmpty(t, a)
		assert.Equal(t, a, b, "%s differs between instances", u)
	}
}

func get(t *testing.T, h http.Handler, url string) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
	require.Equal(t, http.StatusOK, w.Code, url)
	return w.Body.Bytes()
}

// A render in another process (the test binary run again) gives the same
// bytes: nothing per process goes into the drawing.
func TestDigitsRenderAlikeAcrossProcesses(t *testing.T) {
	secret := withSeed([]byte{2, 7, 1, 8, 2, 8}, 42)
	media := []struct{ format, lang string }{{"png", ""}, {"wav", "en"}, {"wav", "pt"}}
	if dir := os.Getenv("CAPTCHAGATE_RENDER_TO"); dir != "" { // the child
		for _, m := range media {
			b := render(t, captchagate.Digits{}, "some-id", secret, m.format, m.lang)
			require.NoError(t, os.WriteFile(filepath.Join(dir, m.format+m.lang), b, 0o600))
		}
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDigitsRenderAlikeAcrossProcesses$")
	cmd.Env = append(os.Environ(), "CAPTCHAGATE_RENDER_TO="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, m := range media {
		b, err := os.ReadFile(filepath.Join(dir, m.format+m.lang))
		require.NoError(t, err)
		assert.Equal(t, render(t, captchagate.Digits{}, "some-id", secret, m.format, m.lang), b, "%s %s differs in another process", m.format, m.lang)
	}
}
