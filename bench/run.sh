#!/usr/bin/env bash
# make bench: read-by-id (64 connections and 1) on a store of COUNT Patients, creates, and this
# machine's ceilings measured in the same run (a trivial Beast server returning the same bytes, the
# same server answering with a raw SQLite point lookup, and raw SQLite point lookups alone).
# Writes bench/results/DATE-crud.md.
# Environment: COUNT (default 1000000), BENCH_SECONDS (default 10), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
COUNT=${COUNT:-1000000}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
THREADS=${THREADS:-2}
BUILD=${BUILD:-build/release}
WORK=bench/work
PORT=18181
CEIL_PORT=18182
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target benchmarks >/dev/null

DB="$WORK/read-$COUNT.db"
if [ ! -f "$WORK/read-$COUNT.done" ]; then
  rm -f "$DB" "$DB-wal" "$DB-shm"
  echo "seeding $COUNT Patients into $DB (once)..."
  start=$(date +%s)
  "$BUILD/bench/bench_seed" "sqlite:$DB" "$COUNT"
  echo "seeded in $(( $(date +%s) - start )) s"
  touch "$WORK/read-$COUNT.done"
fi

# The seeded store has no search index (bench_seed writes resource rows only): upgrade its
# schema now, and drop the reindex a migration asks for, which would otherwise re-extract a
# million resources in the background while the reads are measured.
"$BUILD/fhirstone" migrate --db "sqlite:$DB" >/dev/null
sqlite3 "$DB" "DELETE FROM store_state WHERE name = 'reindex'"

source bench/lib.sh

# Start-up time and idle memory on the seeded database.
read -r startup_ms server_pid < <(python3 bench/startup.py "$WORK/server.log" "$PORT" \
  "$BUILD/fhirstone" serve --open --listen "127.0.0.1:$PORT" --db "sqlite:$DB" --threads "$THREADS" \
  --access-log off --log-level warn)
pids+=("$server_pid")
[ "$startup_ms" != "no" ] || { echo "the server did not answer"; cat "$WORK/server.log"; exit 1; }
idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")

curl -s "http://127.0.0.1:$PORT/fhir/Patient/p1" > "$WORK/patient.json"
# Warm-up (unmeasured): the page cache and SQLite's cache fill as they would in service.
COUNT=$COUNT run_wrk 64 2 "http://127.0.0.1:$PORT" bench/wrk/read.lua >/dev/null
# Each run starts once the audit records of the runs before are in the log: the writer appends
# them after their requests, and a run that starts before would time that work too.
wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
read -r read64_rps read64_p50 read64_p99 read64_err < <(COUNT=$COUNT run_wrk 64 2 "http://127.0.0.1:$PORT" bench/wrk/read.lua)
wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
read -r read1_rps read1_p50 read1_p99 read1_err _ < <(run_latency "http://127.0.0.1:$PORT/fhir/Patient/p{i}" "$COUNT")
loaded_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
# The database file's pages read through the process's mapping count in RSS (RssFile): they are
# the kernel's page cache, shared and reclaimable. The server's own memory is RssAnon.
loaded_anon_kb=$(awk '/RssAnon/ {print $2}' "/proc/$server_pid/status")
loaded_file_kb=$(awk '/RssFile/ {print $2}' "/proc/$server_pid/status")
kill "$server_pid"; while kill -0 "$server_pid" 2>/dev/null; do sleep 0.05; done  # not a child of this shell

"$BUILD/bench/bench_ceiling_server" "$CEIL_PORT" "$THREADS" "$WORK/patient.json" &
pids+=($!)
ceil_pid=$!
wait_port "$CEIL_PORT"
run_wrk 64 2 "http://127.0.0.1:$CEIL_PORT" bench/wrk/read.lua >/dev/null
read -r ceil64_rps ceil64_p50 ceil64_p99 _ < <(COUNT=$COUNT run_wrk 64 2 "http://127.0.0.1:$CEIL_PORT" bench/wrk/read.lua)
read -r ceil1_rps ceil1_p50 ceil1_p99 _ < <(run_latency "http://127.0.0.1:$CEIL_PORT/fhir/Patient/p{i}" "$COUNT")
kill "$ceil_pid"; wait "$ceil_pid" 2>/dev/null || true

# The same trivial server answering each read with a raw SQLite point lookup of its id.
"$BUILD/bench/bench_ceiling_server" "$CEIL_PORT" "$THREADS" "$WORK/patient.json" "sqlite:$DB" &
pids+=($!)
ceil_pid=$!
wait_port "$CEIL_PORT"
COUNT=$COUNT run_wrk 64 2 "http://127.0.0.1:$CEIL_PORT" bench/wrk/read.lua >/dev/null
read -r look64_rps look64_p50 look64_p99 _ < <(COUNT=$COUNT run_wrk 64 2 "http://127.0.0.1:$CEIL_PORT" bench/wrk/read.lua)
read -r look1_rps look1_p50 look1_p99 _ < <(run_latency "http://127.0.0.1:$CEIL_PORT/fhir/Patient/p{i}" "$COUNT")
kill "$ceil_pid"; wait "$ceil_pid" 2>/dev/null || true

sqlite_1=$("$BUILD/bench/bench_sqlite_lookup" "sqlite:$DB" "$COUNT" 1 "$SECONDS_PER_RUN")

# Creates on a fresh database.
CDB="$WORK/create.db"
rm -f "$CDB" "$CDB-wal" "$CDB-shm"
"$BUILD/fhirstone" serve --open --listen "127.0.0.1:$PORT" --db "sqlite:$CDB" --threads "$THREADS" \
  --access-log off --log-level warn >"$WORK/server.log" 2>&1 &
pids+=($!)
server_pid=$!
wait_port "$PORT"
read -r create_rps create_p50 create_p99 create_err < <(run_wrk 64 2 "http://127.0.0.1:$PORT/fhir/Patient" bench/wrk/create.lua)
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
out="bench/results/$(date +%F)-crud.md"
{
  echo "# CRUD benchmark, $(date +%F)"
  echo
  echo "Command: \`COUNT=$COUNT BENCH_SECONDS=$SECONDS_PER_RUN THREADS=$THREADS make bench\` (bench/run.sh)."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk and the server share the cores."
  echo "Store: $COUNT Patients in SQLite (WAL); server with $THREADS I/O threads."
  echo "64 connections: wrk (bench/wrk/read.lua, random ids); 1 connection: bench_latency, random ids too"
  echo "(one request at a time, each timed from before its write to its last byte; docs/decisions/0013-latency-client.md)."
  echo
  echo "| workload | requests/s | p50 µs | p99 µs | errors | ceiling: no database | ratio | ceiling: raw lookup | ratio |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| read by id, 64 connections | $read64_rps | $read64_p50 | $read64_p99 | $read64_err | $ceil64_rps | $(ratio "$read64_rps" "$ceil64_rps") | $look64_rps | $(ratio "$read64_rps" "$look64_rps") |"
  echo "| read by id, 1 connection | $read1_rps | $read1_p50 | $read1_p99 | $read1_err | $ceil1_rps | $(ratio "$read1_rps" "$ceil1_rps") | $look1_rps | $(ratio "$read1_rps" "$look1_rps") |"
  echo "| create, 64 connections | $create_rps | $create_p50 | $create_p99 | $create_err | | | | |"
  echo
  echo "Ceilings, the same Beast server (no routing):"
  echo "- no database, returning the same bytes: 64 connections $ceil64_rps/s (p50 $ceil64_p50 µs), 1 connection $ceil1_rps/s (p50 $ceil1_p50 µs);"
  echo "- raw lookup: each request answered with the body of a SQLite point lookup of its id (one connection and prepared statement per I/O thread, no transaction of its own, no audit): 64 connections $look64_rps/s (p50 $look64_p50 µs), 1 connection $look1_rps/s (p50 $look1_p50 µs)."
  echo "Raw SQLite point lookups through the driver, one thread: $sqlite_1/s."
  echo
  echo "Start-up on the $COUNT-resource database (process start to the first answer to GET /fhir/metadata, polled every millisecond by bench/startup.py): $startup_ms ms."
  echo "Memory: idle ${idle_kb} kB RSS, after the read runs ${loaded_kb} kB RSS" \
    "(${loaded_anon_kb} kB of the server's own, ${loaded_file_kb} kB of the database file's" \
    "pages in the kernel's cache, mapped)."
} > "$out"
cat "$out"
