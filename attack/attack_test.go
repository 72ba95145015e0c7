package attack_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/captchagate/captchagate/attack"
)

// sizes are attack.FullSizes divided by 5 (CI's go test work: about two
// minutes), by 10 with -short or -race, or by CAPTCHAGATE_ATTACK_SCALE (1:
// the full sizes of issue 16, 50,000 addresses on every store; about five
// minutes on two cores).
func sizes(t *testing.T) (attack.Sizes, int) {
	d := 5
	if testing.Short() || raceEnabled {
		d = 10
	}
	if v := os.Getenv("CAPTCHAGATE_ATTACK_SCALE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CAPTCHAGATE_ATTACK_SCALE=%q: want a divisor, 1 or more", v)
		}
		d = n
	}
	return attack.FullSizes.Scale(d), d
}

// TestAttack floods a real server over loopback from one and from many
// source addresses, on each store, and logs the results table
// (go test -run TestAttack -v ./attack). Every scenario is a subtest; the
// goals of attack.Goals fail it only where Enforced.
func TestAttack(t *testing.T) {
	s, d := sizes(t)
	start := time.Now()
	var mu sync.Mutex
	var results []*attack.Result
	for _, b := range attack.Backends(s) {
		if raceEnabled && !b.AllFloods {
			// Under -race (CI's second run) the Redis policies that only
			// repeat the login floods add no code path; they run without it.
			continue
		}
		for _, f := range attack.Floods(s, b) {
			// A slash in a flood's name ("IPv6 /48") would nest subtests.
			t.Run(b.Name+"/"+strings.ReplaceAll(f.Name, "/", ""), func(t *testing.T) {
				r := attack.Run(t, s, b, f)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				check(t, r)
			})
		}
	}
	var sb strings.Builder
	attack.WriteTable(&sb, results)
	t.Logf("sizes divided by %d; %v in all\n%s", d, time.Since(start).Round(time.Second), sb.String())
}

// check asserts what holds today and must keep holding, and the enforced
// goals.
func check(t *testing.T, r *attack.Result) {
	t.Helper()
	if !r.BaselineServed {
		t.Error("before the flood, a fixed user was not served")
	}
	if !r.VictimTripped {
		t.Error("before the flood, five wrong passwords did not trip the victim's account")
	}
	answered := 0
	for _, n := range r.Statuses {
		answered += n
	}
	if answered+r.FloodErrors != r.Flood.Requests {
		t.Errorf("flood: %d answered + %d errors, want %d requests", answered, r.FloodErrors, r.Flood.Requests)
	}
	if r.FloodErrors*100 > r.Flood.Requests {
		t.Errorf("flood: %d of %d requests got no answer", r.FloodErrors, r.Flood.Requests)
	}
	if r.Statuses[500] > 0 {
		t.Errorf("flood: %d answers 500", r.Statuses[500])
	}
	if r.Probe == 0 {
		t.Error("an address past its threshold was not refused")
	}
	if r.Known+r.Newcomer == 0 {
		t.Error("no legitimate attempt was made")
	}
	if r.Flood.IPv6 && r.FloodPassed <= attack.IPThreshold {
		// Each /64 is an address of its own: the proxy's header was read,
		// or the whole flood would have met one address's threshold.
		t.Errorf("IPv6 flood: %d requests passed, want more than one address's threshold %d (was %s read?)",
			r.FloodPassed, attack.IPThreshold, r.Flood.Header)
	}
	for _, g := range attack.Goals {
		if pass, applies := g.Check(r); applies && !pass && g.Enforced(r.Backend, r.Flood) {
			t.Errorf("goal %s failed: %s", g.ID, g.Text)
		}
	}
	t.Logf("%s / %s: %v (flood %v), statuses %v", r.Backend.Name, r.Flood.Name,
		r.Elapsed.Round(time.Millisecond), r.FloodTime.Round(time.Millisecond), r.Statuses)
}
