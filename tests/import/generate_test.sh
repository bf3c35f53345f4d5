#!/usr/bin/env bash
# fhirstone generate: the same options give byte-identical files; --load puts every generated
# resource in the store through import (all valid). Usage: generate_test.sh PATH/TO/fhirstone
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate --patients 5 --seed 42 --out "$work/a"
"$bin" generate --patients 5 --seed 42 --out "$work/b"
diff -r "$work/a" "$work/b" > /dev/null || { echo "same seed, different output"; exit 1; }
"$bin" generate --patients 5 --seed 43 --out "$work/c"
if diff -r "$work/a" "$work/c" > /dev/null; then echo "another seed, same output"; exit 1; fi
[ "$(ls "$work/a" | wc -l)" = 6 ] || { echo "expected 6 bundles"; ls "$work/a"; exit 1; }
"$bin" generate --patients 5 --seed 42 --load --db "sqlite:$work/db.sqlite" | tee "$work/out"
grep -q "0 bundles failed" "$work/out"
patients=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM resource WHERE type = 'Patient'")
[ "$patients" = 5 ] || { echo "expected 5 patients, got $patients"; exit 1; }
expected=$(python3 -c "
import json, glob
print(sum(len(json.load(open(f)).get('entry', [])) for f in glob.glob('$work/a/*.json')))")
actual=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM resource")
[ "$expected" = "$actual" ] || { echo "generated $expected resources, stored $actual"; exit 1; }
echo "generate test passed: $actual resources"
