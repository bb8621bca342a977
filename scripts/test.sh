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
swift build --build-tests
echo "build: $(( $(date +%s) - started )) s"
export LEGATION_E2E_VENV="$root/.venv-e2e"
swift test --skip-build
