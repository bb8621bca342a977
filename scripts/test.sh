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
# Two runs: every suite but the fault tests (in parallel), then the fault tests alone. They run the
# whole mesh as processes with up to 1,000 sidecars and load both cores, which would starve the
# timing-sensitive suites (lease TTLs of a second or two) if they ran beside them.
set +e
swift test --skip-build --skip FaultTests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
swift test --skip-build --filter FaultTests 2>&1 | tee -a "$log"
faults=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] && status=$faults
if [ "$status" = 0 ]; then
  count=$(sed -n 's/.*Test run with \([0-9][0-9]*\) tests\{0,1\} in .* passed.*/\1/p' "$log" | awk '{ total += $1 } END { print total }')
  [ -n "$count" ] && echo "tests: $count passed, 0 failed"
  echo "fault figures:"
  grep '^fault: ' "$log" || true
fi
exit "$status"
