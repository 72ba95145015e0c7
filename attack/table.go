package attack

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// WriteTable writes results as a Markdown table, then the goals' legend.
func WriteTable(w io.Writer, results []*Result) {
	ids := make([]string, len(Goals))
	for i, g := range Goals {
		ids[i] = g.ID
	}
	fmt.Fprintf(w, "| store | flood | requests (refused, passed) | entries per refused request (first + second half of the probe) | entries before → after | "+
		"legit refused: fixed users / newcomers | attacked account after | newcomers served again after | "+
		"heap before → after | Redis used_memory before → after (maxmemory, evicted) | %s |\n", strings.Join(ids, " | "))
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|%s\n", strings.Repeat("---|", len(Goals)))
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d → %d | %s | %s | %s | %s | %s |",
			r.Backend.Name, r.Flood.Name, requests(r), perRefused(r), r.EntriesBefore, r.EntriesAfter,
			legit(r), victim(r), recovery(r), fmt.Sprintf("%s → %s", mb(int64(r.HeapBefore)), mb(int64(r.HeapAfter))),
			redisMem(r))
		for _, g := range Goals {
			fmt.Fprintf(w, " %s |", verdict(g, r))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Passed: a wrong password that reached the app (401), a captcha issued (POST new), a code sent (SMS). "+
		"Goal verdicts in bold are enforced on that row: the test fails if one turns FAIL.")
	fmt.Fprintln(w)
	for _, g := range Goals {
		fmt.Fprintf(w, "- %s: %s\n", g.ID, g.Text)
	}
}

func verdict(g Goal, r *Result) string {
	pass, applies := g.Check(r)
	v := "FAIL"
	switch {
	case !applies:
		return "—"
	case pass:
		v = "PASS"
	}
	if g.Enforced(r.Backend, r.Flood) {
		return "**" + v + "**"
	}
	return v
}

func requests(r *Result) string {
	s := fmt.Sprintf("%d (%d, %d)", r.Flood.Requests, r.FloodRefused, r.FloodPassed)
	if r.FloodErrors > 0 {
		s += fmt.Sprintf(", %d errors", r.FloodErrors)
	}
	return s
}

func perRefused(r *Result) string {
	if r.Probe == 0 {
		return "— (none refused)"
	}
	s := fmt.Sprintf("%.2f (%d + %d)", r.EntriesPerRefused, r.EntriesFirstHalf, r.EntriesSecondHalf)
	// The second half's rate is what each further refused request leaves.
	rate := float64(r.EntriesSecondHalf) / float64(r.Probe-r.Probe/2)
	if !r.Backend.Redis() && r.Flood.Addresses == 1 && r.EntriesAfter < r.Limit && rate > 0 {
		s += fmt.Sprintf(" (one address fills the %d entries after ~%dk refused requests)",
			r.Limit, int(float64(r.Limit-r.EntriesBefore)/rate)/1000)
	}
	return s
}

func legit(r *Result) string {
	s := fmt.Sprintf("%d/%d, %d/%d (%.0f%%)", r.KnownRefused, r.Known, r.NewcomerRefused, r.Newcomer, 100*r.RefusedShare())
	if len(r.RefusedStatuses) > 0 {
		var sts []int
		for st := range r.RefusedStatuses {
			sts = append(sts, st)
		}
		slices.Sort(sts)
		var parts []string
		for _, st := range sts {
			parts = append(parts, fmt.Sprintf("%d×%d", r.RefusedStatuses[st], st))
		}
		s += ": " + strings.Join(parts, " ")
	}
	return s
}

func victim(r *Result) string {
	switch r.VictimStatus {
	case http.StatusPreconditionRequired:
		return "tripped (428)"
	case http.StatusUnauthorized:
		return "open (401)"
	}
	return fmt.Sprintf("refused (%d)", r.VictimStatus)
}

func recovery(r *Result) string {
	real := r.Flood.RealWindow
	switch {
	case r.Recovered && r.Recovery == 0:
		return "at once"
	case real > 0 && r.Recovered:
		return fmt.Sprintf("%.1f s (%.1f login windows)", r.Recovery.Seconds(), float64(r.Recovery)/float64(real))
	case real > 0:
		return fmt.Sprintf("not within %v (%d login windows)", RealRecoveryLimit*real, RealRecoveryLimit)
	case !r.Recovered && r.Backend.Redis():
		return fmt.Sprintf("not within %v of the gate's clock (Redis's TTLs run on its own: see the real-clock row)",
			fmtDur(RecoveryLimit))
	case !r.Recovered:
		return fmt.Sprintf("not within %v", fmtDur(RecoveryLimit))
	}
	return fmt.Sprintf("%.0f min", r.Recovery.Minutes())
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func redisMem(r *Result) string {
	if !r.Backend.Redis() {
		return "—"
	}
	return fmt.Sprintf("%s → %s (%s, %d)", mb(r.RedisBefore), mb(r.RedisAfter), mb(r.RedisMaxMemory), r.RedisEvicted)
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.0f h", d.Hours()) }
