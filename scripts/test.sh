#!/usr/bin/env bash
# Runs Legation's tests on a fresh machine: installs what is missing, checks the generated code against
# its pinned inputs, builds, and runs every suite (unit, contract against real redis-server with TLS and
# ACLs, and the rest). The README's test command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" --e2e
"$root/scripts/check-protos.sh"
started=$(date +%s)
"$root/scripts/build.sh" debug
echo "build: $(( $(date +%s) - started )) s"
export LEGATION_E2E_VENV="$root/.venv-e2e"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift test --skip-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 0 ]; then
  count=$(sed -n 's/.*Test run with \([0-9][0-9]*\) tests\{0,1\} in .* passed.*/\1/p' "$log" | tail -1)
  [ -n "$count" ] && echo "tests: $count passed, 0 failed"
fi
exit "$status"
