#!/usr/bin/env bash
# Regenerates the committed protobuf code from pinned inputs:
#   Sources/EnvoyAPI/Generated  Envoy's v3 xDS API, from the PyPI package xds-protos (descriptors only)
#   Sources/Shared/Generated    Legation's own Redis records, from Protos/legation/**/*.proto
# and writes Sources/EnvoyAPI/Generated/MANIFEST, which scripts/check-protos.sh verifies.
#
# Needs: python3 (venv), protoc (Debian's protobuf-compiler), the Swift toolchain. The protoc plugins
# are built once from the mirrored packages into .build-tools/ (about two minutes in release mode);
# set PROTOC_GEN_SWIFT / PROTOC_GEN_GRPC_SWIFT to use plugins you already have.
set -euo pipefail

XDS_PROTOS_VERSION=1.85.0
SWIFT_PROTOBUF_VERSION=1.39.0
GRPC_SWIFT_PROTOBUF_VERSION=2.4.1

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.build-tools"
out_envoy="${OUT_ENVOY:-$root/Sources/EnvoyAPI/Generated}"
out_shared="${OUT_SHARED:-$root/Sources/Shared/Generated}"
mkdir -p "$tools"

# shellcheck source=scripts/envoy-api/descriptor-set.sh
source "$root/scripts/envoy-api/descriptor-set.sh"
descriptor_set="$tools/envoy-api.pb"
build_descriptor_set "$descriptor_set"

build_plugin() { # repo tag product
  local dir="$tools/$(basename "$1")-$2"
  if [ ! -x "$dir/.build/release/$3" ]; then
    rm -rf "$dir"
    git -c advice.detachedHead=false clone -q --depth 1 --branch "$2" "https://github.com/$1" "$dir"
    (cd "$dir" && swift build -c release --product "$3" >&2)
  fi
  echo "$dir/.build/release/$3"
}
PROTOC_GEN_SWIFT=${PROTOC_GEN_SWIFT:-$(build_plugin apple/swift-protobuf "$SWIFT_PROTOBUF_VERSION" protoc-gen-swift)}
PROTOC_GEN_GRPC_SWIFT=${PROTOC_GEN_GRPC_SWIFT:-$(build_plugin grpc/grpc-swift-protobuf "$GRPC_SWIFT_PROTOBUF_VERSION" protoc-gen-grpc-swift-2)}

mapfile -t files < <("$tools/strip-venv/bin/python" "$root/scripts/envoy-api/descriptors.py" names "$descriptor_set")
mapfile -t services < <(printf '%s\n' "${files[@]}" | grep '^envoy/service/')

rm -rf "$out_envoy" "$out_shared"
mkdir -p "$out_envoy" "$out_shared"
protoc --descriptor_set_in="$descriptor_set" \
  --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
  --swift_opt=FileNaming=PathToUnderscores,Visibility=Public \
  --swift_out="$out_envoy" "${files[@]}"
protoc --descriptor_set_in="$descriptor_set" \
  --plugin=protoc-gen-grpc-swift-2="$PROTOC_GEN_GRPC_SWIFT" \
  --grpc-swift-2_opt=FileNaming=PathToUnderscores,Visibility=Public,Client=true,Server=true \
  --grpc-swift-2_out="$out_envoy" "${services[@]}"

mapfile -t own < <(cd "$root/Protos" && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd "$root/Protos" && protoc --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
  --swift_opt=FileNaming=PathToUnderscores,Visibility=Public \
  --swift_out="$out_shared" "${own[@]}")

write_manifest "$root" "$descriptor_set" > "$out_envoy/MANIFEST"
echo "generated $(ls "$out_envoy" | grep -c '\.swift$') Envoy API files and $(ls "$out_shared" | grep -c '\.swift$') Legation files" >&2
