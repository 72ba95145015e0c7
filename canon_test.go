package captchagate_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
	"golang.org/x/time/rate"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/dialect/idaas"
	"github.com/captchagate/captchagate/internal/gatetest"
)

// Spellings an application treats as one account, each group one canonical
// username: strings.EqualFold equates the first ones (the Kelvin sign,
// the capital sharp s), NFKC the others (fullwidth letters, the black-letter
// ℌ, the ligature ﬁ). strings.ToLower, the fold before issue 17, keeps
// every group but the plain ASCII one apart.
var usernameGroups = [][]string{
	{"kate", "KATE", "\u212Aate", "\u212AATE"},
	{"straße", "STRASSE", "strasse", "STRAẞE", "Straße"},
	{"alice", "ａｌｉｃｅ", "ＡＬＩＣＥ", "Ａlice"},
	{"hans", "ℌans", "HANS", "ｈａｎｓ"},
	{"file", "ﬁle", "FILE"},
	{"σοφία", "ΣΟΦΊΑ", "σοφίΑ"},
}

// Spellings of one phone number.
var phoneGroups = [][]string{{
	"+15550001234",
	"+1 (555) 000-1234",
	"001 555 000 1234",
	"＋１５５５０００１２３４",
	"+١ ٥٥٥ ٠٠٠ ١٢٣٤", // Arabic-Indic digits
	"+۱۵۵۵۰۰۰۱۲۳۴",    // Extended Arabic-Indic digits
	"+१ ५५५ ००० १२३४", // Devanagari digits
	"+1.555.000.1234",
	"+1/555/000\u00a01234",           // a slash and a no-break space
	"+1\u2013555\u2013000\u20131234", // en dashes (Pd)
	"+1\u3000555\u2009000 1234",      // ideographic and thin spaces
	"00 1 555 000 1234",
}}

func TestCanonFoldGroups(t *testing.T) {
	t.Parallel()
	for _, g := range usernameGroups {
		want := captchagate.CanonFold(g[0])
		for _, s := range g {
			assert.Equal(t, want, captchagate.CanonFold(s), "canonFold(%q)", s)
		}
	}
	// Different names stay apart.
	assert.NotEqual(t, captchagate.CanonFold("kate"), captchagate.CanonFold("kaite"))
	assert.NotEqual(t, captchagate.CanonFold("straße"), captchagate.CanonFold("strase"))
}

func TestCanonPhoneGroups(t *testing.T) {
	t.Parallel()
	for _, g := range phoneGroups {
		for _, s := range g {
			assert.Equal(t, "+15550001234", captchagate.CanonPhone(s), "canonPhone(%q)", s)
		}
	}
	for in, want := range map[string]string{
		"+15550001235":  "+15550001235", // another number stays apart
		"0015550001234": "+15550001234",
		"0 0 1 555":     "+1555",
		"555-0100":      "5550100",
		"+1 555 ext. 7": "+1555ext7", // letters are left as they are
		"+1 555 #7":     "+1555#7",
	} {
		assert.Equal(t, want, captchagate.CanonPhone(in), "canonPhone(%q)", in)
	}
}

// Every decimal digit of the Unicode table maps to its ASCII digit: its
// value is checked against its Unicode name ("ARABIC-INDIC DIGIT SEVEN").
func TestDigitValueOverNd(t *testing.T) {
	t.Parallel()
	names := []string{"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"}
	checked := 0
	each := func(r rune) {
		name := runenames.Name(r)
		if name == "" {
			return // a digit newer than the names table
		}
		want := -1
		for v, n := range names {
			if strings.HasSuffix(name, "DIGIT "+n) {
				want = v
			}
		}
		require.NotEqual(t, -1, want, "%U %s", r, name)
		assert.Equal(t, want, captchagate.DigitValue(r), "%U %s", r, name)
		assert.Equal(t, string(rune('0'+want)), captchagate.CanonPhone(string(r)), "%U %s", r, name)
		checked++
	}
	for _, rg := range unicode.Nd.R16 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			each(r)
		}
	}
	for _, rg := range unicode.Nd.R32 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			each(r)
		}
	}
	assert.Greater(t, checked, 600)
}

// The sender a verification names hashes as the key that holds it counts
// it: every spelling of one number or address is one sender.
func TestSenderNormCanonical(t *testing.T) {
	t.Parallel()
	for _, g := range phoneGroups {
		for _, s := range g {
			assert.Equal(t, captchagate.SenderNorm(g[0]), captchagate.SenderNorm(s), "senderNorm(%q)", s)
			assert.Equal(t, captchagate.SenderNorm(s), captchagate.SenderNorm(captchagate.CanonPhone(s)), "senderNorm(%q)", s)
		}
	}
	for _, g := range [][]string{
		{"kate@example.com", "\u212Aate@EXAMPLE.com", "ｋａｔｅ＠ｅｘａｍｐｌｅ.ｃｏｍ"},
		{"straße@example.com", "STRASSE@example.com"},
	} {
		for _, s := range g {
			assert.Equal(t, captchagate.SenderNorm(g[0]), captchagate.SenderNorm(s), "senderNorm(%q)", s)
			assert.Equal(t, captchagate.SenderNorm(s), captchagate.SenderNorm(captchagate.CanonFold(s)), "senderNorm(%q)", s)
		}
	}
	// An address keeps its dots and dashes: they tell addresses apart.
	assert.NotEqual(t, captchagate.SenderNorm("a.b@example.com"), captchagate.SenderNorm("ab@example.com"))
}

// checkCanon holds the properties of the canonical forms for s, and for b,
// a spelling of s that strings.EqualFold equates with it.
func checkCanon(t *testing.T, s, b string) {
	t.Helper()
	f := captchagate.CanonFold(s)
	if got := captchagate.CanonFold(f); got != f {
		t.Fatalf("canonFold not idempotent: %q -> %q -> %q", s, f, got)
	}
	if utf8.ValidString(s) && !norm.NFKC.IsNormalString(f) {
		t.Fatalf("canonFold(%q) = %q is not NFKC", s, f)
	}
	if strings.EqualFold(s, b) {
		if fb := captchagate.CanonFold(b); fb != f {
			t.Fatalf("EqualFold(%q, %q) but canonFold gives %q and %q", s, b, f, fb)
		}
	}
	p := captchagate.CanonPhone(s)
	if got := captchagate.CanonPhone(p); got != p {
		t.Fatalf("canonPhone not idempotent: %q -> %q -> %q", s, p, got)
	}
	// A sender is hashed as its key counts it: a phone number (no '@'
	// after NFKC) as canonPhone, an address as canonFold.
	sn := captchagate.SenderNorm(s)
	if strings.Contains(norm.NFKC.String(s), "@") {
		if got := captchagate.SenderNorm(strings.TrimSpace(f)); got != sn {
			t.Fatalf("senderNorm(%q) = %q but senderNorm(canonFold) = %q", s, sn, got)
		}
	} else if got := captchagate.SenderNorm(strings.TrimSpace(p)); got != sn {
		t.Fatalf("senderNorm(%q) = %q but senderNorm(canonPhone) = %q", s, sn, got)
	}
}

// respell turns s into a spelling strings.EqualFold equates with it: each
// rune moved along its simple case-folding orbit as many steps as the
// matching byte of steps says.
func respell(s string, steps []byte) string {
	if len(steps) == 0 {
		return s
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		for range steps[i%len(steps)] % 4 {
			r = unicode.SimpleFold(r)
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}

func TestCanonProperties(t *testing.T) {
	t.Parallel()
	for _, g := range append(append([][]string{}, usernameGroups...), phoneGroups...) {
		for _, s := range g {
			checkCanon(t, s, respell(s, []byte{1, 2, 3}))
		}
	}
	for _, s := range []string{"ℌ", "\u0130", "ΐ", "ﬃ", "ǅ", "ꭰ", "e-\u0301", "(\u0301)", "0\u03010", "\xff", "𝟘𝟘𝟙"} {
		checkCanon(t, s, respell(s, []byte{1}))
	}
}

// FuzzCanon: canonFold and canonPhone are idempotent, canonFold equates
// what strings.EqualFold equates (the respelling is steered by the
// input's own bytes), and a sender's hash is one for a value and its
// canonical forms.
func FuzzCanon(f *testing.F) {
	for _, g := range append(append([][]string{}, usernameGroups...), phoneGroups...) {
		for _, s := range g {
			f.Add(s)
		}
	}
	f.Add("ǅemal")
	f.Add("ΐ\u0345")
	f.Add("\u0345\u0350΅@")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			s = s[:64] // keeps each run, and the engine's minimisation, short
		}
		checkCanon(t, s, respell(s, []byte(s)))
	})
}

// A token verified for a sender serves every spelling of it the key counts
// as one, and no other number: the verification names the number in
// fullwidth digits, the sends spell it with 00 and separators.
func TestSenderTokenServesEverySpelling(t *testing.T) {
	t.Parallel()
	spy := &gatetest.SliderSpy{}
	g, _ := newGate(t, func(c *captchagate.Config) { c.Challenge, c.Dialects = spy, []captchagate.Dialect{idaas.Dialect{}} })
	mux := http.NewServeMux()
	mux.Handle("/captcha/", g.Handler())
	key := captchagate.Phone(captchagate.JSONField("phone"))
	key.Rate, key.Burst, key.Required = rate.Every(time.Minute), 1, true
	mux.Handle("POST /send", g.Guard(captchagate.Policy{Name: "sms", Keys: []captchagate.Key{key}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	send := func(phone string, more ...string) *httptest.ResponseRecorder {
		return serve(mux, "POST", "/send", jsonBody(append([]string{"phone", phone}, more...)...), "Content-Type", "application/json")
	}
	require.Equal(t, http.StatusNoContent, send("+1 555 0100").Code)
	w := send("001 (555) 0100")
	require.Equal(t, http.StatusPreconditionRequired, w.Code, "one number, one send rate")
	verify := func(w *httptest.ResponseRecorder, sender string) string {
		t.Helper()
		c := decodeError(t, w).Captcha
		require.NotNil(t, c)
		serve(mux, "GET", c.ImageURL, "")
		x, ok := spy.Gap(c.ID)
		require.True(t, ok)
		code, e, tok := seedVerify(mux, map[string]string{"point_json": point(float64(x)), "token": c.ID, "sender": sender})
		require.Equal(t, http.StatusOK, code, "%+v", e)
		return tok
	}
	tok := verify(w, "＋１ ５５５ ０１００")
	assert.Equal(t, http.StatusNoContent, send("00 1 555-0100", "captcha_token", tok).Code, "the number verified, spelt otherwise")

	// Another number, tripped too, is not served by a token for this one.
	require.Equal(t, http.StatusNoContent, send("+1 555 0101").Code)
	require.Equal(t, http.StatusPreconditionRequired, send("+1 555 0101").Code)
	tok = verify(send("+1 555 0100"), "+15550100")
	assert.NotEqual(t, http.StatusNoContent, send("+1 555 0101", "captcha_token", tok).Code, "another number")
}

// Every rune of a non-trivial case-folding orbit has the representative of
// its orbit: the table built from unicode.CaseRanges misses none.
func TestFoldRepsCoverEveryOrbit(t *testing.T) {
	t.Parallel()
	n := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		q := unicode.SimpleFold(r)
		if q == r {
			continue
		}
		n++
		if captchagate.FoldRep(r) != captchagate.FoldRep(q) {
			t.Fatalf("%U and %U share an orbit but not a representative", r, q)
		}
	}
	assert.Greater(t, n, 2000)
}

// BenchmarkCanon: the canonical forms of values that miss the ASCII fast
// path (the guard folds ASCII in place, without these).
func BenchmarkCanon(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    func(string) string
		in   string
	}{
		{"fold/ascii", captchagate.CanonFold, "Alice.Liddell@example.com"},
		{"fold/unicode", captchagate.CanonFold, "\u212Aate.Straße@example.com"},
		{"phone/ascii", captchagate.CanonPhone, "+1 (555) 000-1234"},
		{"phone/unicode", captchagate.CanonPhone, "＋１ ５５５ ٠٠٠ १२३४"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.f(bc.in)
			}
		})
	}
}
