#!/usr/bin/env bash
# Crash isolation benchmarks, on the FNV workload of ../shared/BENCHMARKS.md.
#
#   bench/compare/crash.sh
#
# 1. Throughput of range -> fnv x2 -> discard (CRASH_N records, about 10 s) while a killer sends
#    SIGKILL to a random child of the supervisor (source, fnv workers and sink alike; the list is
#    /proc/$PID/task/$PID/children) KILLS_PER_S times a second, against the same run without
#    kills; then one run with kills into an unordered file, checked for exactly-once delivery.
# 2. Crash-to-replacement-running time, median and p99, with crash_recovery (200 samples).
# 3. exec jobs per second: lines (EXEC_N lines) -> exec {cmd: [true, "{}"]} x2 -> discard, beside
#    GNU parallel (`parallel -j2 true ::: ...`) and `xargs -P 2 -n 1 true`. If GNU parallel is
#    missing, this script installs the Debian package `parallel` with apt-get (for this benchmark
#    only; it is not a dependency of Rivus) and says so; NO_INSTALL=1 skips it instead.
#
# Builds nothing: expects scripts/setup's build (build/, or RIVUS_BUILD_DIR) with rivus,
# fnv_peers and crash_recovery. Knobs: REPS=5, CRASH_N=2000000, KILLS_PER_S=10, SAMPLES=200,
# EXEC_N=2000, ONLY=throughput|recovery|exec, OUT=DIR, WAIT_BUSY=X or WAIT_LOAD=X, QUIET=0.10
# (see run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${RIVUS_BUILD_DIR:-build}
BIN=$BUILD/bin
REPS=${REPS:-5}
CRASH_N=${CRASH_N:-2000000}
KILLS_PER_S=${KILLS_PER_S:-10}
SAMPLES=${SAMPLES:-200}
EXEC_N=${EXEC_N:-2000}
ONLY=${ONLY:-}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/rivus-crash.XXXXXX)}
mkdir -p "$OUT"
: > "$OUT/results"
source bench/compare/lib.sh

for b in rivus fnv_peers crash_recovery; do
  [ -x "$BIN/$b" ] || { echo "crash.sh: $BIN/$b is missing; run scripts/setup (or set RIVUS_BUILD_DIR)" >&2; exit 2; }
done

echo "== Rivus crash isolation benchmarks =="
machine_line
echo "build: $BUILD; rounds: $REPS; raw results: $OUT"
echo "load average at start: $(loadavg)"

now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
now_us_var() { local t=${EPOCHREALTIME/./}; _now=$((10#$t)); }  # sets _now without a subshell

# killer PID RATE FILE: SIGKILLs a random child of PID, RATE times a second on a fixed schedule,
# until PID is gone; writes the number of kill(2) calls that succeeded to FILE. Builtins only (no
# fork per kill: on this VM a fork+exec costs milliseconds of CPU that would be taken from the
# pipeline being measured); `read -t` on a pipe nobody writes to is the sleep.
killer() {
  local pid=$1 rate=$2 file=$3 k=0 sent=0 start interval wait_us victim nap frac
  local -a kids
  exec {nap}<> <(:)
  interval=$((1000000 / rate))
  start=$(now_us)
  while [ -r "/proc/$pid/status" ]; do
    kids=()
    read -r -a kids < "/proc/$pid/task/$pid/children" 2>/dev/null || true
    if ((${#kids[@]})); then
      victim=${kids[RANDOM % ${#kids[@]}]}
      kill -9 "$victim" 2>/dev/null && sent=$((sent + 1))
    fi
    k=$((k + 1))
    now_us_var
    wait_us=$((start + k * interval - _now))
    if ((wait_us > 0)); then
      printf -v frac '%06d' $((wait_us % 1000000))
      read -r -t "$((wait_us / 1000000)).$frac" -u "$nap" _ || true
    fi
  done
  exec {nap}>&-
  echo "$sent" > "$file"
}


# crash_run TAG SPEC KILLS(0|1): one run, records its rate (report) and restarts.
crash_run() {
  local tag=$1 spec=$2 kills=$3 pid kpid="" rc=0 el
  rm -f "$OUT/$tag.kills"
  "$BIN/rivus" run "$spec" --report "$OUT/$tag.json" --quiet 2>> "$OUT/rivus.stderr" &
  pid=$!
  if [ "$kills" = 1 ]; then
    killer "$pid" "$KILLS_PER_S" "$OUT/$tag.kills" &
    kpid=$!
  fi
  wait "$pid" || rc=$?
  [ -n "$kpid" ] && wait "$kpid" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "crash.sh: rivus run $spec exited $rc (see $OUT/rivus.stderr and $OUT/$tag.json)" >&2
    return 1
  fi
  el=$(report_get "$OUT/$tag.json" 'r["elapsed_s"]')
  put "$tag.rate" "$(awk -v n="$CRASH_N" -v e="$el" 'BEGIN {printf "%.0f", n / e}')"
  put "$tag.elapsed" "$el"
  put "$tag.restarts" "$(report_get "$OUT/$tag.json" 'r["restarts"]')"
  put "$tag.lost" "$(report_get "$OUT/$tag.json" 'round(sum(s["time_lost_s"] for s in r["stages"]), 4)')"
  [ -r "$OUT/$tag.kills" ] && put "$tag.sent" "$(cat "$OUT/$tag.kills")"
  cp "$OUT/$tag.json" "$OUT/$tag.last.json"
}

stage_times() {
  report_get "$1" '"\n".join("    %-8s workers=%d restarts=%d busy=%.2fs idle=%.2fs blocked=%.2fs lost=%.3fs" % (s["name"], s["workers"], s["restarts"], s["busy_s"], s["idle_s"], s["blocked_s"], s["time_lost_s"]) for s in r["stages"])'
}

# ---- 1. throughput under kills -------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = throughput ]; then
  # restarts unlimited: 10 kills/s would pass the default 20 per 10 s
  unlimited="restart: {max_restarts: 1000000, window: 10s, backoff: 0ms}"
  fnv_spec crash_discard "$CRASH_N" discard "$unlimited"
  fnv_spec crash_file "$CRASH_N" file "$unlimited"
  for ((r = 1; r <= REPS; ++r)); do
    wait_quiet
    put load "$(loadavg | cut -d' ' -f1)"
    round_start
    crash_run calm "$OUT/crash_discard.yaml" 0
    crash_run kills "$OUT/crash_discard.yaml" 1
    round_end others
    echo "  round $r/$REPS done (load $(loadavg); others' CPU share $(get others | tail -1))" >&2
  done
  # Exactly once under kills: every output line present once, and the sum equals the reference.
  crash_run verify "$OUT/crash_file.yaml" 1
  lines=$(wc -l < "$OUT/crash_file.out")
  uniq_lines=$(sort -u "$OUT/crash_file.out" | wc -l)
  got_sum=$("$PYTHON" -c '
import sys
print("0x%016x" % (sum(int(l, 16) for l in open(sys.argv[1])) & ((1 << 64) - 1)))' "$OUT/crash_file.out")
  want_sum=$("$BIN/fnv_peers" compute --records "$CRASH_N" | kv checksum)
  verdict=FAILED; [ "$lines" = "$CRASH_N" ] && [ "$uniq_lines" = "$CRASH_N" ] && [ "$got_sum" = "$want_sum" ] && verdict=ok
  calm=$(med calm.rate); killed=$(med kills.rate)
  echo
  echo "FNV pipeline under SIGKILL: range N=$CRASH_N -> fnv x2 -> discard, $KILLS_PER_S kills/s of random children, median of $REPS"
  printf '  %-34s %12s %10s %10s %12s\n' "run" "records/s" "elapsed s" "restarts" "time lost s"
  printf '  %-34s %12s %10s %10s %12s\n' "no kills" "$calm" "$(med calm.elapsed)" "$(med calm.restarts)" "$(med calm.lost)"
  printf '  %-34s %12s %10s %10s %12s\n' "$KILLS_PER_S kills/s" "$killed" "$(med kills.elapsed)" "$(med kills.restarts)" "$(med kills.lost)"
  echo "  kills/none = $(ratio "$killed" "$calm") (target >= 0.70); kill(2) calls that hit a child, per run: $(get kills.sent | tr '\n' ' ')"
  echo "  quiet rounds only ($(quiet_count others) of $REPS): no kills $(med_quiet calm.rate others)," \
       "kills $(med_quiet kills.rate others) records/s, ratio $(ratio "$(med_quiet kills.rate others)" "$(med_quiet calm.rate others)")"
  echo "  exactly-once check with kills (file sink, unordered): $lines lines, $uniq_lines distinct," \
       "sum $got_sum vs $want_sum, restarts $(get verify.restarts): $verdict"
  echo "  load average (1 min) at round starts: $(get load | tr '\n' ' ')"
  echo "  share of the machine's CPU used by other processes during each round: $(get others | tr '\n' ' ')"
  echo "  per-round kills/none: $(paste -d' ' <(get kills.rate) <(get calm.rate) | awk '{printf "%.2f ", $1 / $2}')"
  echo "  per-stage, last run without kills:"; stage_times "$OUT/calm.last.json"
  echo "  per-stage, last run with kills:"; stage_times "$OUT/kills.last.json"
fi

# ---- 2. crash-to-replacement time ----------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = recovery ]; then
  echo
  echo "Crash-to-replacement-running time ($SAMPLES kills of fnv workers, range -> fnv x2 -> discard):"
  echo "  'stamped' = the replacement's own clock at kRunning minus the kill; 'polled' = when the"
  echo "  benchmark saw it (20 us sleeps between looks; 'lazy': 1 ms, an upper bound only)"
  # name | crash_recovery options
  configs=("SIGKILL, 1 spare (default), lazy poll|--signal KILL --poll lazy"
           "SIGKILL, 1 spare (default), 20 us poll|--signal KILL --poll sleep"
           "SIGKILL, spares: 0 (fork at crash), lazy poll|--signal KILL --poll lazy --spares 0"
           "SIGSEGV, 1 spare (default), lazy poll|--signal SEGV --poll lazy")
  for c in "${configs[@]}"; do
    label=${c%%|*}; opts=${c#*|}; tag=$(tr 'A-Z' 'a-z' <<< "${opts// /}" | tr -cd 'a-z0-9')
    wait_quiet
    round_start
    # shellcheck disable=SC2086  # opts is a list of options
    line=$("$BIN/crash_recovery" --rivus "$BIN/rivus" --samples "$SAMPLES" $opts --raw "$OUT/recovery.$tag.txt") || true
    round_end "rec.$tag"
    echo "  $label: stamped median $(kv stamped_median_ms <<< "$line") ms, p90 $(kv stamped_p90_ms <<< "$line")," \
         "p99 $(kv stamped_p99_ms <<< "$line"); polled median $(kv running_median_ms <<< "$line") ms," \
         "p99 $(kv running_p99_ms <<< "$line"); reaped (polled) $(kv detected_median_ms <<< "$line") ms;" \
         "others' CPU share $(get "rec.$tag")"
    echo "    $line"
  done
  echo "  target: median <= 5 ms; raw samples: $OUT/recovery.*.txt; load average after: $(loadavg)"
fi

# ---- 3. exec jobs --------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = exec ]; then
  have_parallel=1
  if ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    if [ "${NO_INSTALL:-0}" = 1 ]; then
      echo "crash.sh: GNU parallel is not installed (NO_INSTALL=1): skipping it" >&2
      have_parallel=0
    else
      echo "crash.sh: GNU parallel is missing: installing the Debian package 'parallel' with apt-get" \
           "(for this benchmark only; Rivus does not need it)" >&2
      sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
      "${sudo_cmd[@]}" apt-get update -qq >&2 || true
      if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends parallel >&2; then
        echo "crash.sh: could not install parallel: skipping it" >&2
        have_parallel=0
      fi
    fi
  fi
  seq 1 "$EXEC_N" > "$OUT/exec.lines"
  cat > "$OUT/exec.yaml" <<EOF
# lines -> exec true {} x2 -> discard: one /bin/true job per line, 2 job slots
name: execbench
dead_letter: {path: $OUT/exec.dead.jsonl}
stages:
  - {name: lines, use: lines, with: {path: $OUT/exec.lines}}
  - {name: jobs, use: exec, with: {cmd: [true, "{}"]}, workers: 2}
  - {name: out, use: discard}
EOF
  wall() {  # wall seconds of a command
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" > /dev/null
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}'
  }
  for ((r = 1; r <= REPS; ++r)); do
    wait_quiet
    put execload "$(loadavg | cut -d' ' -f1)"
    round_start
    w=$(wall "$BIN/rivus" run "$OUT/exec.yaml" --report "$OUT/exec.json" --quiet)
    put rivus_exec.rate "$(awk -v n="$EXEC_N" -v e="$w" 'BEGIN {printf "%.0f", n / e}')"
    put rivus_exec.reprate "$(report_get "$OUT/exec.json" "round($EXEC_N / r['elapsed_s'])")"
    put rivus_exec.ok "$(report_get "$OUT/exec.json" 'st["jobs"]["records_out"]')"
    if [ "$have_parallel" = 1 ]; then
      w=$(wall parallel --will-cite -j2 true ::: $(seq 1 "$EXEC_N"))
      put parallel.rate "$(awk -v n="$EXEC_N" -v e="$w" 'BEGIN {printf "%.0f", n / e}')"
    fi
    w=$(wall sh -c "xargs -P 2 -n 1 true < '$OUT/exec.lines'")
    put xargs.rate "$(awk -v n="$EXEC_N" -v e="$w" 'BEGIN {printf "%.0f", n / e}')"
    round_end execothers
    echo "  exec round $r/$REPS done (load $(loadavg); others' CPU share $(get execothers | tail -1))" >&2
  done
  rx=$(med rivus_exec.rate); xa=$(med xargs.rate); pa=$(med parallel.rate)
  echo
  echo "exec jobs: $EXEC_N jobs of 'true <line>', 2 slots, wall clock of the whole command, median of $REPS"
  printf '  %-50s %10s %14s\n' "runner" "jobs/s" "Rivus/runner"
  printf '  %-50s %10s %14s\n' "rivus: lines -> exec [true, {}] x2 -> discard" "$rx" "1.00"
  [ "$have_parallel" = 1 ] && printf '  %-50s %10s %14s\n' "GNU parallel $(parallel --version 2>/dev/null | head -1 | awk '{print $3}') -j2 true ::: 1..$EXEC_N" "$pa" "$(ratio "$rx" "$pa")"
  printf '  %-50s %10s %14s\n' "xargs -P 2 -n 1 true < lines" "$xa" "$(ratio "$rx" "$xa")"
  echo "  (rivus from its report's elapsed_s: $(med rivus_exec.reprate) jobs/s; jobs done per run: $(get rivus_exec.ok | tr '\n' ' '))"
  echo "  quiet rounds only ($(quiet_count execothers) of $REPS): rivus $(med_quiet rivus_exec.rate execothers)," \
       "parallel $(med_quiet parallel.rate execothers), xargs $(med_quiet xargs.rate execothers) jobs/s"
  echo "  load average (1 min) at round starts: $(get execload | tr '\n' ' ')"
  echo "  share of the machine's CPU used by other processes during each round: $(get execothers | tr '\n' ' ')"
fi
echo "load average at end: $(loadavg)"
