#!/usr/bin/env bash
# End-to-end browser test of the sandbox (`fhirstone serve --demo`): the launcher, the simulated
# EHR, the sign-in, patient picker and consent pages, and the sample app at /apps/vitals/, in
# headless Debian Chromium driven by playwright-core. Each step saves a screenshot.
# Usage: run_sandbox.sh PATH/TO/fhirstone
# Screenshots go to $E2E_ARTIFACTS, else to ./e2e-artifacts/sandbox (the current folder: under
# ctest, build/release/tests).
set -euo pipefail

die() { echo "e2e-sandbox: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: run_sandbox.sh PATH/TO/fhirstone"
bin=$(realpath "$1")
[ -x "$bin" ] || die "not an executable: $1"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chromium_bin=${CHROMIUM:-/usr/bin/chromium}
artifacts=${E2E_ARTIFACTS:-$(pwd)/e2e-artifacts/sandbox}

command -v node > /dev/null || die "node is missing (tools/install-deps.sh test installs nodejs npm)"
command -v npm > /dev/null || die "npm is missing (tools/install-deps.sh test installs nodejs npm)"
[ -x "$chromium_bin" ] || die "$chromium_bin is missing (tools/install-deps.sh test installs chromium)"

# npm dependencies (playwright-core) from package-lock.json; never a browser download.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  echo "e2e-sandbox: npm ci"
  (cd "$here" && npm ci --no-audit --no-fund) || die "npm ci failed"
fi

# The screenshots of an earlier run go; other files in the folder stay.
mkdir -p "$artifacts"
artifacts=$(realpath "$artifacts")
rm -f "$artifacts"/[0-9][0-9]-*.png

work=$(mktemp -d "${TMPDIR:-/tmp}/fhirstone-e2e-sandbox.XXXXXX")
server_pid=""
node_pid=""
cleanup() {
  local rc=$?
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2> /dev/null; then
    kill "$node_pid" 2> /dev/null || true
    wait "$node_pid" 2> /dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2> /dev/null; then
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  if [ $rc -ne 0 ]; then
    echo "===== e2e-sandbox FAILED (exit $rc); server log: =====" >&2
    cat "$work/server.log" >&2 2> /dev/null || echo "(no server log)" >&2
    echo "===== end of server log =====" >&2
  fi
  echo "e2e-sandbox: screenshots in $artifacts"
  # The browser may still be writing its profile for a moment after a kill.
  for _ in $(seq 1 20); do
    rm -rf "$work" 2> /dev/null && break
    sleep 0.3
  done
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
