#!/usr/bin/env bash
# Side-by-side performance comparisons, in one run on this machine; prints
# the ratios the performance goals are stated in (docs/performance.md).
#
#   bench/compare.sh              # benchmarks + wrk (wrk from Debian's packages)
#   COUNT=5 PEER_RUNS=9 WRK_TIME=10s bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-3}
PEER_RUNS=${PEER_RUNS:-5}
WRK_TIME=${WRK_TIME:-5s}
out=$(mktemp -d)
trap 'kill ${srv_pid:-} 2>/dev/null || true; rm -rf "$out"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# ns/op median of benchmark $1 in file $2
ns() { grep -E "^$1-[0-9]+ " "$2" | awk '{for (i=1;i<=NF;i++) if ($i=="ns/op") print $(i-1)}' | median; }
metric() { grep -E "^$1-[0-9]+ " "$2" | awk -v m="$3" '{for (i=1;i<=NF;i++) if ($i==m) print $(i-1)}' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3g", a/b}'; }

echo "== guard overhead vs peers (bench/peers, $PEER_RUNS runs of -count 1)"
# One binary run PEER_RUNS times: within a run the benchmarks follow each other
# seconds apart, so each run's ratio is taken before the median, and drift
# between runs (frequency, neighbours, GC) falls on both sides of it.
(cd bench/peers && go test -c -o "$out/peers.test" .)
for i in $(seq "$PEER_RUNS"); do
  "$out/peers.test" -test.run '^$' -test.bench . -test.benchmem -test.count 1 > "$out/run.txt"
  grep -E '^Benchmark' "$out/run.txt" | tee -a "$out/peers.txt" || true
  for pair in "BenchmarkIP/Captchagate BenchmarkIP/Httprate ip" "BenchmarkIP/CaptchagateRate BenchmarkIP/Httprate rate" \
    "BenchmarkIPAndJSONUser/Captchagate BenchmarkIPAndJSONUser/HttprateIPOnly json"; do
    set -- $pair
    ratio "$(ns "$1" "$out/run.txt")" "$(ns "$2" "$out/run.txt")" >> "$out/ratio-$3.txt"; echo >> "$out/ratio-$3.txt"
  done
done
cg=$(ns BenchmarkIP/Captchagate "$out/peers.txt"); hr=$(ns BenchmarkIP/Httprate "$out/peers.txt"); cgr=$(ns BenchmarkIP/CaptchagateRate "$out/peers.txt")
cgj=$(ns BenchmarkIPAndJSONUser/Captchagate "$out/peers.txt"); hrj=$(ns BenchmarkIPAndJSONUser/HttprateIPOnly "$out/peers.txt")
runs() { echo "median of the runs' ratios $(median < "$out/ratio-$1.txt") ($(sort -n "$out/ratio-$1.txt" | tr '\n' ' ' | sed 's/ $//'))"; }
echo "IP key counting failures: captchagate ${cg} ns, httprate ${hr} ns (medians): $(runs ip) (goal <= 0.25; issue 16's bound <= 0.45)"
echo "IP key under a send rate (httprate's like-for-like): captchagate ${cgr} ns: $(runs rate)"
echo "IP + JSON username: captchagate ${cgj} ns vs httprate IP-only ${hrj} ns: $(runs json) (goal: below 1)"

echo "== memory per tracked key and insertion (store/memstore)"
go test -run '^$' -bench 'PerKey' -benchtime 3x -count 1 ./store/memstore | tee "$out/mem.txt" | grep -E '^Benchmark' || true
echo "memstore $(metric BenchmarkMemoryPerKey "$out/mem.txt" B/key) B/key (goal <= 40), insertion $(metric BenchmarkMemoryPerKey "$out/mem.txt" ns/key) ns/key vs map+mutex $(metric BenchmarkMapMutexPerKey "$out/mem.txt" ns/key) ns/key (goal: below)"

echo "== captcha media"
go test -run '^$' -bench 'RenderPNG|RenderWAV|BenchmarkImage$|FreshMedia' -benchmem -count "$COUNT" . | tee "$out/media.txt" | grep -E '^Benchmark' || true
for f in PNG WAV; do
  theirs=$(metric "BenchmarkRender$f/DchestWriteTo" "$out/media.txt" B/op)
  lower=$(echo "$f" | tr A-Z a-z)
  echo "fresh $f: render allocates $(ratio "$(metric "BenchmarkRender$f/Digits" "$out/media.txt" B/op)" "$theirs") of dchest's (goal <= 0.10);" \
    "served through Handler (render, cache, serve) $(ratio "$(metric "BenchmarkFreshMedia/$lower" "$out/media.txt" B/op)" "$theirs")"
done
echo "cached image fetch $(ns BenchmarkImage "$out/media.txt") ns vs render $(ns BenchmarkRenderPNG/Digits "$out/media.txt") ns"

if ! command -v wrk >/dev/null; then echo "wrk not installed (apt-get install wrk): skipping the load runs"; exit 0; fi
echo "== wrk, 2 threads, 64 connections, $WRK_TIME each, 127.0.0.1"
(cd bench/peers && go build -o "$out/wrkserver" ./wrkserver)
"$out/wrkserver" -addr 127.0.0.1:8099 > "$out/id.txt" &
srv_pid=$!
until curl -s -o /dev/null 127.0.0.1:8099/bare; do sleep 0.1; done
id=$(head -1 "$out/id.txt")
rps() { wrk -t2 -c64 -d"$WRK_TIME" --latency "$1" | tee -a "$out/wrk.txt" | awk '/Requests\/sec/ {print $2}'; }
p99() { wrk -t2 -c16 -d"$WRK_TIME" --latency "$1" | awk '/ 99%/ {print $2}'; }
# Runs alternate, in pairs whose order flips, after a warm-up, so that drift
# on a shared machine (frequency, neighbours, GC) falls on both routes alike;
# the ratio is the median of the pairs' ratios.
wrk -t2 -c64 -d1s http://127.0.0.1:8099/guarded >/dev/null
ratios=()
for i in $(seq "${PAIRS:-5}"); do
  if (( i % 2 )); then bare=$(rps http://127.0.0.1:8099/bare); guarded=$(rps http://127.0.0.1:8099/guarded)
  else guarded=$(rps http://127.0.0.1:8099/guarded); bare=$(rps http://127.0.0.1:8099/bare); fi
  ratios+=("$(ratio "$guarded" "$bare")")
  echo "pair $i: bare ${bare} req/s, guarded ${guarded} req/s: $(ratio "$guarded" "$bare")"
done
echo "guarded/bare, median of ${#ratios[@]} pairs: $(printf '%s\n' "${ratios[@]}" | median) (goal >= 0.95)"
quiet=$(p99 http://127.0.0.1:8099/guarded)
wrk -t1 -c64 -d"$WRK_TIME" "http://127.0.0.1:8099/captcha/$id.png" > "$out/media-load.txt" &
sleep 0.5
loaded=$(p99 http://127.0.0.1:8099/guarded)
wait $!
echo "guarded p99 ${quiet} alone, ${loaded} while wrk fetches the image (goal: within 2x); image load: $(awk '/Requests\/sec/ {print $2}' "$out/media-load.txt") req/s, $(awk '/Non-2xx/ {print $5}' "$out/media-load.txt") non-2xx (per-client media limit)"
