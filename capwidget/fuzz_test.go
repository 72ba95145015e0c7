package capwidget_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/capwidget"
)

// FuzzCheck: no answer makes the check panic, an answer is accepted only
// if its numbers solve every pair, and every answer ParseSolutions accepts
// reads back the same from FormatSolutions.
func FuzzCheck(f *testing.F) {
	p := capwidget.ProofOfWork{Count: 3, TargetLen: 1}
	sec, err := p.Issue(captchagate.IssueInfo{Expires: time.Unix(1<<32, 0)})
	if err != nil {
		f.Fatal(err)
	}
	var sb strings.Builder
	if _, err := p.Render(&sb, "id", sec, "json", ""); err != nil {
		f.Fatal(err)
	}
	var ch capwidget.Challenge
	if err := json.Unmarshal([]byte(sb.String()), &ch); err != nil {
		f.Fatal(err)
	}
	f.Add(capwidget.FormatSolutions(capwidget.Solve(ch.Challenge)))
	f.Add("[1,2,3]")
	f.Add(`["1",2,3]`)
	f.Add("[1e2,2,3]")
	f.Fuzz(func(t *testing.T, answer string) {
		ok, err := p.Check(context.Background(), captchagate.CheckInfo{Secret: sec, Answer: answer})
		if err != nil {
			t.Fatal(err)
		}
		sol, parsed := capwidget.ParseSolutions(answer)
		if ok && (!parsed || !capwidget.Solves(ch.Challenge, sol)) {
			t.Fatalf("accepted %q", answer)
		}
		if parsed {
			again, ok := capwidget.ParseSolutions(capwidget.FormatSolutions(sol))
			if !ok || len(again) != len(sol) {
				t.Fatalf("%q does not read back", answer)
			}
		}
	})
}
