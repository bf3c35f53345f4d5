#!/usr/bin/env bash
# fhirstone import: loads Synthea small-10 completely (exact resource counts, computed here from
# the files themselves; each file given twice is loaded once), skips everything on a second run,
# and reports a broken file while the rest still loads.
# Usage: import_test.sh PATH/TO/fhirstone DATA_DIR
set -euo pipefail
bin=$1 data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

expected=$(python3 - "$data" <<'PY'
import json, glob, sys, collections
counts = collections.Counter()
for f in glob.glob(sys.argv[1] + "/*.json"):
    for e in json.load(open(f))["entry"]:
        counts[e["resource"]["resourceType"]] += 1
print("\n".join(f"{t}|{n}" for t, n in sorted(counts.items())))
PY
)
# The folder named twice: each document comes twice, side by side, to the two loading workers;
# a copy waits for the load of the other and is skipped.
"$bin" import --db "sqlite:$work/db.sqlite" "$data" "$data" > "$work/out1" 2>&1
cat "$work/out1"
grep -q "0 failed" "$work/out1"
actual=$(sqlite3 "$work/db.sqlite" "SELECT type, count(*) FROM resource WHERE deleted = 0 GROUP BY type ORDER BY type")
if [ "$actual" != "$expected" ]; then
  echo "resource counts differ"; diff <(echo "$expected") <(echo "$actual"); exit 1
fi
echo "exact counts: $(echo "$actual" | awk -F'|' '{s += $2} END {print s}') resources in $(echo "$actual" | wc -l) types"

# References were rewritten: every Observation's subject is a local Patient that exists.
dangling=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM idx_reference r WHERE r.param = 'Observation.subject' AND NOT EXISTS (SELECT 1 FROM resource p WHERE p.type = r.target_type AND p.id = r.target_id)")
[ "$dangling" = 0 ] || { echo "$dangling Observation subjects do not resolve"; exit 1; }

"$bin" import --db "sqlite:$work/db.sqlite" "$data" > "$work/out2" 2>&1
cat "$work/out2"
grep -q "imported 0 documents" "$work/out2"
again=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM resource")
[ "$again" = "$(echo "$actual" | awk -F'|' '{s += $2} END {print s}')" ] || { echo "the second run wrote"; exit 1; }

# A broken file is reported; the good one beside it loads; the exit status says so.
mkdir "$work/mixed"
echo '{"resourceType":"Bundle","type":"transaction","entry":[' > "$work/mixed/broken.json"
printf '%s\n%s\n' '{"resourceType":"Patient","id":"nd1"}' '{"resourceType":"Patient","id":"nd2","gender":"female"}' > "$work/mixed/good.ndjson"
status=0
"$bin" import --db "sqlite:$work/db.sqlite" "$work/mixed" > "$work/out3" 2>&1 || status=$?
cat "$work/out3"
[ "$status" = 1 ] || { echo "expected exit status 1, got $status"; exit 1; }
grep -q "broken.json" "$work/out3"
[ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM resource WHERE type = 'Patient' AND id IN ('nd1','nd2')")" = 2 ]
# A transaction Bundle's ledger row commits with its resources (a batch's entries commit one by
# one; its row follows them): when the row cannot be written,
# nothing of the document is stored (a run stopped between the two could otherwise load it
# again, its POST entries making duplicates). Then, once rows can be written, it loads once.
first=$(python3 -c 'import json,sys
print(next(f for f in sorted(sys.argv[1:]) if json.load(open(f))["type"] == "transaction"))' "$data"/*.json)
mkdir "$work/one" "$work/batches"
cp "$first" "$work/one/"
python3 -c 'import json,sys,shutil
for f in sys.argv[2:]:
    if json.load(open(f))["type"] != "transaction": shutil.copy(f, sys.argv[1])' "$work/batches" "$data"/*.json
# The hospitals and practitioners its conditional references name.
"$bin" import --db "sqlite:$work/atomic.sqlite" "$work/batches" > /dev/null 2>&1
sqlite3 "$work/atomic.sqlite" "CREATE TRIGGER refuse_rows BEFORE INSERT ON import_ledger BEGIN SELECT RAISE(ABORT, 'ledger refused'); END;"
before=$(sqlite3 "$work/atomic.sqlite" "SELECT count(*) FROM resource")
status=0
"$bin" import --db "sqlite:$work/atomic.sqlite" "$work/one" > "$work/out4" 2>&1 || status=$?
cat "$work/out4"
[ "$status" = 1 ] || { echo "expected exit status 1, got $status"; exit 1; }
[ "$(sqlite3 "$work/atomic.sqlite" "SELECT count(*) FROM resource")" = "$before" ] ||
  { echo "a document was stored without its ledger row"; exit 1; }
sqlite3 "$work/atomic.sqlite" "DROP TRIGGER refuse_rows"
# Another run recording the document between this run's check and its write (a trigger puts the
# row in first): the transaction rolls back, and the document counts as skipped.
sqlite3 "$work/atomic.sqlite" "CREATE TRIGGER other_run BEFORE INSERT ON import_ledger WHEN NEW.name <> 'other' BEGIN INSERT INTO import_ledger (hash, name, resources, loaded_at) VALUES (NEW.hash, 'other', 0, 'now'); END;"
"$bin" import --db "sqlite:$work/atomic.sqlite" "$work/one" > "$work/out6" 2>&1
cat "$work/out6"
grep -q "imported 0 documents (0 resources).*1 skipped as already loaded, 0 failed" "$work/out6"
[ "$(sqlite3 "$work/atomic.sqlite" "SELECT count(*) FROM resource")" = "$before" ] ||
  { echo "a document loaded meanwhile by another run was stored again"; exit 1; }
sqlite3 "$work/atomic.sqlite" "DROP TRIGGER other_run"
"$bin" import --db "sqlite:$work/atomic.sqlite" "$work/one" "$work/one" > "$work/out5" 2>&1
cat "$work/out5"
grep -q "imported 1 documents" "$work/out5"
entries=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["entry"]))' "$first")
[ "$(sqlite3 "$work/atomic.sqlite" "SELECT count(*) FROM resource")" = "$((before + entries))" ] ||
  { echo "the document did not load exactly once"; exit 1; }
[ "$(sqlite3 "$work/atomic.sqlite" "SELECT resources FROM import_ledger WHERE name LIKE '%$(basename "$first")'")" = "$entries" ] ||
  { echo "the ledger row is missing"; exit 1; }
echo "import test passed"
