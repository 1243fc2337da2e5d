# Shared by bench/compare/run.sh and crash.sh (sourced, not run).
# Expects: BIN (the build's bin/ directory), OUT (a scratch directory for specs and reports).

machine_line() {
  local model cores
  model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  cores=$(nproc)
  echo "machine: ${model:-unknown} (${cores} CPUs, $(uname -r)); $(date -u '+%Y-%m-%d %H:%M UTC');" \
       "rivus ${RIVUS_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo '+local changes')}"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# median < numbers (one per line)
median() {
  sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# kv KEY < "k=v k=v ..." : the value of KEY in a line of key=value pairs (fnv_peers' output)
kv() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }

# Records results: put NAME VALUE (appended to $OUT/results); get NAME: the values, one a line.
put() { echo "$1 $2" >> "$OUT/results"; }
get() { awk -v k="$1" '$1 == k {print $2}' "$OUT/results" 2>/dev/null; }
med() { get "$1" | median; }

# report_get REPORT EXPR: evaluates a Python expression over the JSON report `r`.
report_get() {
  "${PYTHON:-python3}" -c '
import json, sys
r = json.load(open(sys.argv[1]))
st = {s["name"]: s for s in r.get("stages", [])}
print(eval(sys.argv[2]))' "$1" "$2"
}

# Polls the resident-memory lines of /proc/PID/status until the process is gone or a zombie,
# and writes the largest VmHWM seen (KiB) and the last RssAnon/RssFile/RssShmem to FILE.
sample_rss() {
  local pid=$1 file=$2 hwm=0 anon=0 rfile=0 shmem=0 k v state
  local fd
  while { exec {fd}< "/proc/$pid/status"; } 2> /dev/null; do
    state=""
    while read -r -u "$fd" k v _ 2> /dev/null; do
      case $k in
        State:) state=$v ;;
        VmHWM:) ((v > hwm)) && hwm=$v ;;
        RssAnon:) anon=$v ;;
        RssFile:) rfile=$v ;;
        RssShmem:) shmem=$v ;;
      esac
    done
    exec {fd}<&-
    [ "$state" = Z ] && break
    echo "$hwm $anon $rfile $shmem" > "$file"
    sleep 0.02
  done
}

# run_rivus SPEC REPORT TAG: runs `rivus run SPEC --report REPORT --quiet` under /usr/bin/time,
# sampling the supervisor's own memory. Leaves in $OUT/TAG.run: "rc wall_s time_maxrss_kib
# hwm_kib rss_anon_kib rss_file_kib rss_shmem_kib". /usr/bin/time's max RSS comes from wait4(),
# which folds in the reaped workers: it is max(supervisor, any worker), an upper bound on the
# supervisor. The /proc sample is the supervisor's own VmHWM (sampled every 20 ms).
run_rivus() {
  local spec=$1 report=$2 tag=$3 tpid rpid="" t0 t1 rc i
  rm -f "$OUT/$tag.rss" "$OUT/$tag.time"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %e' -o "$OUT/$tag.time" "$BIN/rivus" run "$spec" --report "$report" --quiet \
    2>> "$OUT/rivus.stderr" &
  tpid=$!
  for ((i = 0; i < 2000; ++i)); do
    read -r rpid _ < "/proc/$tpid/task/$tpid/children" 2>/dev/null || true
    [ -n "$rpid" ] && break
    sleep 0.001
  done
  [ -n "$rpid" ] && sample_rss "$rpid" "$OUT/$tag.rss" &
  local spid=$!
  rc=0
  wait "$tpid" || rc=$?
  t1=$EPOCHREALTIME
  wait "$spid" 2>/dev/null || true
  local tmax
  tmax=$(cut -d' ' -f1 "$OUT/$tag.time" 2>/dev/null | tail -1)
  echo "$rc $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') ${tmax:-0} $(cat "$OUT/$tag.rss" 2>/dev/null || echo 0 0 0 0)" \
    > "$OUT/$tag.run"
  return "$rc"
}

# ratio A B: A/B with 2 decimals (or 3 significant digits for small values)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) { print "nan"; exit } r = a / b; printf (r >= 10 ? "%.0f" : "%.2f"), r }'; }

# wait_quiet: with WAIT_BUSY=X set (e.g. 0.15), waits (at most WAIT_MAX seconds, default 600)
# until the machine's CPUs were less than X busy over the last 3 seconds (this script is idle
# then, so that is other users' load); with WAIT_LOAD=X, until the 1-minute load average is
# below X. Keeps rounds out of the busy spells of a shared machine.
_busy_share() {  # share of all CPUs busy over the next $1 seconds
  local b0 b1 t0 t1
  t0=$EPOCHREALTIME; b0=$(_machine_busy); sleep "$1"; b1=$(_machine_busy); t1=$EPOCHREALTIME
  awk -v a="$b0" -v b="$b1" -v t0="$t0" -v t1="$t1" -v n="$(nproc)" 'BEGIN {printf "%.2f", (b - a) / ((t1 - t0) * n)}'
}
wait_quiet() {
  [ -n "${WAIT_LOAD:-}${WAIT_BUSY:-}" ] || return 0
  local waited=0 busy
  for (( ; ; )); do
    if [ -n "${WAIT_BUSY:-}" ]; then
      busy=$(_busy_share 3)
      awk -v b="$busy" -v m="$WAIT_BUSY" 'BEGIN {exit !(b < m)}' && return 0
      waited=$((waited + 3))
    else
      busy="load $(loadavg)"
      awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$WAIT_LOAD" 'BEGIN {exit !(l < m)}' && return 0
      sleep 5
      waited=$((waited + 5))
    fi
    if ((waited >= ${WAIT_MAX:-600})); then
      echo "  (machine still busy ($busy) after ${waited}s; going on)" >&2
      return 0
    fi
  done
}

# Interference: round_start, then round_end NAME records under NAME the share of the machine's
# CPU time (all CPUs, wall clock of the round) that went to anything but this script and its
# children (other users' processes, and steal). Children's CPU comes from the shell's `times`
# (reaped descendants), the machine's from /proc/stat.
_machine_busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat; }
_my_cpu() {  # sets _cpu; not in $(...): `times` must run in this shell, not a subshell
  times > "$OUT/.times"
  _cpu=$(awk 'function s(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
       {u += s($1); v += s($2)} END {printf "%.3f", u + v}' "$OUT/.times")
}
round_start() { _rw0=$EPOCHREALTIME; _rb0=$(_machine_busy); _my_cpu; _rm0=$_cpu; }
round_end() {
  local w1 b1 m1
  w1=$EPOCHREALTIME; b1=$(_machine_busy); _my_cpu; m1=$_cpu
  put "$1" "$(awk -v w0="$_rw0" -v w1="$w1" -v b0="$_rb0" -v b1="$b1" -v m0="$_rm0" -v m1="$m1" -v n="$(nproc)" \
    'BEGIN {o = (b1 - b0) - (m1 - m0); if (o < 0) o = 0; printf "%.2f", o / (n * (w1 - w0))}')"
}

# med_quiet KEY OTHERS_KEY: the median of KEY over the rounds in which other processes used at
# most QUIET (default 0.10) of the machine's CPU (the k-th KEY value belongs to the k-th round);
# "-" when no round was that quiet. quiet_count OTHERS_KEY: how many rounds were.
med_quiet() {
  paste -d' ' <(get "$1") <(get "$2") | awk -v q="${QUIET:-0.10}" 'NF == 2 && $2 <= q {print $1}' | median |
    sed 's/^nan$/-/'
}
quiet_count() { get "$1" | awk -v q="${QUIET:-0.10}" '$1 <= q {n++} END {print n + 0}'; }

# fnv_spec NAME COUNT SINK [EXTRA]: writes $OUT/NAME.yaml, the standard FNV pipeline (range of
# COUNT -> fnv x2 -> SINK, the quickstart's shape): SINK is discard, file (in arrival order) or
# ordered-file (source order). EXTRA, one YAML line, is added at the top level.
fnv_spec() {
  local sink="{name: out, use: discard}"
  case "$3" in
    file) sink="{name: out, use: file, with: {path: $OUT/$1.out}}" ;;
    ordered-file) sink="{name: out, use: file, with: {path: $OUT/$1.out}, ordered: true}" ;;
  esac
  {
    echo "# range -> fnv x2 -> $3"
    echo "name: $1"
    echo "ring: {capacity: 1MiB}"
    echo "batch: {records: 1024, bytes: 256KiB, linger: 5ms}"
    [ -n "${4:-}" ] && echo "$4"
    echo "dead_letter: {path: $OUT/$1.dead.jsonl}"
    echo "stages:"
    echo "  - {name: numbers, use: range, with: {start: 0, count: $2}}"
    echo "  - {name: hash, use: fnv, with: {rounds: 1000}, workers: 2}"
    echo "  - $sink"
  } > "$OUT/$1.yaml"
}
