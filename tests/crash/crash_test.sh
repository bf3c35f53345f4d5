#!/usr/bin/env bash
# Durability: every write the server answered with 2xx is still there after kill -9; and SIGTERM
# finishes in-flight requests and exits cleanly. Usage: crash_test.sh PATH/TO/fhirstone
set -euo pipefail
bin=$1
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Options come from a config file (the [serve] section), as users deploy it.
cat > "$work/fhirstone.toml" <<CONF
[serve]
listen = "127.0.0.1:0"
db = "sqlite:$work/db/fhirstone.db"
threads = 2
open = true
CONF

start() {
  "$bin" --config "$work/fhirstone.toml" serve >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    base=$(grep -o 'FHIR base http://[^ ]*' "$work/log" | awk '{print $3}' || true)
    [ -n "$base" ] && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$work/log"; exit 1
}

start
echo "server at $base"
# Writers in the background; the kill lands while they are running.
writer() {
  local n=$1
  for i in $(seq 1 400); do
    code=$(curl -s -o "$work/out.$n" -w '%{http_code}' -X PUT -H 'Content-Type: application/fhir+json' \
      --data "{\"resourceType\":\"Patient\",\"id\":\"w$n-$i\",\"active\":true}" "$base/Patient/w$n-$i" || true)
    if [ "$code" = 201 ]; then echo "w$n-$i" >> "$work/acked.$n"; fi
    [ "$code" = 000 ] && break  # the server is gone
  done
}
writer 1 & w1=$!
writer 2 & w2=$!
sleep 2
kill -9 "$pid"
wait "$w1" "$w2" || true
pid=""
acked=$(cat "$work"/acked.* 2>/dev/null | wc -l)
echo "acknowledged writes before kill -9: $acked"
[ "$acked" -gt 0 ] || { echo "no write was acknowledged"; exit 1; }

start
missing=0
for id in $(cat "$work"/acked.*); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/Patient/$id")
  [ "$code" = 200 ] || { echo "lost after kill -9: Patient/$id ($code)"; missing=$((missing+1)); }
done
[ "$missing" -eq 0 ] || { echo "$missing acknowledged writes lost"; exit 1; }
echo "all $acked acknowledged writes survived kill -9"

# SIGTERM: the server exits 0 and logs a clean stop.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || { echo "exit status after SIGTERM: $status"; cat "$work/log"; exit 1; }
grep -q stopped "$work/log" || { echo "no clean stop logged"; cat "$work/log"; exit 1; }
echo "SIGTERM: clean stop"
