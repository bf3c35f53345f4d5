#!/usr/bin/env bash
# End-to-end browser test of SMART App Launch with SMART's own JavaScript client (fhirclient):
# a standalone launch with PKCE and an EHR launch against a real fhirstone, in headless Debian
# Chromium driven by playwright-core. Usage: run.sh PATH/TO/fhirstone
set -euo pipefail

NAME=e2e
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_setup "$@"

# Two free loopback ports: the server's and the app's (another origin, so CORS is exercised).
read -r fhir_port app_port < <(node -e '
  const net = require("net");
  const take = () => new Promise((ok) => { const s = net.createServer();
    s.listen(0, "127.0.0.1", () => ok(s)); });
  Promise.all([take(), take()]).then((ss) => {
    console.log(ss.map((s) => s.address().port).join(" "));
    ss.forEach((s) => s.close());
  });')
[ -n "$fhir_port" ] && [ -n "$app_port" ] || die "could not pick free ports"
base="http://127.0.0.1:$fhir_port"
app="http://127.0.0.1:$app_port"
db="sqlite:$work/fhirstone.db"

# Data: a patient, an encounter, an observation and the practitioner who launches.
cat > "$work/data.json" << 'EOF'
{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {
      "resource": {
        "resourceType": "Patient", "id": "e2e-1",
        "name": [{"family": "Lovelace", "given": ["Ada"]}],
        "gender": "female", "birthDate": "1985-12-10"
      },
      "request": {"method": "PUT", "url": "Patient/e2e-1"}
    },
    {
      "resource": {
        "resourceType": "Practitioner", "id": "e2e-pr-1",
        "name": [{"family": "Smith", "given": ["John"], "prefix": ["Dr."]}]
      },
      "request": {"method": "PUT", "url": "Practitioner/e2e-pr-1"}
    },
    {
      "resource": {
        "resourceType": "Encounter", "id": "e2e-enc-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/e2e-1"},
        "participant": [{"individual": {"reference": "Practitioner/e2e-pr-1"}}]
      },
      "request": {"method": "PUT", "url": "Encounter/e2e-enc-1"}
    },
    {
      "resource": {
        "resourceType": "Observation", "id": "e2e-obs-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}]},
        "subject": {"reference": "Patient/e2e-1"},
        "encounter": {"reference": "Encounter/e2e-enc-1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": 165, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}
      },
      "request": {"method": "PUT", "url": "Observation/e2e-obs-1"}
    }
  ]
}
EOF

# Every CLI setup step runs before serve (the EHR launch value is made by the test itself).
"$bin" import --db "$db" --base-url "$base" "$work/data.json"
"$bin" user add --db "$db" --username ada --password 'ada-password-1' \
  --fhir-user Patient/e2e-1 --display "Ada Lovelace"
"$bin" user add --db "$db" --username drsmith --password 'smith-password-1' \
  --fhir-user Practitioner/e2e-pr-1 --display "Dr. John Smith"
"$bin" client add --db "$db" --name "E2E App" --type public \
  --redirect-uri "$app/index.html" --client-id e2e-app \
  --scopes "openid fhirUser launch launch/patient offline_access patient/*.rs user/*.rs"

"$bin" serve --listen "127.0.0.1:$fhir_port" --base-url "$base" --db "$db" --threads 2 \
  > "$work/server.log" 2>&1 &
server_pid=$!

# Ready when the SMART configuration answers.
for _ in $(seq 1 100); do
  kill -0 "$server_pid" 2> /dev/null || die "the server exited at start"
  if node -e '
      fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));' \
      "$base/fhir/.well-known/smart-configuration" 2> /dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "${ready:-}" = 1 ] || die "the server did not answer $base/fhir/.well-known/smart-configuration"

echo "e2e: server $base (pid $server_pid), app $app"
cd "$here"
# In the background, so that a TERM (ctest's timeout) reaches the traps at once.
FHIRSTONE_BIN="$bin" FHIRSTONE_DB="$db" FHIR_PORT="$fhir_port" APP_PORT="$app_port" \
  CHROMIUM="$chromium_bin" E2E_TMPDIR="$work" node --test --test-reporter=spec smart_launch.test.mjs &
node_pid=$!
wait "$node_pid"
echo "e2e: passed"
