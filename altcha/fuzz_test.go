package altcha

import (
	"context"
	"testing"
	"time"

	"github.com/captchagate/captchagate"
)

// FuzzChallengeAnswers: no answer makes the ALTCHA check panic, and a
// payload is accepted only if it is the one for the challenge.
func FuzzChallengeAnswers(f *testing.F) {
	f.Add(`{"x":100.0,"y":5.0}`)
	f.Add("100")
	f.Add("eyJhbGdvcml0aG0iOiJTSEEtMjU2In0=")
	alt := ProofOfWork{MaxNumber: 10}
	asecret, err := alt.Issue(captchagate.IssueInfo{Expires: time.Unix(1<<32, 0), Sign: func(b []byte) []byte { return b[:32] }})
	if err != nil {
		f.Fatal(err)
	}
	s, _ := parseAltchaSecret(asecret)
	c := Challenge{Algorithm: altchaAlgorithm, Challenge: altchaHash(s.salt, s.number), MaxNumber: s.maxNumber, Salt: s.salt, Signature: s.signature}
	if p, ok := Solve(c); ok {
		f.Add(p.Encode())
	}
	f.Fuzz(func(t *testing.T, answer string) {
		ok, err := alt.Check(context.Background(), captchagate.CheckInfo{Secret: asecret, Answer: answer})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			p, _ := DecodePayload(answer)
			if p.Number != s.number || p.Salt != s.salt {
				t.Fatalf("altcha accepted %q", answer)
			}
		}
	})
}
