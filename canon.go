package captchagate

import (
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Canonical identities. An application that looks its accounts up by a
// name treats many spellings as one: strings.EqualFold equates "K" (U+212A
// KELVIN SIGN) with "k" and "ẞ" with "ß", a database collation or an
// NFKC-normalising sign-up form equates "ａｌｉｃｅ" with "alice", a phone
// provider equates "001 555 000 1234" with "+15550001234". The guard counts
// each such family under one key value, so an attacker cannot spread its
// attempts over spellings.

// foldCaser is Unicode full case folding (CaseFolding.txt, statuses C and
// F); Fold's Caser is stateless and safe for concurrent use.
var foldCaser = cases.Fold()

// canonFold is the canonical form of a username or an email address (and
// of any Source.Fold value): NFKC, then full Unicode case folding, then NFKC
// again, Unicode's NFKC_Casefold idea. NFKC runs first because folding
// works on characters as they are (U+210C ℌ has no case folding, but NFKC
// makes it H, which folds to h) and again after, because folding can
// leave a string that is not normalised.
//
// Every rune is also written as one member of its simple case-folding
// orbit (orbitRep), before and after, so that strings strings.EqualFold
// equates get the same canonical form even where the folding tables and
// the orbits disagree (Cherokee folds to capitals). The steps repeat until
// the form no longer changes, so canonFold(canonFold(s)) == canonFold(s).
func canonFold(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	s = orbitRep(s)
	for range 8 { // one round is enough for all but contrived inputs
		t := orbitRep(norm.NFKC.String(foldCaser.String(norm.NFKC.String(s))))
		if t == s {
			break
		}
		s = t
	}
	return s
}

// orbitRep writes every rune of s as one rune of its simple case-folding
// orbit (unicode.SimpleFold, see foldRep): one rune for all the
// runes strings.EqualFold equates, the lower-case letter for ASCII. Invalid
// UTF-8 becomes U+FFFD, as EqualFold reads it.
func orbitRep(s string) string {
	var b strings.Builder
	started := false
	for i, r := range s {
		rep := foldRep(r)
		if !started {
			if rep == r && (r != utf8.RuneError || strings.HasPrefix(s[i:], "\uFFFD")) {
				continue
			}
			started = true
			b.Grow(len(s))
			b.WriteString(s[:i])
		}
		b.WriteRune(rep)
	}
	if !started {
		return s
	}
	return b.String()
}

// foldRep is orbitRep's rune for r: the lower case of the least rune of
// its orbit that NFKC leaves as it is and that is not a combining mark
// (the micro sign, the Kelvin sign and U+0345 are not the representatives
// of μ, k and ι).
func foldRep(r rune) rune {
	if rep, ok := foldReps()[r]; ok {
		return rep
	}
	return r
}

// foldReps maps every rune with a non-trivial case-folding orbit to its
// representative (about 2,700 runes), built once. Such a rune has a case
// mapping (unicode.SimpleFold falls back on ToLower and ToUpper, and every
// rune of its special orbits has one), so unicode.CaseRanges lists them all
// (TestFoldRepsCoverEveryOrbit checks every rune).
var foldReps = sync.OnceValue(func() map[rune]rune {
	reps := make(map[rune]rune)
	for _, cr := range unicode.CaseRanges {
		for r := rune(cr.Lo); r <= rune(cr.Hi); r++ {
			addFoldRep(reps, r)
		}
	}
	return reps
})

// addFoldRep adds r's representative to reps, if r has an orbit.
func addFoldRep(reps map[rune]rune, r rune) {
	if unicode.SimpleFold(r) == r {
		return
	}
	least, lowest := rune(-1), r
	for q := r; ; {
		if (least < 0 || q < least) && (q < utf8.RuneSelf || !unicode.Is(unicode.M, q) && norm.NFKC.String(string(q)) == string(q)) {
			least = q
		}
		lowest = min(lowest, q)
		if q = unicode.SimpleFold(q); q == r {
			break
		}
	}
	if least < 0 { // no member stays as it is under NFKC (Ĳ, ĳ)
		least = lowest
	}
	reps[r] = unicode.ToLower(least)
}

// canonPhone is the canonical form of a phone number: NFKC (fullwidth ＋
// and digits become ASCII), every other decimal digit (Unicode category Nd:
// Arabic-Indic, Devanagari, ...) its ASCII digit, separators removed
// (Unicode spaces, dashes of category Pd, '.', '(', ')' and '/'), and a
// leading "00" written as "+". Other characters stay as they are.
func canonPhone(s string) string {
	if isASCII(s) {
		b := []byte(s)
		return string(canonPhoneASCII(b))
	}
	for range 4 { // once, but for contrived inputs
		t := phoneMap(s)
		if t == s {
			break
		}
		s = t
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	return s
}

// phoneMap is a round of canonPhone: NFKC, digits and separators mapped,
// NFKC again (removing a separator can join a letter and a combining
// mark, and NFKC can make a space of a character it follows).
func phoneMap(s string) string {
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if !phoneSeparator(r) {
				b.WriteByte(byte(r))
			}
		case phoneSeparator(r):
		case unicode.Is(unicode.Nd, r):
			b.WriteByte('0' + byte(digitValue(r)))
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFKC.String(b.String())
}

// canonPhoneASCII is canonPhone for ASCII b, in place: it returns a prefix
// of b (shifted by one for a leading "00").
func canonPhoneASCII(b []byte) []byte {
	n := 0
	for _, c := range b {
		if !phoneSeparator(rune(c)) {
			b[n] = c
			n++
		}
	}
	b = b[:n]
	if len(b) >= 2 && b[0] == '0' && b[1] == '0' {
		b[1] = '+'
		b = b[1:]
	}
	return b
}

// phoneSeparator reports whether r is left out of a phone number: a
// Unicode space, a dash (Pd), '.', '(', ')' or '/'.
func phoneSeparator(r rune) bool {
	switch r {
	case ' ', '-', '.', '(', ')', '/', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return r >= utf8.RuneSelf && (unicode.IsSpace(r) || unicode.Is(unicode.Zs, r) || unicode.Is(unicode.Pd, r))
}

// digitZeros holds the first rune of every maximal run of consecutive
// decimal digits (unicode.Nd), in order. Unicode encodes decimal digits
// in runs of ten from 0 to 9 (a stability policy), so a rune's value is its
// distance from the start of its run, modulo 10 (runs of adjacent scripts,
// such as the mathematical digits U+1D7CE-U+1D7FF, merge into one).
var digitZeros = sync.OnceValue(func() []rune {
	var zeros []rune
	prev := rune(-2)
	add := func(lo, hi, stride rune) {
		for r := lo; r <= hi; r += stride {
			if r != prev+1 {
				zeros = append(zeros, r)
			}
			prev = r
		}
	}
	for _, rg := range unicode.Nd.R16 {
		add(rune(rg.Lo), rune(rg.Hi), rune(rg.Stride))
	}
	for _, rg := range unicode.Nd.R32 {
		add(rune(rg.Lo), rune(rg.Hi), rune(rg.Stride))
	}
	return zeros
})

// digitValue returns the value (0-9) of r, a rune of unicode.Nd.
func digitValue(r rune) int {
	if '0' <= r && r <= '9' {
		return int(r - '0')
	}
	zeros := digitZeros()
	i := sort.Search(len(zeros), func(i int) bool { return zeros[i] > r }) - 1
	return int(r-zeros[i]) % 10
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
