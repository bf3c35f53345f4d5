#!/usr/bin/env bash
# make bench-audit: what the audit log costs a read. Two servers at once on two copies of one
# database, one with the audit log (the default) and one started with --no-audit, loaded at the
# same time by two wrk processes so that both see the same machine load; PAIRS times, for
#   read:   GET /fhir/Patient/ID (one record per read), 64 connections and 1;
#   search: GET /fhir/Patient?_id=10 ids (one record per patient found: 10 per search), 64
#           connections.
# Target: audited throughput at least 90% of unaudited (the median of the paired ratios). Each
# run starts once the audited server's backlog is empty (the search appends ten records per
# request: its backlog would otherwise weigh on the next run). Also reports the audit backlog
# seen on /metrics during the runs and checks the hash chain after.
# Writes bench/results/DATE-audit.md.
# Environment: BENCH_SECONDS (default 5), THREADS (server I/O threads, default 2), COUNT
# (Patients, default 10000), PAIRS (default 5), BUILD_JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${THREADS:-2}
COUNT=${COUNT:-10000}
PAIRS=${PAIRS:-5}
BUILD=${BUILD:-build/release}
WORK=bench/work
PLAIN_PORT=18187
AUDIT_PORT=18188
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target fhirstone bench_seed --parallel "${BUILD_JOBS:-1}" >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

source bench/lib.sh
export COUNT

DB="$WORK/audit-read.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$BUILD/bench/bench_seed" "sqlite:$DB" "$COUNT"
for mode in plain audit; do
  rm -f "$WORK/audit-$mode.db"*
  cp "$DB" "$WORK/audit-$mode.db"
  [ -f "$DB-wal" ] && cp "$DB-wal" "$WORK/audit-$mode.db-wal"
done

serve() {  # port db [extra serve options...]
  "$BUILD/fhirstone" serve --listen "127.0.0.1:$1" --db "sqlite:$2" --threads "$THREADS" \
    --log-level warn --access-log off --open "${@:3}" >>"$WORK/audit-server.log" 2>&1 &
  pids+=("$!")
  wait_port "$1"
}
: >"$WORK/audit-server.log"
serve "$PLAIN_PORT" "$WORK/audit-plain.db" --no-audit
plain_pid=${pids[-1]}
serve "$AUDIT_PORT" "$WORK/audit-audit.db" ${AUDIT_OPTIONS:-}
audit_pid=${pids[-1]}
plain_url="http://127.0.0.1:$PLAIN_PORT" audit_url="http://127.0.0.1:$AUDIT_PORT"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf (m >= 1000 ? "%.0f\n" : "%.2f\n"), m }'; }
backlog() { curl -s "$audit_url/metrics" | awk '/^fhirstone_audit_backlog / { print $2 }'; }
errors=0
max_backlog=0
declare -A rps=() ratios=()
workloads=("read 64 bench/wrk/read.lua" "read 1 bench/wrk/read.lua" "search 64 bench/wrk/search.lua")
for w in "${workloads[@]}"; do  # warm-up
  read -r name c lua <<<"$w"
  SECONDS_PER_RUN=1 run_wrk "$c" 1 "$plain_url" "$lua" >/dev/null &
  warm=$!
  SECONDS_PER_RUN=1 run_wrk "$c" 1 "$audit_url" "$lua" >/dev/null
  wait "$warm"
done
drain() {  # waits until the audited server has appended every record (each run starts even)
  for _ in $(seq 1 600); do
    [ "$(backlog)" = 0 ] && return 0
    sleep 0.1
  done
}
for pair in $(seq 1 "$PAIRS"); do
  line="pair $pair:"
  for w in "${workloads[@]}"; do
    read -r name c lua <<<"$w"
    drain
    t=$([ "$c" -gt 1 ] && echo 2 || echo 1)
    run_wrk "$c" "$t" "$plain_url" "$lua" >"$WORK/audit-plain.txt" &
    wrk_pid=$!
    run_wrk "$c" "$t" "$audit_url" "$lua" >"$WORK/audit-audit.txt" &
    audit_wrk=$!
    sleep $((SECONDS_PER_RUN / 2))
    b=$(backlog)
    max_backlog=$(awk -v a="$max_backlog" -v b="${b:-0}" 'BEGIN { print (b > a ? b : a) }')
    wait "$wrk_pid" "$audit_wrk"
    read -r pr _ _ pe <"$WORK/audit-plain.txt"
    read -r ar _ _ ae <"$WORK/audit-audit.txt"
    errors=$((errors + pe + ae))
    rps[plain,$name,$c,$pair]=$pr rps[audit,$name,$c,$pair]=$ar
    ratios[$name,$c]+="$(ratio "$ar" "$pr") "
    line+=" $name/$c plain ${pr}/s audited ${ar}/s;"
  done
  echo "$line"
done
sleep 1  # the last records reach the log within the delay
final_backlog=$(backlog)
kill "$plain_pid" "$audit_pid"
wait "$plain_pid" "$audit_pid" 2>/dev/null || true
verify=$("$BUILD/fhirstone" audit verify --db "sqlite:$WORK/audit-audit.db" | tail -1)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

out="bench/results/$(date +%F)-audit.md"
{
  echo "# Audit log benchmark, $(date +%F)"
  echo
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN COUNT=$COUNT PAIRS=$PAIRS THREADS=$THREADS make bench-audit\` (bench/audit.sh)."
  echo "Machine: $(nproc) cores; two servers (audited, and --no-audit) and two wrk share them."
  echo "Load average before: $load_before; after: $load_after."
  echo
  echo "| workload | connections | unaudited req/s (median) | audited req/s (median) | audited / unaudited (median of $PAIRS paired runs) | target |"
  echo "| --- | ---: | ---: | ---: | ---: | --- |"
  for w in "${workloads[@]}"; do
    read -r name c lua <<<"$w"
    p=() a=()
    for pair in $(seq 1 "$PAIRS"); do p+=("${rps[plain,$name,$c,$pair]}"); a+=("${rps[audit,$name,$c,$pair]}"); done
    # shellcheck disable=SC2086
    m=$(median ${ratios[$name,$c]})
    echo "| $name | $c | $(median "${p[@]}") | $(median "${a[@]}") | $m | $(awk -v r="$m" 'BEGIN { print (r >= 0.90 ? "meets 0.90" : "misses 0.90") }') |"
  done
  echo
  echo "Per pair (ratios): $(for w in "${workloads[@]}"; do read -r name c lua <<<"$w"; echo -n "$name/$c: ${ratios[$name,$c]}; "; done)"
  echo
  echo "Audit backlog on /metrics mid-run: at most $max_backlog records; after the runs: ${final_backlog:-0}."
  echo "Errors: $errors. Hash chain after the runs (\`fhirstone audit verify\`): $verify"
} >"$out"
cat "$out"
