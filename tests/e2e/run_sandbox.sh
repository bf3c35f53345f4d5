#!/usr/bin/env bash
# End-to-end browser test of the sandbox (`fhirstone serve --demo`): the launcher, the simulated
# EHR, the sign-in, patient picker and consent pages, and the sample app at /apps/vitals/, in
# headless Debian Chromium driven by playwright-core. Each step saves a screenshot.
# Usage: run_sandbox.sh PATH/TO/fhirstone
# Screenshots go to $E2E_ARTIFACTS, else to ./e2e-artifacts/sandbox (the current folder: under
# ctest, build/release/tests).
set -euo pipefail

NAME=e2e-sandbox
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
artifacts=${E2E_ARTIFACTS:-$(pwd)/e2e-artifacts/sandbox}
e2e_on_exit() { echo "e2e-sandbox: screenshots in $artifacts"; }
e2e_setup "$@"

# The screenshots of an earlier run go; other files in the folder stay.
mkdir -p "$artifacts"
artifacts=$(realpath "$artifacts")
rm -f "$artifacts"/[0-9][0-9]-*.png

port=$(node -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
[ -n "$port" ] || die "could not pick a free port"
base="http://127.0.0.1:$port"

# Demo mode: on first start it loads synthetic patients, adds demo users (printed with their
# passwords on stdout) and registers the sample app `vitals`.
"$bin" serve --demo --demo-patients 6 --listen "127.0.0.1:$port" --base-url "$base" \
  --db "sqlite:$work/db.sqlite" --threads 2 > "$work/server.log" 2>&1 &
server_pid=$!

# Ready when the FHIR base answers and the demo users are printed.
ready=""
for _ in $(seq 1 600); do
  kill -0 "$server_pid" 2> /dev/null || die "the server exited at start"
  if grep -q '^Demo users' "$work/server.log" && node -e '
      fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));' \
      "$base/fhir/metadata" 2> /dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || die "the server did not answer $base/fhir/metadata with its demo users in 60 s"
sleep 0.2  # the rest of the demo users' lines

echo "e2e-sandbox: server $base (pid $server_pid)"
cd "$here"
# In the background, so that a TERM (ctest's timeout) reaches the traps at once.
SANDBOX_URL="$base" SERVER_LOG="$work/server.log" E2E_ARTIFACTS="$artifacts" \
  CHROMIUM="$chromium_bin" E2E_TMPDIR="$work" \
  node --test --test-reporter=spec --test-concurrency=1 sandbox.test.mjs &
node_pid=$!
wait "$node_pid"
echo "e2e-sandbox: passed"
