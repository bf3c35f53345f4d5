# Shared by the bench scripts (sourced): process cleanup, waiting for a port, one wrk run, one
# latency run at one connection. Needs SECONDS_PER_RUN and BENCH_DIR set by the caller (and BUILD
# for run_latency).
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Waits until the server on port $1 answers a FHIR request (it listens before its store is open,
# and answers 503 until then).
wait_port() { for _ in $(seq 1 1000); do curl -sf -o /dev/null "http://127.0.0.1:$1/fhir/metadata" && return 0; sleep 0.01; done; return 1; }
# Waits (at most 60 s) until the server on port $1 has written every audit record queued
# (/metrics fhirstone_audit_backlog 0): the records of a load test are appended after its
# requests, and a measurement that starts before would time that work too.
wait_audit() {
  for _ in $(seq 1 600); do
    curl -s "http://127.0.0.1:$1/metrics" | grep -qx 'fhirstone_audit_backlog 0' && return 0
    sleep 0.1
  done
  return 1
}

# One connection, one request at a time, for latency (docs/decisions/0013-latency-client.md):
# url [N: "{i}" in the url drawn from 1..N per request] -> "rps p50 p99 errors p999 max over1ms
# over5ms" (microseconds). Needs BUILD.
run_latency() {
  "$BUILD/bench/bench_latency" "$1" "$SECONDS_PER_RUN" ${2:+"$2"} | awk '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["rps"], v["p50"], v["p99"], v["errors"], v["p999"], v["max"], v["over1ms"], v["over5ms"] }'
}

# The CPU time process $1 has used (user and system, all its threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Requests per second of the server's own CPU time: $1 requests/s over a run during which the
# server used $2 clock ticks of CPU time in $3 nanoseconds of wall time.
per_server_core() {
  awk -v r="$1" -v c="$2" -v t="$3" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { cores = c / hz / (t / 1e9); if (cores > 0) printf "%d", r / cores; else print "?" }'
}

run_wrk() {  # connections threads url script -> "rps p50 p99 errors"
  wrk -c "$1" -t "$2" -d "${SECONDS_PER_RUN}s" --latency -s "$4" "$3" 2>&1 | awk '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["rps"], v["p50"], v["p99"], v["errors"] }'
}
