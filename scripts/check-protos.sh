#!/usr/bin/env bash
# Checks that the committed generated code matches its pinned inputs (run by .ci/run).
#   default  rebuilds the Envoy descriptor set from the pinned xds-protos wheel and compares its digest,
#            then compares every generated file and .proto with the digests in the MANIFEST: catches a
#            changed input, a hand-edited generated file, or a .proto changed without regenerating.
#   --full   also rebuilds the protoc plugins (minutes) and regenerates into a scratch folder, then diffs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.build-tools"
manifest="$root/Sources/EnvoyAPI/Generated/MANIFEST"
mkdir -p "$tools"
XDS_PROTOS_VERSION=$(awk '$1 == "xds-protos" {print $2}' "$manifest")
SWIFT_PROTOBUF_VERSION=$(awk '$1 == "swift-protobuf" {print $2}' "$manifest")
GRPC_SWIFT_PROTOBUF_VERSION=$(awk '$1 == "grpc-swift-protobuf" {print $2}' "$manifest")
# shellcheck source=scripts/envoy-api/descriptor-set.sh
source "$root/scripts/envoy-api/descriptor-set.sh"

if [ "${1:-}" = "--full" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  OUT_ENVOY="$scratch/envoy" OUT_SHARED="$scratch/shared" "$root/scripts/generate-protos.sh"
  diff -r "$scratch/envoy" "$root/Sources/EnvoyAPI/Generated" -x MANIFEST
  diff -r "$scratch/shared" "$root/Sources/Shared/Generated"
  echo "generated code: regenerated from pinned inputs, identical"
  exit 0
fi

build_descriptor_set "$tools/envoy-api-check.pb" 2>/dev/null
if ! diff <(write_manifest "$root" "$tools/envoy-api-check.pb") "$manifest"; then
  echo "generated code drifted from its inputs: run scripts/generate-protos.sh and commit the result" >&2
  exit 1
fi
echo "generated code: MANIFEST matches xds-protos $XDS_PROTOS_VERSION and every generated file"
