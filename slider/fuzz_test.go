package slider

import (
	"context"
	"strings"
	"testing"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/internal/slidersecret"
)

// FuzzChallengeAnswers: no answer makes the slider's check panic, and it
// accepts only answers within its tolerance of the gap, or the secret's
// six digits.
func FuzzChallengeAnswers(f *testing.F) {
	f.Add(`{"x":100.0,"y":5.0}`)
	f.Add("100")
	f.Add(`{"x":1e308,"y":5}`)
	f.Add(`{"x":-0,"y":null}`)
	f.Add("eyJhbGdvcml0aG0iOiJTSEEtMjU2In0=")
	f.Add("123456")
	f.Add("１２３ 4-56")
	f.Add("000100")
	sl := Puzzle{Tolerance: 5}
	secret := make([]byte, slidersecret.Len)
	secret[1] = 100 // the gap at x = 100
	// The digits 123456 and their seed.
	secret = append(secret, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	f.Fuzz(func(t *testing.T, answer string) {
		ok, err := sl.Check(context.Background(), captchagate.CheckInfo{Secret: secret, Answer: answer})
		if err != nil {
			t.Fatal(err)
		}
		if IsDigits(answer) {
			d := strings.Map(func(r rune) rune {
				if r >= '０' && r <= '９' {
					return '0' + r - '０'
				}
				if r == ' ' || r == '-' {
					return -1
				}
				return r
			}, answer)
			if ok != (d == "123456") {
				t.Fatalf("slider said %v to the digits %q", ok, answer)
			}
			return
		}
		if ok {
			x, ok := parseAnswer(answer)
			if !ok || x < 95 || x > 105 {
				t.Fatalf("slider accepted %q (x %v)", answer, x)
			}
		}
	})
}
