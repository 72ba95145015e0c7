package attack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/captchagate/captchagate"
	"github.com/captchagate/captchagate/attack"
	"github.com/captchagate/captchagate/internal/gatetest"
	"github.com/captchagate/captchagate/internal/redistest"
	"github.com/captchagate/captchagate/store/redisstore"
)

// wrkScript logs in a username of its own per request, with the right
// password or, with REFUSED set, a wrong one, as the flood sends; it counts
// the answers by status in every thread and prints them when the run is
// done. (One username for every request would measure something else: with
// 16 in flight, its counter's increments before the handler reach the
// threshold, and on Redis, whose give-backs are written behind, trip it.)
const wrkScript = `
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
  n = 0
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
request = function()
  n = n + 1
  local user = "wrk-" .. id .. "-" .. n
  local password = "guess"
  if not REFUSED then password = "` + attack.Password + `" .. user end
  return wrk.format("POST", "/login", {["Content-Type"] = "application/json"},
    '{"username":"' .. user .. '","password":"' .. password .. '"}')
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\n", k, v)) end
end
`

// TestWrk measures with wrk (CAPTCHAGATE_ATTACK_WRK=1; attack/wrk.sh) what
// refused requests cost beside allowed ones: on each store, a right password
// from an address under its thresholds (200, through the handler), and wrong
// passwords for unique usernames from an address past its threshold (428
// while its creation budget lasts, then 429). wrk sends from 127.0.0.1, so
// the test trips that address first. It logs req/s and latency; nothing is
// timed or asserted beyond the statuses.
func TestWrk(t *testing.T) {
	if os.Getenv("CAPTCHAGATE_ATTACK_WRK") != "1" {
		t.Skip("set CAPTCHAGATE_ATTACK_WRK=1 (or run attack/wrk.sh) to measure refused requests under wrk")
	}
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk not found on PATH (Debian/Ubuntu: apt-get install wrk)")
	}
	dur := os.Getenv("CAPTCHAGATE_ATTACK_WRK_DURATION")
	if dur == "" {
		dur = "10s"
	}
	dir := t.TempDir()
	for _, refused := range []bool{false, true} {
		name := filepath.Join(dir, fmt.Sprintf("refused-%v.lua", refused))
		must(t, os.WriteFile(name, []byte(fmt.Sprintf("REFUSED = %v\n%s", refused, wrkScript)), 0o644))
	}
	var rows []string
	for _, backend := range []string{"memstore", "redis"} {
		for _, refused := range []bool{false, true} {
			cfg := captchagate.Config{Secret: gatetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if backend == "redis" {
				srv := redistest.Start(t)
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
				st, err := redisstore.New(rdb, redisstore.Options{})
				must(t, err)
				cfg.Store = st
				defer rdb.Close()
				defer st.Close()
			}
			target, err := attack.NewTarget(cfg, captchagate.Policy{})
			must(t, err)
			what := "allowed: right passwords for unique usernames, under every threshold"
			if refused {
				what = "refused: wrong passwords for unique usernames, address past its threshold"
				c := attack.NewClient(netip.MustParseAddr("127.0.0.1"))
				for i := range attack.IPThreshold + 1 {
					st, err := target.Guess(context.Background(), c, fmt.Sprintf("trip-%d", i))
					must(t, err)
					if i == attack.IPThreshold && st != 428 {
						t.Fatalf("after %d wrong passwords the address got %d, want 428", attack.IPThreshold, st)
					}
				}
				c.CloseIdleConnections()
			}
			out, err := exec.Command(bin, "-t2", "-c16", "-d"+dur, "--latency",
				"-s", filepath.Join(dir, fmt.Sprintf("refused-%v.lua", refused)), target.URL).CombinedOutput()
			target.Close()
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out)
			}
			row, statuses := wrkRow(t, string(out))
			for st := range statuses {
				if ok := st == "200" && !refused || (st == "428" || st == "429") && refused; !ok {
					t.Errorf("%s %s: wrk saw status %s:\n%s", backend, what, st, out)
				}
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s |", backend, what, row))
		}
	}
	t.Logf("wrk -t2 -c16 -d%s, server in this process (2 cores shared with wrk)\n"+
		"| store | requests | req/s | latency avg | p50 | p99 | answers |\n|---|---|---|---|---|---|---|\n%s",
		dur, strings.Join(rows, "\n"))
}

var (
	wrkReqs    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkLatency = regexp.MustCompile(`Latency\s+(\S+)\s+\S+\s+\S+`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\S+)`)
	wrkStatus  = regexp.MustCompile(`(?m)^status (\d+) (\d+)$`)
)

// wrkRow reads wrk's output: req/s, mean, median and 99th percentile
// latency, and the answers by status.
func wrkRow(t *testing.T, out string) (string, map[string]string) {
	rps, lat := wrkReqs.FindStringSubmatch(out), wrkLatency.FindStringSubmatch(out)
	if rps == nil || lat == nil {
		t.Fatalf("wrk's output has no Requests/sec or Latency:\n%s", out)
	}
	pct := map[string]string{}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		pct[m[1]] = m[2]
	}
	statuses := map[string]string{}
	var parts []string
	for _, m := range wrkStatus.FindAllStringSubmatch(out, -1) {
		statuses[m[1]] = m[2]
		parts = append(parts, m[2]+"×"+m[1])
	}
	return fmt.Sprintf("%s | %s | %s | %s | %s", rps[1], lat[1], pct["50"], pct["99"], strings.Join(parts, " ")),
		statuses
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
