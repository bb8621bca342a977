#!/usr/bin/env bash
# Runs the local demo on a fresh machine: two source clusters merged into one mesh view, with the
# embedded store (no Kubernetes, no Redis). Extra arguments go to `legation demo` (see --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" >&2
swift build --product legation >&2
exec "$root/.build/debug/legation" demo "$@"
