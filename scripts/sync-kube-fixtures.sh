#!/usr/bin/env bash
# Copies the workspace's real Kubernetes API fixtures (shared/fixtures/kube, beside this repository)
# into Tests/Fixtures/kube, so that a clone of the repository alone can run every test.
# SOURCES.md there says where each file came from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
from="${1:-$root/../shared/fixtures/kube}"
[ -d "$from" ] || { echo "no fixtures at $from" >&2; exit 1; }
rm -rf "$root/Tests/Fixtures/kube"
mkdir -p "$root/Tests/Fixtures"
cp -r "$from" "$root/Tests/Fixtures/kube"
chmod -R u+w "$root/Tests/Fixtures/kube"
echo "copied $(find "$root/Tests/Fixtures/kube" -type f | wc -l) fixture files from $from"
