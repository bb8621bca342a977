#!/usr/bin/env bash
# The one build command. CI (scripts/test.sh) runs `debug`: every product and the tests. The container
# image (Dockerfile) runs `release`: the `legation` binary with the Swift runtime linked in statically,
# so the runtime image needs only libhiredis. A test (DeployTests) keeps the Dockerfile calling this.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-debug}" in
  # Every import must be of a declared dependency (Package.swift is the layout's rule book, docs/development.md).
  debug) swift build --build-tests --explicit-target-dependency-import-check error ;;
  release) swift build -c release --product legation --static-swift-stdlib ;;
  *) echo "usage: $0 [debug|release]" >&2; exit 2 ;;
esac
