#!/usr/bin/env python3
"""Builds the FileDescriptorSet that Legation's generated Envoy API comes from.

The PyPI package `xds-protos` ships Envoy's data-plane-api as generated Python modules but no `.proto`
files. Each module registers its serialized FileDescriptorProto, so importing the roots and walking their
dependencies gives a complete FileDescriptorSet that `protoc --descriptor_set_in` accepts.

Two sub-commands, meant to run in two separate processes:

  collect OUT   import the roots (with every annotation extension loaded, as xds-protos does) and write
                the raw closure, dependencies first.
  strip IN OUT  in a process that never imports the annotation modules, drop the annotation-only files
                (validate, udpa/xds/envoy annotations) from the set and from every import list, and
                discard the extension values they left in options. Run in the same process as `collect`,
                the extensions would parse as known fields and nothing would be removed.
"""
import sys

# The Envoy API Legation serves: ADS and the per-type services, and every resource type it builds.
ROOTS = [
    "envoy/service/discovery/v3/ads.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/service/cluster/v3/cds.proto",
    "envoy/service/endpoint/v3/eds.proto",
    "envoy/service/listener/v3/lds.proto",
    "envoy/service/route/v3/rds.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
]

# Files that only declare option extensions (annotations); nothing on the wire refers to them.
ANNOTATION_PREFIXES = (
    "validate/",
    "udpa/annotations/",
    "xds/annotations/",
    "envoy/annotations/",
)


def is_annotation(name):
    return name.startswith(ANNOTATION_PREFIXES)


def collect(out_path):
    import importlib
    from google.protobuf import descriptor_pb2

    ordered, seen = [], set()

    def visit(file_descriptor):
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        ordered.append(proto)

    for root in ROOTS:
        module = importlib.import_module(root[: -len(".proto")].replace("/", ".") + "_pb2")
        visit(module.DESCRIPTOR)

    descriptor_set = descriptor_pb2.FileDescriptorSet(file=ordered)
    with open(out_path, "wb") as out:
        out.write(descriptor_set.SerializeToString(deterministic=True))
    print(f"collected {len(ordered)} files", file=sys.stderr)


def strip(in_path, out_path):
    from google.protobuf import descriptor_pb2

    for module in list(sys.modules):
        if module.split(".")[0] in ("validate", "udpa", "xds", "envoy"):
            raise SystemExit(f"strip must run without annotation modules imported (found {module})")

    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(in_path, "rb") as raw:
        descriptor_set.ParseFromString(raw.read())

    kept = []
    for proto in descriptor_set.file:
        if is_annotation(proto.name):
            continue
        old_dependencies = list(proto.dependency)
        public = {old_dependencies[i] for i in proto.public_dependency}
        weak = {old_dependencies[i] for i in proto.weak_dependency}
        new_dependencies = [d for d in old_dependencies if not is_annotation(d)]
        del proto.dependency[:]
        proto.dependency.extend(new_dependencies)
        del proto.public_dependency[:]
        proto.public_dependency.extend(i for i, d in enumerate(new_dependencies) if d in public)
        del proto.weak_dependency[:]
        proto.weak_dependency.extend(i for i, d in enumerate(new_dependencies) if d in weak)
        # The annotation extensions are unknown here: this drops exactly them.
        proto.DiscardUnknownFields()
        kept.append(proto)

    stripped = descriptor_pb2.FileDescriptorSet(file=kept)
    with open(out_path, "wb") as out:
        out.write(stripped.SerializeToString(deterministic=True))
    print(f"kept {len(kept)} of {len(descriptor_set.file)} files", file=sys.stderr)


def names(in_path):
    """Prints the files to generate Swift for: everything but protobuf's well-known types."""
    from google.protobuf import descriptor_pb2

    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(in_path, "rb") as raw:
        descriptor_set.ParseFromString(raw.read())
    for proto in descriptor_set.file:
        if not proto.name.startswith("google/protobuf/"):
            print(proto.name)


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "collect" and len(args) == 1:
        collect(*args)
    elif command == "strip" and len(args) == 2:
        strip(*args)
    elif command == "names" and len(args) == 1:
        names(*args)
    else:
        raise SystemExit(__doc__)
