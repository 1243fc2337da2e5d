#!/usr/bin/env bash
# Instructions per record of the worker loop (bench/worker_cost.cc) under callgrind: the
# inclusive count of run_worker() divided by the records. Deterministic; valgrind is a Debian
# package. Usage: bench/worker_cost.sh [N]   (default 1,000,000; about 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RIVUS_BUILD_DIR:-build}/bin/worker_cost
n=${1:-1000000}
[ -x "$bin" ] || { echo "worker_cost.sh: $bin is missing; run scripts/setup" >&2; exit 2; }
out=$(mktemp /tmp/rivus-worker-cost.XXXXXX)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$n" >/dev/null 2>&1
total=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
  awk '/rivus::worker::run_worker\(/ {gsub(",", "", $1); print $1; exit}')
[ -n "$total" ] || { echo "worker_cost.sh: no run_worker in the profile" >&2; exit 1; }
awk -v t="$total" -v n="$n" 'BEGIN { printf "run_worker: %d instructions for %d records = %.1f per record\n", t, n, t / n }'
