#!/usr/bin/env bash
# Redis store figures beside redis-benchmark's, in one run against one
# throwaway redis-server on a free 127.0.0.1 port (persistence off).
#
#   bench/redis.sh            # default: 20000 requests per redis-benchmark test
#   N=100000 bench/redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" --daemonize no --loglevel warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
redis-server --version

# The counter script the store runs for every failure and ceiling counter,
# taken from its source, so both sides run the very same script.
incr=$(awk '/^const incrSrc = `/ {on=1; next} on && /^`/ {exit} on' store/redisstore/redisstore.go | tr '\n' ' ')
[ -n "$incr" ] || { echo "bench/redis.sh: the counter script was not found in store/redisstore/redisstore.go" >&2; exit 1; }
now=$(($(date +%s) * 1000000))
echo "== redis-benchmark EVAL of the store's counter script, one client (latency), then 50 clients (throughput)"
# --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
show() { awk -F, -v c="$1" -v t="$2" 'NR>1 { gsub(/"/, ""); printf "clients=%-3s %-22s %9.0f req/s  p50 %s ms\n", c, t, $(NF-6), $(NF-3) }'; }
for c in 1 50; do
  redis-benchmark -p "$port" -c "$c" -n "$N" --csv -t incr 2>/dev/null | show "$c" "INCR"
  redis-benchmark -p "$port" -c "$c" -n "$N" --csv -r 1000 EVAL "$incr" 1 'bench:__rand_int__' 3600000000 "$now" 1 2>/dev/null | show "$c" "EVAL counter script"
done
rps() { redis-benchmark -p "$port" -c "$1" -n "$N" --csv -r 1000 EVAL "$incr" 1 'bench:__rand_int__' 3600000000 "$now" 1 2>/dev/null |
  awk -F, 'NR>1 { gsub(/"/, ""); print $(NF-6) }'; }
go test -c -o "$dir/redisstore.test" ./store/redisstore/
guard() { REDIS_ADDR="127.0.0.1:$port" "$dir/redisstore.test" -test.run '^$' -test.bench "BenchmarkGuardAllowed/$1\$" -test.benchtime "${BENCHTIME:-2s}" |
  awk '/ns\/op/ {for (i=1;i<=NF;i++) if ($i=="ns/op") printf "%.0f\n", 1e9/$(i-1)}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "== a guarded request (IP key, Redis store) beside redis-benchmark running the same script, in alternating pairs"
# At 50 clients the guarded requests come from 1,000 addresses (ParallelKeys),
# as redis-benchmark's keys are spread over 1,000 (-r 1000); from one address
# (Parallel), the increments of its counter that share a pipeline share a
# script too, which a hot key (an address under attack) gains from.
for c in 1 50 50one; do
  name=Serial; [ "$c" = 50 ] && name=ParallelKeys; [ "$c" = 50one ] && { name=Parallel; c=50; }
  ratios=()
  for i in $(seq "${PAIRS:-3}"); do
    if (( i % 2 )); then r=$(rps "$c"); g=$(guard "$name"); else g=$(guard "$name"); r=$(rps "$c"); fi
    ratios+=("$(awk -v g="$g" -v r="$r" 'BEGIN {printf "%.2f", g/r}')")
    echo "clients=$c pair $i: guarded $g req/s, redis-benchmark $r req/s: ${ratios[-1]}"
  done
  echo "clients=$c ($name): guarded / redis-benchmark, median of ${#ratios[@]} pairs: $(printf '%s\n' "${ratios[@]}" | median) (goal: >= 0.8 at one client; at 50, no less than before issue 18)"
done
echo "== go test -bench (store operations, serial and parallel)"
REDIS_ADDR="127.0.0.1:$port" "$dir/redisstore.test" -test.run '^$' -test.bench BenchmarkStore -test.benchmem -test.count "${COUNT:-1}"
