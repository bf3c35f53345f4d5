#!/usr/bin/env bash
# make bench-search: the search workloads of the search issue on the Synthea 120-patient set
# (../shared/data/synthea/blaze-synthea-v2.7-120) plus GENERATED (default 1000) patients from
# `fhirstone generate`, loaded once with every search parameter indexed, at 1 connection
# (latency, bench_latency) and 64 connections (throughput, wrk), beside this machine's
# ceiling measured in the same run (the same HTTP server returning the bytes of the first query's
# answer). Writes bench/results/DATE-search.md.
# Environment: BENCH_SECONDS (default 5), THREADS (default 2), GENERATED (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${THREADS:-2}
BUILD=${BUILD:-build/release}
DATA=${DATA:-../shared/data/synthea/blaze-synthea-v2.7-120}
GENERATED=${GENERATED:-1000}
WORK=bench/work
PORT=18183
CEIL_PORT=18184
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target benchmarks >/dev/null

# The store as loaded, never served; each run serves a copy of it, so that every run starts from
# the same store: an audit log of the loading alone, not of every run before (a log that grew by
# millions of records per run, most of them about patient X, made the audit writer's work grow
# from run to run).
LOADED="$WORK/search-loaded.db"
DB="$WORK/search-run.db"
rm -f "$WORK/search.db" "$WORK/search.db-wal" "$WORK/search.db-shm" "$WORK/search.done"  # a former layout
if [ ! -f "$WORK/search-loaded.done" ]; then
  rm -f "$LOADED" "$LOADED-wal" "$LOADED-shm"
  "$BUILD/fhirstone" import --db "sqlite:$LOADED" --base-url "http://127.0.0.1:$PORT" "$DATA" | tee "$WORK/search-import.txt"
  if [ "$GENERATED" -gt 0 ]; then
    "$BUILD/fhirstone" generate --patients "$GENERATED" --seed 1 --load --db "sqlite:$LOADED" \
      --base-url "http://127.0.0.1:$PORT" | tee -a "$WORK/search-import.txt"
  fi
  sqlite3 "$LOADED" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  touch "$WORK/search-loaded.done"
fi
# A store loaded before an upgrade that asks for a reindex gets it here, once, rather than in the
# background of every run's server.
"$BUILD/fhirstone" migrate --db "sqlite:$LOADED" >/dev/null
if [ -n "$(sqlite3 "$LOADED" "SELECT 1 FROM store_state WHERE name = 'reindex'")" ]; then
  "$BUILD/fhirstone" reindex --db "sqlite:$LOADED" --base-url "http://127.0.0.1:$PORT"
  # With the base the servers below use: the reindex the upgrade asked for is done.
  sqlite3 "$LOADED" "DELETE FROM store_state WHERE name = 'reindex'; PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
fi
rm -f "$DB" "$DB-wal" "$DB-shm"
cp "$LOADED" "$DB"
sync "$DB"  # written back now, not by the kernel during the first runs
q() { sqlite3 "$DB" "$1"; }
# A patient with the median number of observations; a common vital-sign code; a family name.
X=$(q "SELECT target_id FROM (SELECT target_id, count(*) c FROM idx_reference WHERE param = 'Observation.patient' GROUP BY target_id ORDER BY c) LIMIT 1 OFFSET (SELECT count(DISTINCT target_id) / 2 FROM idx_reference WHERE param = 'Observation.patient')")
Y=8867-4
NAME=$(q "SELECT s.exact FROM idx_string s JOIN resource r ON r.rowid = s.rid WHERE r.type = 'Patient' AND r.id = '$X' AND s.param = 'Patient.family' LIMIT 1")
entries=$(q "SELECT count(*) FROM idx_token WHERE param = 'Observation.code' AND code = '$Y'")
resources=$(q "SELECT count(*) FROM resource")
audit_records=$(q "SELECT count(*) FROM audit_event")

queries=(
  "Observation?patient=$X&code=$Y"
  "Observation?patient=$X&category=vital-signs&date=ge2015&_sort=-date&_count=50"
  "Condition?patient=$X&clinical-status=active"
  "Patient?name=smi"
  "Patient?birthdate=ge1970-01-01&gender=female"
  "Encounter?patient=$X&_revinclude=Observation:encounter"
  "MedicationRequest?patient=$X&_include=MedicationRequest:medication"
  "Observation?code=$Y&_summary=count"
  "Observation?subject:Patient.name=$NAME"
  "Patient?_has:Observation:patient:code=$Y"
)

source bench/lib.sh

"$BUILD/fhirstone" serve --open --listen "127.0.0.1:$PORT" --db "sqlite:$DB" --threads "$THREADS" --log-level warn >"$WORK/search-server.log" 2>&1 &
pids+=($!)
wait_port "$PORT"
rows=()
for i in "${!queries[@]}"; do
  query=${queries[$i]}
  url="http://127.0.0.1:$PORT/fhir/$query"
  matches=$(curl -s "$url&_total=accurate" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b.get("total", "?"), len(b.get("entry", [])))')
  curl -s "$url" > "$WORK/search-answer-$i.json"  # its bytes, for its ceiling below
  run_wrk 8 2 "$url" bench/wrk/fixed.lua >/dev/null  # warm-up
  # Each run on a server that has appended the audit records of the runs before (those of the
  # previous query's 64 connections take seconds): its own records are its own cost.
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  read -r r1 p50 p99 e1 p999 max1 _ over5 < <(run_latency "$url")
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  # The server's CPU time during the 64 connections' run: its throughput per core it used (the
  # clients share the cores; the audit records of the run are appended during it and the next
  # second, the run before's drained first).
  cpu0=$(cpu_ticks "${pids[0]}"); wall0=$(date +%s%N)
  read -r r64 _ p99_64 e64 < <(run_wrk 64 2 "$url" bench/wrk/fixed.lua)
  cpu1=$(cpu_ticks "${pids[0]}"); wall1=$(date +%s%N)
  core=$(per_server_core "$r64" $((cpu1 - cpu0)) $((wall1 - wall0)))
  rows+=("| \`$query\` | $matches | $p50 | $p99 | $p999 | $max1 | $over5 | $r1 | $r64 | $core | $p99_64 | $((e1 + e64))")
done
count_p50=$(echo "${rows[7]}" | awk -F'|' '{print $4}' | tr -d ' ')

# Mixed: the Condition query (cheap) at 64 connections while 2 connections run the reverse chain
# (long): what a long search does to everyone else's answers.
cheap_url="http://127.0.0.1:$PORT/fhir/${queries[2]}"
long_url="http://127.0.0.1:$PORT/fhir/${queries[9]}"
run_wrk 2 1 "$long_url" bench/wrk/fixed.lua >"$WORK/search-mixed-long.txt" &
long_pid=$!
read -r mixed_r mixed_p50 mixed_p99 mixed_e < <(run_wrk 64 1 "$cheap_url" bench/wrk/fixed.lua)
wait "$long_pid" || true
read -r long_r _ long_p99 long_e < "$WORK/search-mixed-long.txt"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

# Each query's ceiling: the same HTTP server returning that query's answer as fixed bytes (an
# answer of 170 KB costs the kernel and wrk more than one of 2 KB), at 64 connections; the first
# query's at one connection too.
for i in "${!queries[@]}"; do
  "$BUILD/bench/bench_ceiling_server" "$CEIL_PORT" "$THREADS" "$WORK/search-answer-$i.json" &
  ceiling_pid=$!
  wait_port "$CEIL_PORT"
  if [ "$i" = 0 ]; then
    read -r c1 cp50 cp99 _ cp999 _ _ _ < <(run_latency "http://127.0.0.1:$CEIL_PORT/")
  fi
  read -r ceiling _ _ _ < <(run_wrk 64 2 "http://127.0.0.1:$CEIL_PORT/" bench/wrk/fixed.lua)
  if [ "$i" = 0 ]; then c64=$ceiling; fi
  r64=$(echo "${rows[$i]}" | awk -F'|' '{print $10}' | tr -d ' ')
  ratio="?"
  if [ -n "$r64" ] && [ "${ceiling:-0}" -gt 0 ]; then ratio="$((r64 * 100 / ceiling))%"; fi
  rows[$i]="${rows[$i]} | $ceiling | $ratio |"
  kill "$ceiling_pid"; wait "$ceiling_pid" 2>/dev/null || true
done

out="bench/results/$(date +%F)-search.md"
{
  echo "# Search benchmark, $(date +%F)"
  echo
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN THREADS=$THREADS make bench-search\` (bench/search.sh)."
  echo "Data: Synthea 120 patients and $GENERATED generated ones ($resources resources, every search"
  echo "parameter indexed), SQLite. Loading: $(tr '\n' ' ' < "$WORK/search-import.txt")"
  echo "Each run serves a copy of the store as loaded (its audit log: $audit_records records at the start)."
  echo "server with $THREADS I/O threads; the clients on the same $(nproc) cores. X = $X, Y = $Y (LOINC), name = $NAME."
  echo "1 connection: bench_latency (one request at a time, each timed from before its write to its"
  echo "last byte; docs/decisions/0013-latency-client.md), $SECONDS_PER_RUN s; 64 connections: wrk, $SECONDS_PER_RUN s."
  echo "Per server core: the 64 connections' requests/s divided by the cores of CPU time the server used"
  echo "meanwhile (/proc/PID/stat, user and system, every thread: I/O, offload, audit writer)."
  echo
  echo "| query | total, entries | p50 µs (1 conn) | p99 µs (1 conn) | p99.9 µs (1 conn) | slowest µs (1 conn) | over 5 ms (1 conn) | req/s (1 conn) | req/s (64 conn) | req/s per server core (64 conn) | p99 µs (64 conn) | errors | ceiling req/s (64 conn) | ratio |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Ceiling of each query: the same HTTP server returning that query's answer as fixed bytes, at"
  echo "64 connections. The first query's at 1 connection: $c1/s (p50 $cp50 µs, p99 $cp99 µs, p99.9 $cp999 µs); at 64: $c64/s."
  if [ -n "$count_p50" ] && [ "$count_p50" -gt 0 ]; then
    echo "\`_summary=count\` over $entries index entries: p50 $count_p50 µs, about $((entries * 1000000 / count_p50)) entries/s."
  fi
  echo
  echo "Mixed load: \`${queries[2]}\` at 64 connections while 2 connections run"
  echo "\`${queries[9]}\`: the first $mixed_r/s (p50 $mixed_p50 µs, p99 $mixed_p99 µs, $mixed_e errors), the"
  echo "second $long_r/s (p99 $long_p99 µs, $long_e errors)."
} > "$out"
cat "$out"
