# Shared by generate-protos.sh and check-protos.sh. Expects $tools, $root and XDS_PROTOS_VERSION.

# Builds the stripped FileDescriptorSet of the Envoy API at $1 from the pinned xds-protos wheel.
# Two virtualenvs: one with xds-protos (collect), one with protobuf alone (strip), so that the
# annotation extensions are unknown when stripping (scripts/envoy-api/descriptors.py says why).
build_descriptor_set() {
  local out=$1 raw="$tools/envoy-api-raw.pb"
  if [ ! -x "$tools/xds-venv/bin/python" ]; then
    python3 -m venv "$tools/xds-venv"
  fi
  "$tools/xds-venv/bin/pip" install -q --disable-pip-version-check "xds-protos==$XDS_PROTOS_VERSION"
  if [ ! -x "$tools/strip-venv/bin/python" ]; then
    python3 -m venv "$tools/strip-venv"
  fi
  local protobuf_version
  protobuf_version=$("$tools/xds-venv/bin/python" -c 'import google.protobuf as p; print(p.__version__)')
  "$tools/strip-venv/bin/pip" install -q --disable-pip-version-check "protobuf==$protobuf_version"
  (cd "$tools" && "$tools/xds-venv/bin/python" "$root/scripts/envoy-api/descriptors.py" collect "$raw")
  (cd "$tools" && "$tools/strip-venv/bin/python" "$root/scripts/envoy-api/descriptors.py" strip "$raw" "$out")
}

# Prints the manifest: pinned inputs, the descriptor set's digest, and every generated file's digest.
write_manifest() {
  local root=$1 descriptor_set=$2
  echo "# Written by scripts/generate-protos.sh; verified by scripts/check-protos.sh. Do not edit."
  echo "xds-protos $XDS_PROTOS_VERSION"
  echo "swift-protobuf $SWIFT_PROTOBUF_VERSION"
  echo "grpc-swift-protobuf $GRPC_SWIFT_PROTOBUF_VERSION"
  echo "descriptor-set $(sha256sum < "$descriptor_set" | cut -d' ' -f1)"
  (cd "$root" && find Protos Sources/EnvoyAPI/Generated Sources/Shared/Generated -type f \
      \( -name '*.swift' -o -name '*.proto' \) | LC_ALL=C sort | xargs sha256sum)
}
