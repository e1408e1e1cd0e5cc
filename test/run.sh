#!/usr/bin/env bash
# The project's test command (`npm test`): makes sure the programs the tests
# drive are installed, then typechecks and runs every vitest suite on
# Node 22, and ends with one line: "N passed, N failed".
# Arguments go to vitest (`npm test -- test/copy.test.ts`).

set -euo pipefail
cd "$(dirname "$0")/.."

packages="docker-registry skopeo apache2-utils openssl"
install="apt-get update && apt-get install -y $packages"

# the programs the test harness starts
missing=()
for program in docker-registry skopeo htpasswd openssl; do
  if ! command -v "$program" >/dev/null 2>&1 && [ ! -x "/usr/bin/$program" ]
  then
    missing+=("$program")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "The tests need: ${missing[*]} (packages: $packages)." >&2
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing them with: $install" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $packages
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "Installing them with: sudo $install" >&2
    sudo -n apt-get update
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y $packages
  else
    echo "Install them first, as root: $install" >&2
    exit 1
  fi
fi

# npm puts node_modules/.bin first; do the same when run by hand
export PATH="$PWD/node_modules/.bin:$PATH"
node_version="$(node --version 2>/dev/null || echo none)"
case "$node_version" in
  v22.*) ;;
  *)
    echo "The tests need Node 22 from the npm package node@22, found" \
      "$node_version at $(command -v node || echo nowhere)." >&2
    echo "Run 'npm ci' (without --ignore-scripts) to install it." >&2
    exit 1
    ;;
esac

results="$(mktemp -t ghcr-backup-vitest-XXXXXX.json)"
trap 'rm -f "$results"' EXIT

typecheck=0
npm run --silent typecheck || typecheck=$?

vitest_status=0
vitest run --reporter=default --reporter=json \
  --outputFile.json="$results" "$@" || vitest_status=$?

# counts from the json report (a file that broke before its tests counts
# as one failure); zero when vitest could not write one
read -r passed failed broken < <(node -e '
  const fs = require("node:fs");
  let r = {};
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
  const files = (r.testResults ?? [])
    .filter((f) => f.status === "failed" && f.assertionResults?.length === 0);
  const failed = (r.numFailedTests ?? 0) + files.length;
  console.log(r.numPassedTests ?? 0, failed, files.length);
' "$results")

if [ "$typecheck" -ne 0 ]; then
  echo "typecheck failed (npm run typecheck)"
fi
if [ "$broken" -gt 0 ]; then
  echo "$broken test file(s) failed before running any test"
fi
echo "$passed passed, $failed failed"

if [ "$typecheck" -ne 0 ] || [ "$vitest_status" -ne 0 ] ||
   [ "$failed" -gt 0 ] || [ "$broken" -gt 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
