#!/usr/bin/env bash
# fhirstone generate: what it makes conforms to the US Core 6.1.0 profiles that apply
# (tests/import/us_core_check.py: structure, bindings and invariants), for 30 patients of two
# seeds.
# Usage: generate_us_core_test.sh PATH/TO/fhirstone PATH/TO/fhirpath_eval US_CORE_PACKAGE
#        FHIR_DEFINITIONS_DIR
set -euo pipefail
bin=$1 evaluator=$2 package=$3 definitions=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate --patients 20 --seed 7 --out "$work/a" >/dev/null
"$bin" generate --patients 10 --seed 8 --out "$work/b" >/dev/null
python3 "$here/us_core_check.py" --fhirpath="$evaluator" "$package" "$definitions" \
  "$work"/a/*.json "$work"/b/*.json
# The checker itself reports what breaks a profile.
python3 "$here/us_core_check_test.py" "$evaluator" "$package" "$definitions" \
  "$work/a/patient-000001.json"
