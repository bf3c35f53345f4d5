#!/usr/bin/env bash
# make bench-import: `fhirstone import` of the Synthea set blaze-synthea-v2.7-120 (its first
# FILES files, default all) into a fresh SQLite store, every search parameter indexed and durable
# commits, against a ceiling measured in the same run: the same rows (resources, history, search
# and full-text index, audit) copied by SQLite alone into a fresh store of the same schema, one
# INSERT ... SELECT per table in one transaction (no parsing, validation, extraction or
# serialization; the full-text rows are tokenized again). Writes bench/results/DATE-import.md.
# Environment: FILES (default: all), DATA (the folder of the set).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/synthea/blaze-synthea-v2.7-120}
BUILD=${BUILD:-build/release}
WORK=bench/work
mkdir -p "$WORK" bench/results
if [ ! -d "$DATA" ]; then
  echo "bench-import: $DATA is missing (the Synthea set); set DATA" >&2
  exit 1
fi

SET="$WORK/import-set"
rm -rf "$SET" && mkdir -p "$SET"
count=0
for f in "$DATA"/*; do
  case "$f" in *.json | *.json.bz2 | *.json.gz) ;; *) continue ;; esac
  if [ -n "${FILES:-}" ] && [ "$count" -ge "$FILES" ]; then
    # Hospital and practitioner files always go in: the patients refer to them.
    case "$(basename "$f")" in *Information*) ;; *) continue ;; esac
  fi
  ln -s "$(realpath "$f")" "$SET/"
  count=$((count + 1))
done

DB="$WORK/import.db"
CEIL="$WORK/import-ceiling.db"
rm -f "$DB" "$DB-wal" "$DB-shm" "$CEIL" "$CEIL-wal" "$CEIL-shm"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

t0=$(date +%s%N)
summary=$("$BUILD/fhirstone" import --db "sqlite:$DB" "$SET" 2>&1 | tail -1)
t1=$(date +%s%N)
import_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
resources=$(sqlite3 "$DB" "SELECT count(*) FROM resource")
index_rows=0
tables="resource resource_history audit_event idx_string idx_token idx_reference idx_date idx_number idx_quantity idx_uri idx_composite"
for t in $tables; do index_rows=$((index_rows + $(sqlite3 "$DB" "SELECT count(*) FROM $t"))); done

# The ceiling: the store's schema, then the rows, by SQLite alone.
"$BUILD/fhirstone" migrate --db "sqlite:$CEIL" >/dev/null
sqlite3 "$CEIL" "DELETE FROM store_state; DELETE FROM audit_event; DELETE FROM audit_head;" >/dev/null
{
  echo "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
  echo "ATTACH '$DB' AS src;"
  echo "BEGIN IMMEDIATE;"
  for t in $tables audit_head; do echo "INSERT INTO main.$t SELECT * FROM src.$t;"; done
  echo "INSERT INTO main.idx_fulltext (rowid, narrative, content) SELECT rowid, narrative, content FROM src.idx_fulltext;"
  # The audit log's key index (contentless: its terms are made again from the records).
  echo "INSERT INTO main.audit_key (rowid, k) SELECT seq, CASE WHEN patient <> '' THEN 'p' || hex(patient) ELSE '' END || ' ' || CASE WHEN entity <> '' AND substr(entity, 1, 8) <> 'Patient/' THEN 'e' || hex(entity) ELSE '' END FROM src.audit_event WHERE patient <> '' OR (entity <> '' AND substr(entity, 1, 8) <> 'Patient/');"
  echo "COMMIT;"
} >"$WORK/import-ceiling.sql"
c0=$(date +%s%N)
sqlite3 "$CEIL" <"$WORK/import-ceiling.sql" >/dev/null
c1=$(date +%s%N)
ceiling_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
copied=$(sqlite3 "$CEIL" "SELECT count(*) FROM resource")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%d", n / s; else print "n/a" }'; }
import_rate=$(rate "$resources" "$import_s")
ceiling_rate=$(rate "$copied" "$ceiling_s")
ratio=$(awk -v a="$import_rate" -v b="$ceiling_rate" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')

out="bench/results/$(date +%F)-import.md"
{
  echo "# Import, $(date +%F)"
  echo
  echo "Command: \`${FILES:+FILES=$FILES }make bench-import\` (bench/import.sh)."
  echo "Machine: $(nproc) cores. Load average before: $load_before; after: $load_after."
  echo "Data: $count files of $(basename "$DATA") (transaction Bundles, .json.bz2), hospital and"
  echo "practitioner files first; a fresh SQLite store (WAL, synchronous=NORMAL), every search"
  echo "parameter and the full-text index written, the import's audit record."
  echo
  echo "| run | resources | seconds | resources/s | ratio to ceiling |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| fhirstone import | $resources | $import_s | $import_rate | $ratio |"
  echo "| ceiling: the same rows copied by SQLite | $copied | $ceiling_s | $ceiling_rate | 1.00 |"
  echo
  echo "Rows per run: $index_rows (resources, history, audit and index rows) plus $resources"
  echo "full-text rows. Import's summary: $summary"
} >"$out"
cat "$out"
