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

incr='local n = redis.call("INCR", KEYS[1]) if n == 1 then redis.call("PEXPIRE", KEYS[1], 60000) end return n'
echo "== redis-benchmark, one client (latency), then 50 clients (throughput)"
# --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
show() { awk -F, -v c="$1" -v t="$2" 'NR>1 { gsub(/"/, ""); printf "clients=%-3s %-22s %9.0f req/s  p50 %s ms\n", c, t, $(NF-6), $(NF-3) }'; }
for c in 1 50; do
  redis-benchmark -p "$port" -c "$c" -n "$N" --csv -t incr 2>/dev/null | show "$c" "INCR"
  redis-benchmark -p "$port" -c "$c" -n "$N" --csv -r 1000 EVAL "$incr" 1 'bench:__rand_int__' 2>/dev/null | show "$c" "EVAL INCR+PEXPIRE"
done
echo "== go test -bench (store operations, serial and 16 goroutines)"
REDIS_ADDR="127.0.0.1:$port" go test -run '^$' -bench BenchmarkStore -benchmem -count "${COUNT:-1}" ./store/redisstore/
