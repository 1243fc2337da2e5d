#!/usr/bin/env bash
# Metrics benchmarks (figures in docs/benchmarks.md, section "Metrics").
#
#   bench/metrics_benchmark.sh                # both parts
#   ONLY=stat bench/metrics_benchmark.sh      # how fast `rivus stat` answers on 16 workers
#   ONLY=overhead bench/metrics_benchmark.sh  # the workers' counters on vs compiled out
#
# stat: runs a 16-worker pipeline (range -> fnv x14 -> discard, every core busy) and times
#   `rivus stat NAME` (text, --json, --prometheus) and `rivus ls` with hyperfine (Debian package
#   hyperfine; without it, a loop over `date +%s%N`). Then the same against a 16-worker pipeline
#   whose workers all wait for input, to show the reader's own cost without CPU contention.
# overhead: builds `rivus` twice from one copy of this tree, as is and with every counter_add
#   and histogram_add of worker/src/worker.cc made a no-op (the metric writes compiled out; the
#   clock reads that feed busy/idle/blocked stay, see docs/benchmarks.md), then runs the overhead
#   workload (range -> passthrough -> discard, OVH_N records) REPS times with each binary,
#   alternating, and compares median records/s and CPU time per record (all processes).
#
# Knobs: RIVUS_BUILD_DIR (default build), REPS=7, OVH_N=20000000, RUNS=30 (hyperfine runs),
# REUSE=1 (keep the two builds of an earlier run in the same OUT),
# OUT=DIR (scratch; default a new /tmp directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/${RIVUS_BUILD_DIR:-build}/bin
REPS=${REPS:-7}
OVH_N=${OVH_N:-20000000}
RUNS=${RUNS:-30}
ONLY=${ONLY:-}
OUT=${OUT:-$(mktemp -d /tmp/rivus-metrics-bench.XXXXXX)}
mkdir -p "$OUT"
[ -x "$BIN/rivus" ] || { echo "metrics_benchmark: $BIN/rivus is missing (scripts/setup builds it)" >&2; exit 2; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1) ($(nproc) CPUs); $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg)"

median() {
  sort -g | awk '{a[NR] = $1} END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# time_cmd LABEL CMD...: median wall time in ms of RUNS runs.
time_cmd() {
  local label=$1
  shift
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/hf.json" "$*" >/dev/null 2>&1 ||
      hyperfine --warmup 3 --runs "$RUNS" --export-json "$OUT/hf.json" "$*" >/dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]
print("%-44s median %6.1f ms  mean %6.1f ms  max %6.1f ms  (hyperfine, %d runs)" % (sys.argv[2], r["median"]*1e3, r["mean"]*1e3, r["max"]*1e3, len(r["times"])))' "$OUT/hf.json" "$label"
  else
    local i t0 t1
    for ((i = 0; i < RUNS; i++)); do
      t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
      echo $(((t1 - t0) / 1000))
    done | median | awk -v l="$label" -v n="$RUNS" '{printf "%-44s median %6.1f ms  (date loop, %d runs)\n", l, $1 / 1000, n}'
  fi
}

wait_stat() {  # wait_stat NAME: until `rivus stat NAME` answers (60 s at most)
  local i
  for ((i = 0; i < 600; i++)); do
    "$BIN/rivus" stat "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "metrics_benchmark: pipeline $1 never showed up" >&2
  return 1
}

stat_part() {
  local name=metrics-bench-16 pid fifo
  cat > "$OUT/busy.yaml" <<EOF
name: $name
ring: {capacity: 64KiB}
batch: {records: 64}
stages:
  - {name: numbers, use: range, with: {count: 1000000000}}
  - {name: hash, use: fnv, with: {rounds: 20000}, workers: 14}
  - {name: out, use: discard}
EOF
  "$BIN/rivus" run "$OUT/busy.yaml" --quiet > "$OUT/busy.log" 2>&1 &
  pid=$!
  trap 'kill -INT $pid 2>/dev/null || true' EXIT
  wait_stat $name
  sleep 2
  echo "-- 16 workers, all busy (14 hashing on $(nproc) CPUs): the reader competes for a core"
  time_cmd "rivus stat $name" "$BIN/rivus" stat $name
  time_cmd "rivus stat $name --json" "$BIN/rivus" stat $name --json
  time_cmd "rivus stat $name --prometheus" "$BIN/rivus" stat $name --prometheus
  time_cmd "rivus ls" "$BIN/rivus" ls
  # Baselines under the same load: starting any process waits for a CPU here.
  time_cmd "rivus --version (start and exit)" "$BIN/rivus" --version
  time_cmd "/bin/true" /bin/true
  kill -INT $pid
  wait $pid || true

  # The same, with the pipeline started under `nice -n 10` (the workers inherit it): the reader,
  # at normal priority, gets a CPU at once.
  nice -n 10 "$BIN/rivus" run "$OUT/busy.yaml" --quiet > "$OUT/busy-nice.log" 2>&1 &
  pid=$!
  wait_stat $name
  sleep 2
  echo "-- the same 16 busy workers, started with nice -n 10"
  time_cmd "rivus stat $name" "$BIN/rivus" stat $name
  time_cmd "rivus stat $name --json" "$BIN/rivus" stat $name --json
  time_cmd "rivus stat $name --prometheus" "$BIN/rivus" stat $name --prometheus
  kill -INT $pid
  wait $pid || true

  name=metrics-bench-idle
  fifo=$OUT/idle.fifo
  rm -f "$fifo"
  mkfifo "$fifo"
  cat > "$OUT/idle.yaml" <<EOF
name: $name
stages:
  - {name: src, use: lines, with: {path: $fifo}}
  - {name: mid, use: passthrough, workers: 14}
  - {name: out, use: discard}
EOF
  "$BIN/rivus" run "$OUT/idle.yaml" --quiet > "$OUT/idle.log" 2>&1 &
  pid=$!
  exec 7> "$fifo"  # the source blocks reading it: every worker waits for input
  wait_stat $name
  echo "-- 16 workers, all waiting for input"
  time_cmd "rivus stat $name" "$BIN/rivus" stat $name
  time_cmd "rivus stat $name --json" "$BIN/rivus" stat $name --json
  time_cmd "rivus stat $name --prometheus" "$BIN/rivus" stat $name --prometheus
  time_cmd "rivus --version (start and exit)" "$BIN/rivus" --version
  exec 7>&-
  wait $pid || true
  trap - EXIT
}

overhead_part() {
  # Both binaries are built here from one copy of the tree, so that they differ by the patch
  # only (the tree may be changing under an incremental build).
  local r v
  if [ "${REUSE:-0}" = 1 ] && [ -x "$OUT/build-on/bin/rivus" ] && [ -x "$OUT/build-off/bin/rivus" ]; then
    echo "-- reusing $OUT/build-on and $OUT/build-off (REUSE=1)"
  else
    echo "-- building rivus twice from one copy of the tree: as is, and with the worker's metric writes compiled out"
    rm -rf "$OUT/src-on" "$OUT/src-off" "$OUT/build-on" "$OUT/build-off"
    mkdir -p "$OUT/src-on"
    tar -C "$ROOT" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$OUT/src-on" -xf -
    cp -a "$OUT/src-on" "$OUT/src-off"
    # Every metric write of the worker goes through these two; make them no-ops.
    grep -q '^using shm::counter_add;$' "$OUT/src-off/worker/src/worker.cc" ||
      { echo "metrics_benchmark: worker.cc changed; update the patch below" >&2; exit 2; }
    # (The arguments are still evaluated, as plain arithmetic the optimiser drops; no store is left.)
    sed -i 's|^using shm::counter_add;$|#define counter_add(x, n) ((void)(x), (void)(n))  // metrics_benchmark: compiled out|' \
      "$OUT/src-off/worker/src/worker.cc"
    for v in on off; do
      cmake -S "$OUT/src-$v" -B "$OUT/build-$v" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRIVUS_BUILD_TESTS=OFF \
        -DRIVUS_BUILD_BENCHMARKS=OFF >/dev/null
      cmake --build "$OUT/build-$v" --target rivus -j "$(nproc)" >/dev/null
    done
  fi
  cat > "$OUT/ovh.yaml" <<EOF
name: metrics-bench-overhead
stages:
  - {name: numbers, use: range, with: {count: $OVH_N}}
  - {name: pass, use: passthrough}
  - {name: sink, use: discard}
EOF
  : > "$OUT/on"; : > "$OUT/off"; : > "$OUT/on.cpu"; : > "$OUT/off.cpu"
  for ((r = 1; r <= REPS; r++)); do
    for v in on off; do
      local bin=$OUT/build-$v/bin
      # CPU time of the supervisor and every worker it reaped (rusage of waited-for children).
      /usr/bin/time -f "%U %S" -o "$OUT/$v.time" "$bin/rivus" run "$OUT/ovh.yaml" --quiet --report "$OUT/$v.json"
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int(sys.argv[2]) / r["elapsed_s"])' \
        "$OUT/$v.json" "$OVH_N" >> "$OUT/$v"
      awk -v n="$OVH_N" '{printf "%.2f\n", ($1 + $2) * 1e9 / n}' "$OUT/$v.time" >> "$OUT/$v.cpu"
    done
  done
  local on off on_cpu off_cpu on_min off_min
  on=$(median < "$OUT/on")
  off=$(median < "$OUT/off")
  on_cpu=$(median < "$OUT/on.cpu")
  off_cpu=$(median < "$OUT/off.cpu")
  on_min=$(sort -g "$OUT/on.cpu" | head -1)
  off_min=$(sort -g "$OUT/off.cpu" | head -1)
  echo "-- overhead workload, $OVH_N records, median of $REPS alternating runs each (load now $(cut -d' ' -f1-3 /proc/loadavg))"
  awk -v on="$on" -v off="$off" -v onc="$on_cpu" -v offc="$off_cpu" -v onm="$on_min" -v offm="$off_min" 'BEGIN {
    printf "                            throughput          CPU (all processes)\n"
    printf "metrics on (as shipped):    %6.2f M records/s   %6.1f ns/record\n", on / 1e6, onc
    printf "metric writes compiled out: %6.2f M records/s   %6.1f ns/record\n", off / 1e6, offc
    printf "overhead:                   %6.1f%%              %6.1f%%   (1 - on/off; CPU: on/off - 1)\n", 100 * (1 - on / off), 100 * (onc / offc - 1)
    printf "least CPU of any run:       on %.1f, off %.1f ns/record: %.1f%%\n", onm, offm, 100 * (onm / offm - 1) }'
  echo "raw on:  $(tr '\n' ' ' < "$OUT/on")"
  echo "raw off: $(tr '\n' ' ' < "$OUT/off")"
  echo "raw on  ns/record: $(tr '\n' ' ' < "$OUT/on.cpu")"
  echo "raw off ns/record: $(tr '\n' ' ' < "$OUT/off.cpu")"
}

[ -z "$ONLY" ] || [ "$ONLY" = stat ] && stat_part
[ -z "$ONLY" ] || [ "$ONLY" = overhead ] && overhead_part
echo "scratch files: $OUT"
