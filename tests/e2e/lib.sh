# Shared by the e2e runners (sourced): checks the tools, installs the npm dependencies from
# package-lock.json (never a browser download), makes the work folder and stops the server and
# the node process on exit. Set NAME before sourcing; call e2e_setup BINARY.
# After e2e_setup: $bin, $here, $chromium_bin, $work; set $server_pid and $node_pid as they start.
# An optional e2e_on_exit function runs at the end of the cleanup.

die() { echo "$NAME: $*" >&2; exit 1; }

e2e_setup() {
  [ $# -eq 1 ] || die "usage: $(basename "$0") PATH/TO/fhirstone"
  bin=$(realpath "$1")
  [ -x "$bin" ] || die "not an executable: $1"
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  chromium_bin=${CHROMIUM:-/usr/bin/chromium}
  command -v node > /dev/null || die "node is missing (tools/install-deps.sh test installs nodejs npm)"
  command -v npm > /dev/null || die "npm is missing (tools/install-deps.sh test installs nodejs npm)"
  [ -x "$chromium_bin" ] || die "$chromium_bin is missing (tools/install-deps.sh test installs chromium)"

  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  local stamp="$here/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
    echo "$NAME: npm ci"
    (cd "$here" && npm ci --no-audit --no-fund) || die "npm ci failed"
  fi

  work=$(mktemp -d "${TMPDIR:-/tmp}/fhirstone-$NAME.XXXXXX")
  server_pid=""
  node_pid=""
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM
}

e2e_stop() {
  if [ -n "$1" ] && kill -0 "$1" 2> /dev/null; then
    kill "$1" 2> /dev/null || true
    wait "$1" 2> /dev/null || true
  fi
}

e2e_cleanup() {
  local rc=$?
  e2e_stop "$node_pid"
  e2e_stop "$server_pid"
  if [ $rc -ne 0 ]; then
    echo "===== $NAME FAILED (exit $rc); server log: =====" >&2
    cat "$work/server.log" >&2 2> /dev/null || echo "(no server log)" >&2
    echo "===== end of server log =====" >&2
  fi
  if declare -F e2e_on_exit > /dev/null; then e2e_on_exit; fi
  # The browser may still be writing its profile for a moment after a kill.
  for _ in $(seq 1 20); do
    rm -rf "$work" 2> /dev/null && break
    sleep 0.3
  done
  exit $rc
}
