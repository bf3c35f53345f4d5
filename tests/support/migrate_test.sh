#!/usr/bin/env bash
# fhirstone migrate on SQLite and on the tests' PostgreSQL (its URL in the file
# FHIRSTONE_TEST_POSTGRES_FILE names): applies every migration, is idempotent, and a server then
# starts on the migrated database without migrating again.
# Usage: migrate_test.sh FHIRSTONE_BINARY
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
urls=("sqlite:$dir/db.sqlite")
if [ -n "${FHIRSTONE_TEST_POSTGRES_FILE:-}" ]; then
  base=$(cat "$FHIRSTONE_TEST_POSTGRES_FILE")
  PGOPTIONS="-c client_min_messages=warning" psql "$base" -qc "DROP DATABASE IF EXISTS migrate_test" -qc "CREATE DATABASE migrate_test" >/dev/null
  urls+=("${base%/*}/migrate_test")
else
  fail "FHIRSTONE_TEST_POSTGRES_FILE is unset: make test starts the PostgreSQL this test needs"
fi
for url in "${urls[@]}"; do
  first=$("$bin" migrate --db "$url")
  second=$("$bin" migrate --db "$url")
  echo "$url: $first"
  grep -Eq '^schema up to date: [0-9]+ migrations applied$' <<<"$first" || fail "$url: $first"
  [ "$first" = "$second" ] || fail "$url: a second run differs: $second"
  n=$(grep -Eo '[0-9]+' <<<"$first" | head -1)
  [ "$n" -ge 6 ] || fail "$url: only $n migrations"
done
echo "migrate: ${#urls[@]} databases migrated, idempotent"
