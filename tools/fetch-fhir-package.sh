#!/usr/bin/env bash
# Lays out the official FHIR R4 definitions and examples from the npm package
# hl7.fhir.r4.examples@4.0.1, for builds where ../shared/data is absent.
# Usage: tools/fetch-fhir-package.sh OUT_DIR   (writes OUT_DIR/definitions and OUT_DIR/examples)
set -euo pipefail
out=${1:?usage: fetch-fhir-package.sh OUT_DIR}
[ -f "$out/definitions/profiles-resources.json" ] && exit 0
command -v npm >/dev/null || { echo "npm is needed to fetch hl7.fhir.r4.examples" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent hl7.fhir.r4.examples@4.0.1 >/dev/null && tar xzf hl7.fhir.r4.examples-4.0.1.tgz)
mkdir -p "$out/definitions" "$out/examples"
cp "$tmp/package/Bundle-resources.json" "$out/definitions/profiles-resources.json"
cp "$tmp/package/Bundle-types.json" "$out/definitions/profiles-types.json"
cp "$tmp/package/Bundle-searchParams.json" "$out/definitions/search-parameters.json"
for f in "$tmp"/package/CompartmentDefinition-*.json; do
  name=$(basename "$f" .json)
  cp "$f" "$out/definitions/compartmentdefinition-${name#CompartmentDefinition-}.json"
done
