#!/usr/bin/env bash
# A/B of the guard's allowed path between revisions, on a noisy machine:
# builds bench/peers at each revision (git archive, so the work tree is left
# alone), then runs the binaries in turns, PAIRS rounds whose order rotates,
# and prints per revision the medians of captchagate's ns/op, httprate's
# ns/op (measured in the same run, seconds apart) and of their ratio.
#
#   bench/ab.sh HEAD~3 HEAD                 # PAIRS=9 BENCHTIME=1s by default
#   BENCH='^BenchmarkIP$/^(CaptchagateRate|Httprate)$' bench/ab.sh main HEAD
#
# The ratio of each run is taken before the median: drift between runs falls
# on both sides of it.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-9}
BENCHTIME=${BENCHTIME:-1s}
BENCH=${BENCH:-'^BenchmarkIP$/^(Captchagate|Httprate)$'}
(( $# >= 1 )) || { echo "usage: bench/ab.sh REV..." >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

revs=("$@")
for i in "${!revs[@]}"; do
  mkdir "$out/src$i"
  git archive "${revs[$i]}" | tar -x -C "$out/src$i"
  (cd "$out/src$i/bench/peers" && go test -c -o "$out/b$i.test" .)
done

n=${#revs[@]}
for p in $(seq 0 $((PAIRS - 1))); do
  for k in $(seq 0 $((n - 1))); do
    i=$(( (p + k) % n ))
    "$out/b$i.test" -test.run '^$' -test.bench "$BENCH" -test.benchmem -test.count 1 -test.benchtime "$BENCHTIME" \
      | grep -E '^Benchmark' >> "$out/r$i.txt"
    # the pair's ratio: the first benchmark over the second, of this run
    tail -2 "$out/r$i.txt" | awk '{for (j=1;j<=NF;j++) if ($j=="ns/op") v[NR]=$(j-1)} END {printf "%.4f\n", v[1]/v[2]}' >> "$out/q$i.txt"
  done
done

for i in "${!revs[@]}"; do
  f="$out/r$i.txt"
  names=$(awk '{print $1}' "$f" | sort -u)
  echo "== ${revs[$i]} ($(git rev-parse --short "${revs[$i]}")), $PAIRS runs"
  for nm in $names; do
    vals=$(grep -E "^$nm " "$f" | awk '{for (j=1;j<=NF;j++) if ($j=="ns/op") print $(j-1)}')
    echo "$nm: median $(echo "$vals" | median) ns/op (runs: $(echo "$vals" | sort -n | tr '\n' ' ')) $(grep -E "^$nm " "$f" | tail -1 | awk '{for (j=1;j<=NF;j++) if ($j=="B/op" || $j=="allocs/op") printf "%s %s ", $(j-1), $j}')"
  done
  echo "ratio (first/second, per run): median $(median < "$out/q$i.txt") (runs: $(sort -n "$out/q$i.txt" | tr '\n' ' '))"
done
