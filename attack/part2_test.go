package attack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/captchagate/captchagate/attack"
)

// TestAttackPart2 runs issue 17's scenarios (an attacker with a perfect
// captcha solver, the owner's budgets, the site-wide key, proof scope, two
// instances) on the in-memory store and on Redis, logs one table
// (go test -run TestAttackPart2 -v ./attack), and fails on an enforced goal
// that does not hold.
func TestAttackPart2(t *testing.T) {
	s := attack.P2Full
	if testing.Short() || raceEnabled {
		s = s.Short()
	}
	start := time.Now()
	var names []string
	var rows [][]attack.P2Row
	for _, b := range attack.P2Backends {
		var got []attack.P2Row
		ok := t.Run(b.Name, func(t *testing.T) {
			e := attack.NewP2Env(t, b, s)
			for _, sc := range attack.P2Scenarios {
				t.Run(sc.Name, func(t *testing.T) {
					t0 := time.Now()
					rs := sc.Run(e)
					for _, r := range rs {
						if r.Goal != "" && r.Enforced && !r.Pass {
							t.Errorf("%s %s: goal %s, got %s", r.ID, r.Measure, r.Goal, r.Value)
						}
					}
					got = append(got, rs...)
					t.Logf("%v", time.Since(t0).Round(time.Millisecond))
				})
			}
			if n := e.Errors(); n > 0 {
				t.Errorf("%d requests got no answer", n)
			}
		})
		if ok || len(got) > 0 {
			names = append(names, b.Name)
			rows = append(rows, got)
		}
	}
	var sb strings.Builder
	attack.WriteP2Table(&sb, names, rows)
	t.Logf("%v in all\n%s", time.Since(start).Round(time.Second), sb.String())
}
