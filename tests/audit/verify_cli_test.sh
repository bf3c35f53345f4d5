#!/usr/bin/env bash
# fhirstone audit verify on a database a server wrote: intact after the server ran (its queued
# records are appended when it stops), then each kind of tampering is reported, exit status 1:
# a changed record, a removed record, removed newest records.
# Usage: verify_cli_test.sh FHIRSTONE_BINARY
set -euo pipefail
bin=$1
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --open --listen "127.0.0.1:$port" --db "sqlite:$dir/db" --access-log off \
  --log-level warn --bulk-dir "$dir/bulk" &
pid=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/fhir/metadata" && break; sleep 0.1; done
base="http://127.0.0.1:$port/fhir"
curl -sf -X PUT -H 'Content-Type: application/fhir+json' "$base/Patient/p1" \
  -d '{"resourceType":"Patient","id":"p1","name":[{"family":"Quill"}]}' >/dev/null
for _ in 1 2 3; do curl -sf "$base/Patient/p1" >/dev/null; done
curl -sf "$base/Patient?name=Quill" >/dev/null
curl -s "$base/Patient/missing" >/dev/null
kill -TERM "$pid"
wait "$pid"
pid=

verify() {  # db file -> prints the output, returns the exit status
  local status=0
  "$bin" audit verify --db "sqlite:$1" >"$dir/out" 2>&1 || status=$?
  cat "$dir/out"
  return "$status"
}
fail() { echo "FAIL: $*"; exit 1; }

out=$(verify "$dir/db") || fail "an intact log was reported as tampered: $out"
# The create, three reads, the search (its query by a name in a record of its own, the patient
# found in another), the read of a missing patient.
grep -q "^7 audit records, head [0-9a-f]\{64\}: intact$" <<<"$out" || fail "unexpected report: $out"

tamper() {  # name sql expected-message
  cp "$dir/db" "$dir/$1.db"
  sqlite3 "$dir/$1.db" "$2"
  local status=0 text
  text=$(verify "$dir/$1.db") || status=$?
  [ "$status" = 1 ] || fail "$1: exit status $status, expected 1: $text"
  grep -q "$3" <<<"$text" || fail "$1: '$3' not reported: $text"
  echo "$1: reported"
}
tamper changed "UPDATE audit_event SET outcome_desc = 'nothing to see' WHERE seq = 3" \
  "TAMPERED: record 3 was changed"
tamper rehashed "UPDATE audit_event SET who_ref = 'Practitioner/x', hash = 'ab' WHERE seq = 2" \
  "TAMPERED: record 2 was changed"
tamper removed "DELETE FROM audit_event WHERE seq = 4" "TAMPERED: records 4 to 4 were removed"
tamper truncated "DELETE FROM audit_event WHERE seq >= 5" \
  "TAMPERED: the newest records 5 to 7 were removed"
echo "audit verify: intact log accepted, 4 kinds of tampering reported"
