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
incr=$(awk '/^var incrScript = redis.NewScript\(`/ {on=1; next} on && /^`\)/ {exit} on' store/redisstore/redisstore.go | tr '\n' ' ')
now=$(($(date +%s) * 1000000))
echo "== redis-benchmark EVAL of the store's counter script, one client (latency), then 50 clients (throughput)"
# --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
show() { awk -F, -v c="$1" -v t="$2" 'NR>1 { gsub(/"/, ""); printf "clients=%-3s %-22s %9.0f req/s  p50 %s ms\n", c, t, $(NF-6), $(NF-3) }'; }
declare -A rb
for c in 1 50; do
  redis-benchmark -p "$port" -c "$c" -n "$N" --csv -t incr 2>/dev/null | show "$c" "INCR"
  line=$(redis-benchmark -p "$port" -c "$c" -n "$N" --csv -r 1000 EVAL "$incr" 1 'bench:__rand_int__' 1 3600000000 "$now" 2>/dev/null | show "$c" "EVAL counter script")
  echo "$line"
  rb[$c]=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="req/s") print $i}' <<<"$line")
done
echo "== go test -bench (store operations and a guarded request, serial and parallel)"
REDIS_ADDR="127.0.0.1:$port" go test -run '^$' -bench 'BenchmarkStore|BenchmarkGuardAllowed' -benchmem -count "${COUNT:-1}" ./store/redisstore/ | tee "$dir/go.txt"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ns() { grep -E "^$1-[0-9]+ " "$dir/go.txt" | awk '{for (i=1;i<=NF;i++) if ($i=="ns/op") print $(i-1)}' | median; }
serial=$(ns BenchmarkGuardAllowed/Serial); parallel=$(ns BenchmarkGuardAllowed/Parallel)
awk -v s="$serial" -v p="$parallel" -v r1="${rb[1]}" -v r50="${rb[50]}" 'BEGIN {
  printf "guarded request, one goroutine: %.0f req/s vs redis-benchmark c=1 %.0f: ratio %.2f\n", 1e9/s, r1, 1e9/s/r1
  printf "guarded requests, 50 goroutines: %.0f req/s vs redis-benchmark c=50 %.0f: ratio %.2f (goal >= 0.8)\n", 1e9/p, r50, 1e9/p/r50 }'
