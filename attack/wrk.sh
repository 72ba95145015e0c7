#!/usr/bin/env bash
# wrk.sh [duration]: what refused requests cost beside allowed ones, under wrk
# (TestWrk in wrk_test.go). Logs req/s and latency per store; not a timed
# assertion. Needs wrk and redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")"
CAPTCHAGATE_ATTACK_WRK=1 CAPTCHAGATE_ATTACK_WRK_DURATION="${1:-10s}" \
  go test -count=1 -run '^TestWrk$' -v .
