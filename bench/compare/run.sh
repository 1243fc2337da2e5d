#!/usr/bin/env bash
# Rivus beside its peers on the standard workloads of ../shared/BENCHMARKS.md.
#
#   bench/compare/run.sh            # everything, 5 rounds
#   REPS=7 bench/compare/run.sh     # more rounds
#
# Builds nothing: expects a build from scripts/setup (build/, or RIVUS_BUILD_DIR) with the
# targets rivus and fnv_peers (bench/CMakeLists.txt). Environment knobs, with their defaults:
#   REPS=5            rounds; every figure is the median over rounds
#   N=1000000         FNV records for Rivus, one C++ thread and oneTBB (rounds 1000)
#   PY_N=20000        FNV records for the Python pool (its rate is records/s: it does not depend
#                     on N once N is many chunks per process; 10^6 would take ~10 minutes)
#   COMPUTE_N=N/5     records for the compute-only single-thread figure (a rate; shorter rounds)
#   OVH_N=20000000    records of the overhead workload (range -> passthrough -> discard)
#   WAIT_BUSY=X       start each round only once other processes use less than X of the CPUs
#                     (e.g. 0.15; measured over 3 s; waits at most WAIT_MAX=600 s), or WAIT_LOAD=X:
#                     once the 1-minute load average is below X. For shared machines.
#   QUIET=0.10        rounds in which other processes used at most this share of the CPUs are
#                     also summarised apart ("quiet rounds")
#   ONLY=fnv|overhead run one part
#   OUT=DIR           where specs, reports and raw results go (default: a new /tmp directory)
#
# One round runs every peer once, one after the other, so slow phases of a shared machine hit
# all of them; ratios are computed from the medians of the same run. Rivus figures are records
# divided by the report's elapsed_s (supervisor start to last worker reaped; it includes the
# forks); the wall-clock rate of the whole command is shown beside them.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${RIVUS_BUILD_DIR:-build}
BIN=$BUILD/bin
REPS=${REPS:-5}
N=${N:-1000000}
PY_N=${PY_N:-20000}
OVH_N=${OVH_N:-20000000}
COMPUTE_N=${COMPUTE_N:-$((N / 5))}
ONLY=${ONLY:-}
PYTHON=${PYTHON:-python3}
CORES=$(nproc)
OUT=${OUT:-$(mktemp -d /tmp/rivus-compare.XXXXXX)}
mkdir -p "$OUT"
: > "$OUT/results"
source bench/compare/lib.sh

for b in rivus fnv_peers; do
  [ -x "$BIN/$b" ] || { echo "run.sh: $BIN/$b is missing; run scripts/setup (or set RIVUS_BUILD_DIR)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is missing (Debian package 'time')" >&2; exit 2; }

# ---- specs ---------------------------------------------------------------------------------
ovh_spec() {  # NAME WORKERS(0 = no passthrough stage)
  {
    echo "# range -> passthrough x$2 -> discard (the overhead workload)"
    echo "name: $1"
    echo "dead_letter: {path: $OUT/$1.dead.jsonl}"
    echo "stages:"
    echo "  - {name: numbers, use: range, with: {start: 0, count: $OVH_N}}"
    [ "$2" -gt 0 ] && echo "  - {name: pass, use: passthrough, workers: $2}"
    echo "  - {name: out, use: discard}"
  } > "$OUT/$1.yaml"
}

# Sums of per-stage busy/idle/blocked seconds of a report, one line per stage.
stage_times() {
  report_get "$1" '"\n".join("    %-8s workers=%d busy=%.2fs idle=%.2fs blocked=%.2fs rate=%.0f/s" % (s["name"], s["workers"], s["busy_s"], s["idle_s"], s["blocked_s"], s["rate_per_s"]) for s in r["stages"])'
}

# rivus_round TAG SPEC RECORDS: one run; records rate (report), wall rate, memory.
rivus_round() {
  local tag=$1 spec=$2 n=$3 rc
  rc=0
  run_rivus "$spec" "$OUT/$tag.json" "$tag" || rc=$?
  read -r rc wall tmax hwm anon rfile shmem < "$OUT/$tag.run"
  if [ "$rc" != 0 ]; then
    echo "run.sh: rivus run $spec exited $rc (see $OUT/rivus.stderr)" >&2
    return 1
  fi
  local el
  el=$(report_get "$OUT/$tag.json" 'r["elapsed_s"]')
  put "$tag.rate" "$(awk -v n="$n" -v e="$el" 'BEGIN {printf "%.0f", n / e}')"
  put "$tag.wallrate" "$(awk -v n="$n" -v e="$wall" 'BEGIN {printf "%.0f", n / e}')"
  put "$tag.hwm" "$hwm"
  put "$tag.anon" "$anon"
  put "$tag.shmem" "$shmem"
  put "$tag.rfile" "$rfile"
  put "$tag.timemax" "$tmax"
  cp "$OUT/$tag.json" "$OUT/$tag.last.json"
}

echo "== Rivus peer comparison =="
machine_line
echo "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)); rounds: $REPS; raw results: $OUT"
echo "load average at start: $(loadavg)"

# ---- FNV workload --------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = fnv ]; then
  fnv_spec fnv_discard "$N" discard
  fnv_spec fnv_file "$N" ordered-file
  for ((r = 1; r <= REPS; ++r)); do
    wait_quiet
    put load "$(loadavg | cut -d' ' -f1)"
    round_start
    line=$("$BIN/fnv_peers" single --records "$N")
    put single.rate "$(kv records_per_s <<< "$line")"; single_sum=$(kv checksum <<< "$line")
    line=$("$BIN/fnv_peers" compute --records "$COMPUTE_N")
    put compute.rate "$(kv records_per_s <<< "$line")"; compute_sum=$(kv checksum <<< "$line")
    line=$("$BIN/fnv_peers" tbb --records "$N" --threads "$CORES" --tokens $((4 * CORES)))
    put tbb.rate "$(kv records_per_s <<< "$line")"; tbb_sum=$(kv checksum <<< "$line")
    rivus_round fnv_discard "$OUT/fnv_discard.yaml" "$N"
    rivus_round fnv_file "$OUT/fnv_file.yaml" "$N"
    line=$("$PYTHON" bench/compare/python_pool.py --records "$PY_N" --processes "$CORES" --chunksize 1000)
    put python.rate "$(kv records_per_s <<< "$line")"
    round_end others
    echo "  round $r/$REPS done (load $(loadavg); others' CPU share $(get others | tail -1))" >&2
  done
  # Correctness of what was measured: the peers' checksums, and the ordered file.
  lines=$(wc -l < "$OUT/fnv_file.out")
  first=$(head -1 "$OUT/fnv_file.out")
  file_sum=$(awk 'BEGIN {s = 0} {print}' "$OUT/fnv_file.out" | "$PYTHON" -c '
import sys
print("0x%016x" % (sum(int(l, 16) for l in sys.stdin) & ((1 << 64) - 1)))')
  echo "checks: checksums single=$single_sum tbb=$tbb_sum rivus-file=$file_sum" \
       "(expected 0x6f6f1fbe0a27a88e for N=10^6), compute-only (N=$COMPUTE_N) $compute_sum;" \
       "rivus file: $lines lines, first $first"

  rd=$(med fnv_discard.rate); rf=$(med fnv_file.rate)
  s1=$(med single.rate); c1=$(med compute.rate); tb=$(med tbb.rate); py=$(med python.rate)
  echo
  echo "FNV workload: N=$N rounds=1000 (Python N=$PY_N), $CORES cores, median of $REPS rounds"
  printf '  %-44s %12s %12s %12s\n' "peer" "records/s" "discard/peer" "file/peer"
  row() { printf '  %-44s %12s %12s %12s\n' "$1" "$2" "$(ratio "$rd" "$2")" "$(ratio "$rf" "$2")"; }
  row "one C++ thread, formatted to /dev/null" "$s1"
  row "one C++ thread, compute only (N=$COMPUTE_N)" "$c1"
  row "oneTBB parallel_pipeline ($CORES thr, $((4 * CORES)) tokens)" "$tb"
  row "Python Pool($CORES).imap chunksize 1000" "$py"
  row "rivus: range -> fnv x2 -> discard" "$rd"
  row "rivus: range -> fnv x2 -> file, ordered" "$rf"
  echo "  (rivus wall-clock rates, whole command: discard $(med fnv_discard.wallrate)/s, file $(med fnv_file.wallrate)/s)"
  nq=$(quiet_count others)
  if ((nq > 0)); then
    qd=$(med_quiet fnv_discard.rate others); qf=$(med_quiet fnv_file.rate others); qt=$(med_quiet tbb.rate others)
    qs=$(med_quiet single.rate others); qp=$(med_quiet python.rate others)
    echo "  quiet rounds only ($nq of $REPS rounds in which other processes used <= ${QUIET:-0.10} of the CPU):"
    echo "    one thread $qs, oneTBB $qt, Python $qp, rivus discard $qd, rivus file $qf records/s;" \
         "discard/oneTBB $(ratio "$qd" "$qt"), file/oneTBB $(ratio "$qf" "$qt"), discard/Python $(ratio "$qd" "$qp")," \
         "discard/one thread $(ratio "$qd" "$qs")"
  else
    echo "  no round was quiet (other processes used more than ${QUIET:-0.10} of the CPU in every round)"
  fi
  echo "  targets: Rivus/oneTBB >= 0.9: discard $(ratio "$rd" "$tb"), file $(ratio "$rf" "$tb");" \
       "Rivus/Python >= 50: discard $(ratio "$rd" "$py"), file $(ratio "$rf" "$py")"
  echo "  load average (1 min) at round starts: $(get load | tr '\n' ' ')"
  echo "  share of the machine's CPU used by other processes during each round: $(get others | tr '\n' ' ')"
  echo "  per-round Rivus(discard)/oneTBB: $(paste -d' ' <(get fnv_discard.rate) <(get tbb.rate) | awk '{printf "%.2f ", $1 / $2}')"
  echo "  per-round Rivus(file)/oneTBB:    $(paste -d' ' <(get fnv_file.rate) <(get tbb.rate) | awk '{printf "%.2f ", $1 / $2}')"
  echo "  per-stage time, last discard run:"; stage_times "$OUT/fnv_discard.last.json"
  echo "  per-stage time, last file run:"; stage_times "$OUT/fnv_file.last.json"
fi

# ---- overhead workload ---------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = overhead ]; then
  ovh_spec ovh_w1 1
  ovh_spec ovh_w2 2
  ovh_spec ovh_w0 0
  for ((r = 1; r <= REPS; ++r)); do
    wait_quiet
    put ovhload "$(loadavg | cut -d' ' -f1)"
    round_start
    rivus_round ovh_w1 "$OUT/ovh_w1.yaml" "$OVH_N"
    rivus_round ovh_w2 "$OUT/ovh_w2.yaml" "$OVH_N"
    rivus_round ovh_w0 "$OUT/ovh_w0.yaml" "$OVH_N"
    round_end ovhothers
    echo "  overhead round $r/$REPS done (load $(loadavg); others' CPU share $(get ovhothers | tail -1))" >&2
  done
  echo
  echo "Overhead workload: range N=$OVH_N -> passthrough -> discard, median of $REPS rounds"
  printf '  %-44s %14s %14s\n' "pipeline" "records/s" "wall rec/s"
  printf '  %-44s %14s %14s\n' "range -> passthrough x1 -> discard" "$(med ovh_w1.rate)" "$(med ovh_w1.wallrate)"
  printf '  %-44s %14s %14s\n' "range -> passthrough x2 -> discard" "$(med ovh_w2.rate)" "$(med ovh_w2.wallrate)"
  printf '  %-44s %14s %14s\n' "range -> discard (no passthrough)" "$(med ovh_w0.rate)" "$(med ovh_w0.wallrate)"
  echo "  target >= 5 M records/s (passthrough x1): $(ratio "$(med ovh_w1.rate)" 5000000) x target"
  echo "  quiet rounds only ($(quiet_count ovhothers) of $REPS): x1 $(med_quiet ovh_w1.rate ovhothers)," \
       "x2 $(med_quiet ovh_w2.rate ovhothers), none $(med_quiet ovh_w0.rate ovhothers) records/s"
  echo "  load average (1 min) at round starts: $(get ovhload | tr '\n' ' ')"
  echo "  share of the machine's CPU used by other processes during each round: $(get ovhothers | tr '\n' ' ')"
  for t in ovh_w1 ovh_w2 ovh_w0; do echo "  per-stage time, last $t run:"; stage_times "$OUT/$t.last.json"; done
fi

# ---- supervisor memory ---------------------------------------------------------------------
echo
echo "Supervisor resident memory (KiB; median over rounds): VmHWM of the supervisor itself from"
echo "/proc/<pid>/status (sampled every 20 ms) | its RssAnon, RssFile, RssShmem at the last sample |"
echo "/usr/bin/time max RSS (max of the supervisor and its reaped workers)"
for t in fnv_discard fnv_file ovh_w1 ovh_w2 ovh_w0; do
  [ -n "$(get $t.hwm)" ] || continue
  printf '  %-12s VmHWM %6s | anon %6s file %6s shmem %6s | time max %6s   (max VmHWM over rounds %s)\n' \
    "$t" "$(med $t.hwm)" "$(med $t.anon)" "$(med $t.rfile)" "$(med $t.shmem)" "$(med $t.timemax)" \
    "$(get $t.hwm | sort -n | tail -1)"
done
echo "  target <= 20 MiB = 20480 KiB"
echo "load average at end: $(loadavg)"
