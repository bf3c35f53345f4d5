#!/usr/bin/env bash
# make bench-auth: the cost of the authorization server.
# 1. Read by id (GET /fhir/Patient/ID, 64 connections and 1) with a bearer token against the same
#    server started with --open (no token), on the same database: ROUNDS alternating rounds (open,
#    authorized, open, authorized, ...), each with a fresh client_credentials token; the median
#    ratio authorized/open is the figure (target: at least 90%).
# 2. Tokens issued per second (bench_tokens): authorization_code (authorize with a remembered
#    consent + code exchange), refresh_token (rotating) and client_credentials (client secret), at
#    1 and 8 client threads, beside a trivial request on the same server (the ceiling).
# Writes bench/results/DATE-auth.md.
# Environment: BENCH_SECONDS (default 10), THREADS (server I/O threads, default 2), COUNT
# (Patients, default 10000), ROUNDS (default 3), ITERATIONS (per token run, default 2000),
# CLIENT_THREADS (default 1,8), BUILD_JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
THREADS=${THREADS:-2}
COUNT=${COUNT:-10000}
ROUNDS=${ROUNDS:-3}
ITERATIONS=${ITERATIONS:-2000}
CLIENT_THREADS=${CLIENT_THREADS:-1,8}
BUILD=${BUILD:-build/release}
WORK=bench/work
PORT=18185
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target fhirstone bench_seed bench_tokens --parallel "${BUILD_JOBS:-1}" >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

source bench/lib.sh
export COUNT

# A fresh database: COUNT Patients (p1..pCOUNT) and a backend client.
DB="$WORK/auth-read.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$BUILD/bench/bench_seed" "sqlite:$DB" "$COUNT"
secret=$("$BUILD/fhirstone" client add --db "sqlite:$DB" --name bench --type confidential-symmetric \
  --redirect-uri https://bench.example/cb --scopes "system/*.rs" --client-id bench --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')

server_pid=
start_server() {  # extra serve options...
  "$BUILD/fhirstone" serve --listen "127.0.0.1:$PORT" --db "sqlite:$DB" --threads "$THREADS" \
    --log-level warn "$@" >"$WORK/auth-server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$PORT"
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
token() {
  curl -sf -u "bench:$secret" -d grant_type=client_credentials -d 'scope=system/*.rs' \
    "http://127.0.0.1:$PORT/auth/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

url="http://127.0.0.1:$PORT"
open64=() open1=() auth64=() auth1=() open1_p50=() auth1_p50=() errors=0
for round in $(seq 1 "$ROUNDS"); do
  start_server --open
  SECONDS_PER_RUN=2 run_wrk 64 2 "$url" bench/wrk/read.lua >/dev/null  # warm-up
  read -r r _ _ e < <(run_wrk 64 2 "$url" bench/wrk/read.lua)
  open64+=("$r"); errors=$((errors + e))
  read -r r p50 _ e < <(run_wrk 1 1 "$url" bench/wrk/read.lua)
  open1+=("$r"); open1_p50+=("$p50"); errors=$((errors + e))
  stop_server

  start_server
  test "$(curl -s -o /dev/null -w '%{http_code}' "$url/fhir/Patient/p1")" = 401  # secure
  TOKEN=$(token)
  test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url/fhir/Patient/p1")" = 200
  TOKEN=$TOKEN SECONDS_PER_RUN=2 run_wrk 64 2 "$url" bench/wrk/read_auth.lua >/dev/null  # warm-up
  read -r r _ _ e < <(TOKEN=$(token) run_wrk 64 2 "$url" bench/wrk/read_auth.lua)
  auth64+=("$r"); errors=$((errors + e))
  read -r r p50 _ e < <(TOKEN=$(token) run_wrk 1 1 "$url" bench/wrk/read_auth.lua)
  auth1+=("$r"); auth1_p50+=("$p50"); errors=$((errors + e))
  stop_server
  echo "round $round: 64 conn open ${open64[-1]}/s auth ${auth64[-1]}/s; 1 conn open ${open1[-1]}/s auth ${auth1[-1]}/s"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratios64=() ratios1=() rows=()
for i in $(seq 0 $((ROUNDS - 1))); do
  ratios64+=("$(ratio "${auth64[$i]}" "${open64[$i]}")")
  ratios1+=("$(ratio "${auth1[$i]}" "${open1[$i]}")")
  rows+=("| $((i + 1)) | ${open64[$i]} | ${auth64[$i]} | ${ratios64[$i]} | ${open1[$i]} | ${auth1[$i]} | ${ratios1[$i]} | ${open1_p50[$i]} | ${auth1_p50[$i]} |")
done
median64=$(median "${ratios64[@]}")
median1=$(median "${ratios1[@]}")
verdict() { awk -v r="$1" 'BEGIN { print (r >= 0.90 ? "meets" : "misses") }'; }

# Tokens issued per second, on a server of its own (in-process, its own database).
"$BUILD/bench/bench_tokens" "$WORK/auth-tokens" "$ITERATIONS" "$CLIENT_THREADS" "$THREADS" |
  tee "$WORK/auth-tokens.txt"
token_rows=()
while read -r line; do
  declare -A v=()
  for kv in $line; do [[ $kv == *=* ]] && v[${kv%%=*}]=${kv#*=}; done
  [ "${v[workload]}" = ceiling ] && continue
  token_rows+=("| ${v[workload]} | ${v[threads]} | ${v[per_s]} | ${v[p50]} | ${v[p99]} | ${v[errors]} | ${v[ceiling_per_s]} | $(ratio "${v[per_s]}" "${v[ceiling_per_s]}") |")
  unset v
done < <(grep '^RESULT' "$WORK/auth-tokens.txt")

out="bench/results/$(date +%F)-auth.md"
{
  echo "# Authorization benchmark, $(date +%F)"
  echo
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN THREADS=$THREADS COUNT=$COUNT ROUNDS=$ROUNDS ITERATIONS=$ITERATIONS CLIENT_THREADS=$CLIENT_THREADS make bench-auth\` (bench/auth.sh)."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); the load generators and the server share the cores."
  echo "Load average before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Server: $THREADS I/O threads, SQLite (WAL)."
  echo
  echo "## Read by id: authorized against open"
  echo
  echo "GET /fhir/Patient/p<random> over $COUNT Patients, wrk for $SECONDS_PER_RUN s per run (64 connections"
  echo "on 2 wrk threads, 1 connection on 1). Open: \`serve --open\`, no Authorization header. Authorized:"
  echo "the same database served secure, \`Authorization: Bearer\` with a client_credentials token"
  echo "(system/*.rs, RS256) fetched just before each run. Each round restarts the server once per mode."
  echo
  echo "| round | open req/s (64) | authorized req/s (64) | ratio (64) | open req/s (1) | authorized req/s (1) | ratio (1) | open p50 µs (1) | authorized p50 µs (1) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Median ratio authorized/open: **$median64 at 64 connections** ($(verdict "$median64") the 0.90 target),"
  echo "**$median1 at 1 connection** ($(verdict "$median1") it). wrk errors (non-2xx included): $errors."
  echo
  echo "## Tokens issued per second"
  echo
  echo "bench_tokens: the server in-process ($THREADS I/O threads, a fresh SQLite database), driven by"
  echo "the tests' HTTP client, one keep-alive connection per client thread, $ITERATIONS operations per run."
  echo "authorization_code: one operation = GET /auth/authorize in a signed-in session with a remembered"
  echo "consent (302 with a code, PKCE S256) + POST /auth/token (public client; scope"
  echo "\`launch/patient openid fhirUser offline_access patient/*.rs\`, so each answer carries an"
  echo "access token, an id_token and a refresh token). refresh_token: the same scope, rotating, one"
  echo "chain per client thread. client_credentials: confidential-symmetric client, HTTP Basic secret,"
  echo "\`system/*.rs\`. Ceiling: GET /fhir/.well-known/smart-configuration with the same client code"
  echo "and threads, run just before and just after each grant (their combined rate)."
  echo
  echo "| grant | client threads | operations/s | p50 µs | p99 µs | errors | ceiling requests/s | ratio to ceiling |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${token_rows[@]}"
} > "$out"
cat "$out"
