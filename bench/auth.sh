#!/usr/bin/env bash
# make bench-auth: the cost of the authorization server.
# 1. Read by id (GET /fhir/Patient/ID, 64 connections and 1) with a bearer token against the same
#    server started with --open (no token), each authorized run with a fresh client_credentials
#    token; target: authorized throughput at least 90% of open. Measured two ways:
#    a. sequential: one database file, one server at a time, ROUNDS alternating rounds (open,
#       authorized, authorized, open, ...); the median of the per-round ratios;
#    b. paired: both servers at once on two copies of that file, loaded at the same time by two
#       wrk processes, PAIRS times; both see the same machine load at the same moment, which the
#       sequential runs cannot ensure on a shared, noisy machine. The median of the ratios.
# 2. Tokens issued per second (bench_tokens): authorization_code (authorize with a remembered
#    consent + code exchange), refresh_token (rotating) and client_credentials (client secret), at
#    1 and 8 client threads, beside a trivial request on the same server (the ceiling).
# Writes bench/results/DATE-auth.md.
# Environment: BENCH_SECONDS (default 5), THREADS (server I/O threads, default 2), COUNT
# (Patients, default 10000), ROUNDS (default 6), PAIRS (default 5), ITERATIONS (per token run,
# default 2000), CLIENT_THREADS (default 1,8), BUILD_JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${THREADS:-2}
COUNT=${COUNT:-10000}
ROUNDS=${ROUNDS:-6}
PAIRS=${PAIRS:-5}
ITERATIONS=${ITERATIONS:-2000}
CLIENT_THREADS=${CLIENT_THREADS:-1,8}
BUILD=${BUILD:-build/release}
WORK=bench/work
PORT=18185
PAIRED_PORT=18186
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

serve() {  # port db [extra serve options...]: starts a server in the background, sets $started
  local port=$1 db=$2
  shift 2
  "$BUILD/fhirstone" serve --listen "127.0.0.1:$port" --db "sqlite:$db" --threads "$THREADS" \
    --log-level warn "$@" >>"$WORK/auth-server.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_port "$port"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
token() {  # port
  curl -sf -u "bench:$secret" -d grant_type=client_credentials -d 'scope=system/*.rs' \
    "http://127.0.0.1:$1/auth/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }  # pid: user + system
cpu_us() {  # ticks requests/s: server CPU µs per request over one run
  awk -v t="$1" -v r="$2" -v hz="$(getconf CLK_TCK)" -v s="$SECONDS_PER_RUN" \
    'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / (r * s) : 0) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf (m >= 1000 ? "%.0f\n" : "%.2f\n"), m }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r >= 0.90 ? "meets" : "misses") }'; }
wrk_threads() { if [ "$1" -gt 1 ]; then echo 2; else echo 1; fi; }
: >"$WORK/auth-server.log"
declare -A rps=() p50s=() cpu=()
errors=0

# 1a. Sequential.
one_mode() {  # open|auth round: fills rps[mode,connections,round], p50s[...], cpu[...]
  local mode=$1 round=$2 lua=bench/wrk/read.lua url="http://127.0.0.1:$PORT" r p50 e c t0
  if [ "$mode" = open ]; then
    serve "$PORT" "$DB" --open
  else
    serve "$PORT" "$DB"
    test "$(status "$url/fhir/Patient/p1")" = 401  # secure
    lua=bench/wrk/read_auth.lua
    export TOKEN
    TOKEN=$(token "$PORT")
    test "$(status -H "Authorization: Bearer $TOKEN" "$url/fhir/Patient/p1")" = 200
  fi
  SECONDS_PER_RUN=1 run_wrk 64 2 "$url" "$lua" >/dev/null  # warm-up
  for c in 64 1; do
    [ "$mode" = auth ] && TOKEN=$(token "$PORT")
    t0=$(cpu_ticks "$started")
    read -r r p50 _ e < <(run_wrk "$c" "$(wrk_threads "$c")" "$url" "$lua")
    rps[$mode,$c,$round]=$r p50s[$mode,$c,$round]=$p50
    cpu[$mode,$c,$round]=$(cpu_us "$(($(cpu_ticks "$started") - t0))" "$r")
    errors=$((errors + e))
  done
  stop "$started"
}
# ABBA: open first in odd rounds, authorized first in even ones, so that drift in the machine's
# load does not favour one mode.
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then one_mode open "$round"; one_mode auth "$round"
  else one_mode auth "$round"; one_mode open "$round"; fi
  echo "round $round: 64 conn open ${rps[open,64,$round]}/s auth ${rps[auth,64,$round]}/s;" \
    "1 conn open ${rps[open,1,$round]}/s auth ${rps[auth,1,$round]}/s"
done

# 1b. Paired: both servers at once, each on its own copy of the database.
for mode in open auth; do
  rm -f "$WORK/auth-read-$mode.db"*
  cp "$DB" "$WORK/auth-read-$mode.db"
  [ -f "$DB-wal" ] && cp "$DB-wal" "$WORK/auth-read-$mode.db-wal"
done
serve "$PORT" "$WORK/auth-read-open.db" --open
open_pid=$started
serve "$PAIRED_PORT" "$WORK/auth-read-auth.db"
auth_pid=$started
open_url="http://127.0.0.1:$PORT" auth_url="http://127.0.0.1:$PAIRED_PORT"
export TOKEN
TOKEN=$(token "$PAIRED_PORT")
test "$(status -H "Authorization: Bearer $TOKEN" "$auth_url/fhir/Patient/p1")" = 200
SECONDS_PER_RUN=1 run_wrk 64 2 "$open_url" bench/wrk/read.lua >/dev/null &
SECONDS_PER_RUN=1 run_wrk 64 2 "$auth_url" bench/wrk/read_auth.lua >/dev/null
wait $!
declare -A prps=() pcpu=()
for pair in $(seq 1 "$PAIRS"); do
  for c in 64 1; do
    TOKEN=$(token "$PAIRED_PORT")
    o0=$(cpu_ticks "$open_pid") a0=$(cpu_ticks "$auth_pid")
    run_wrk "$c" "$(wrk_threads "$c")" "$open_url" bench/wrk/read.lua >"$WORK/auth-paired-open.txt" &
    w=$!
    run_wrk "$c" "$(wrk_threads "$c")" "$auth_url" bench/wrk/read_auth.lua >"$WORK/auth-paired-auth.txt"
    wait "$w"
    for mode in open auth; do
      read -r r _ _ e <"$WORK/auth-paired-$mode.txt"
      prps[$mode,$c,$pair]=$r
      errors=$((errors + e))
    done
    pcpu[open,$c,$pair]=$(cpu_us "$(($(cpu_ticks "$open_pid") - o0))" "${prps[open,$c,$pair]}")
    pcpu[auth,$c,$pair]=$(cpu_us "$(($(cpu_ticks "$auth_pid") - a0))" "${prps[auth,$c,$pair]}")
  done
  echo "pair $pair: 64 conn open ${prps[open,64,$pair]}/s auth ${prps[auth,64,$pair]}/s;" \
    "1 conn open ${prps[open,1,$pair]}/s auth ${prps[auth,1,$pair]}/s"
done
stop "$open_pid"
stop "$auth_pid"

ratios64=() ratios1=() rows=()
for i in $(seq 1 "$ROUNDS"); do
  ratios64+=("$(ratio "${rps[auth,64,$i]}" "${rps[open,64,$i]}")")
  ratios1+=("$(ratio "${rps[auth,1,$i]}" "${rps[open,1,$i]}")")
  rows+=("| $i | ${rps[open,64,$i]} | ${rps[auth,64,$i]} | ${ratios64[-1]} | ${cpu[open,64,$i]} | ${cpu[auth,64,$i]} | ${rps[open,1,$i]} | ${rps[auth,1,$i]} | ${ratios1[-1]} | ${p50s[open,1,$i]} | ${p50s[auth,1,$i]} |")
done
median64=$(median "${ratios64[@]}")
median1=$(median "${ratios1[@]}")
# colmed ARRAY KEY N: the median of ARRAY[KEY,1..N].
colmed() {
  local i values=()
  for i in $(seq 1 "$3"); do eval "values+=(\"\${$1[$2,$i]}\")"; done
  median "${values[@]}"
}
round_median() { colmed "$1" "$2" "$ROUNDS"; }
rows+=("| median | $(round_median rps open,64) | $(round_median rps auth,64) | **$median64** | $(round_median cpu open,64) | $(round_median cpu auth,64) | $(round_median rps open,1) | $(round_median rps auth,1) | **$median1** | $(round_median p50s open,1) | $(round_median p50s auth,1) |")
prows=() pratios64=() pratios1=()
for i in $(seq 1 "$PAIRS"); do
  pratios64+=("$(ratio "${prps[auth,64,$i]}" "${prps[open,64,$i]}")")
  pratios1+=("$(ratio "${prps[auth,1,$i]}" "${prps[open,1,$i]}")")
  prows+=("| $i | ${prps[open,64,$i]} | ${prps[auth,64,$i]} | ${pratios64[-1]} | ${pcpu[open,64,$i]} | ${pcpu[auth,64,$i]} | ${prps[open,1,$i]} | ${prps[auth,1,$i]} | ${pratios1[-1]} |")
done
pmedian64=$(median "${pratios64[@]}")
pmedian1=$(median "${pratios1[@]}")
pair_median() { colmed "$1" "$2" "$PAIRS"; }
prows+=("| median | $(pair_median prps open,64) | $(pair_median prps auth,64) | **$pmedian64** | $(pair_median pcpu open,64) | $(pair_median pcpu auth,64) | $(pair_median prps open,1) | $(pair_median prps auth,1) | **$pmedian1** |")

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
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN THREADS=$THREADS COUNT=$COUNT ROUNDS=$ROUNDS PAIRS=$PAIRS ITERATIONS=$ITERATIONS CLIENT_THREADS=$CLIENT_THREADS make bench-auth\` (bench/auth.sh)."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); the load generators and the server share the cores."
  echo "Load average before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Server: $THREADS I/O threads, SQLite (WAL)."
  echo
  echo "## Read by id: authorized against open"
  echo
  echo "GET /fhir/Patient/p<random> over $COUNT Patients, wrk for $SECONDS_PER_RUN s per run (64 connections"
  echo "on 2 wrk threads, 1 connection on 1). Open: \`serve --open\`, no Authorization header. Authorized:"
  echo "the server started secure (the default), \`Authorization: Bearer\` with a client_credentials"
  echo "token (system/*.rs, RS256) fetched just before each run. Server CPU: user + system time of the"
  echo "server process during the run, per request answered."
  echo
  echo "### Sequential (one database file, one server at a time)"
  echo
  echo "Each round starts the server once per mode (open first in odd rounds, authorized first in even"
  echo "ones) and warms it up for 1 s."
  echo
  echo "| round | open req/s (64) | authorized req/s (64) | ratio (64) | open server CPU µs/req (64) | authorized server CPU µs/req (64) | open req/s (1) | authorized req/s (1) | ratio (1) | open p50 µs (1) | authorized p50 µs (1) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "### Paired (both servers at once, on two copies of the database, loaded at the same time)"
  echo
  echo "| pair | open req/s (64) | authorized req/s (64) | ratio (64) | open server CPU µs/req (64) | authorized server CPU µs/req (64) | open req/s (1) | authorized req/s (1) | ratio (1) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${prows[@]}"
  echo
  echo "Median ratio authorized/open, sequential: **$median64 at 64 connections** ($(verdict "$median64") the"
  echo "0.90 target), **$median1 at 1 connection** ($(verdict "$median1") it). Paired: **$pmedian64 at 64"
  echo "connections** ($(verdict "$pmedian64") it), **$pmedian1 at 1 connection** ($(verdict "$pmedian1") it)."
  echo "wrk errors (non-2xx included): $errors."
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
