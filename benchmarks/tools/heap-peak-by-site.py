#!/usr/bin/env python3
"""Where the xds-server's heap is at its peak, by allocation site.

Reads a heaptrack recording, takes each allocation stack's share of the peak, and adds it up under
the innermost frame that is Legation's or SwiftNIO's own code (not the standard library, not
ByteBuffer's internals), with its caller beside it for context. Needs heaptrack_print and swift
(for `swift demangle`).

    heaptrack -o /tmp/ht/legation .build/release/legation xds-server ...   # or, through the harness,
    # which stops its server by killing the server's process group: heaptrack gets a group of its own
    # (else the recording is cut off), and the server is asked to stop with SIGINT.
    printf '#!/bin/bash\\nsetsid heaptrack -o /tmp/ht/legation %s/.build/release/legation "$@" &\\ntrap "pkill -INT -x legation; exit 0" TERM\\nwhile true; do sleep 1; done\\n' "$PWD" > /tmp/ht-legation
    chmod +x /tmp/ht-legation
    .build/release/legation-bench fanout --streams 1000 --updates 5 --legation /tmp/ht-legation
    sleep 20   # heaptrack finishes writing after the server exits
    benchmarks/tools/heap-peak-by-site.py /tmp/ht/legation.zst [--top 30]

The harness's own CPU and RSS figures are meaningless in such a run (they measure heaptrack).
"""
import argparse
import collections
import subprocess
import sys
import tempfile

OWN = ("Server.", "SotW", "Delta", "XDS", "Wire", "HeldResources", "KnownVersions", "SortedNames", "Resource",
       "Stream", "HTTP2", "HPACK", "NIO", "Channel", "Handler", "Multiplexer")
INTERNAL = ("ByteBuffer", "specialized ByteBuffer", "static ByteBuffer", "specialized static ByteBuffer",
            "closure #1 in ByteBuffer", "specialized closure #1 in ByteBuffer", "ByteBufferAllocator",
            "specialized ByteBufferAllocator")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording")
    parser.add_argument("--top", type=int, default=30)
    arguments = parser.parse_args()
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as flamegraph:
        subprocess.run(["heaptrack_print", "-f", arguments.recording, "--flamegraph-cost-type", "peak",
                        "-F", flamegraph.name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = []
        for line in flamegraph:
            stack, _, cost = line.rstrip().rpartition(" ")
            rows.append((stack.split(";"), int(cost)))
    frames = sorted({frame for stack, _ in rows for frame in stack})
    demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(frames),
                               capture_output=True, text=True, check=True).stdout.split("\n")
    names = dict(zip(frames, demangled))
    total = 0
    sites = collections.Counter()
    for stack, cost in rows:
        total += cost
        innermost = [names.get(frame, frame) for frame in reversed(stack)]
        site = innermost[0][:100]
        for index, frame in enumerate(innermost):
            if any(key in frame for key in OWN) and not frame.startswith(INTERNAL):
                caller = innermost[index + 1][:60] if index + 1 < len(innermost) else ""
                site = f"{frame[:110]}  <-  {caller}"
                break
        sites[site] += cost
    print(f"peak heap {total / 1e6:.1f} MB")
    for site, cost in sites.most_common(arguments.top):
        print(f"{cost / 1000:9.0f} KB  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
