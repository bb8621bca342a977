"""Proxyless gRPC peers for Legation's end-to-end tests (grpcio from .venv-e2e).

  proxyless.py serve NAME HOST PORT     a gRPC server whose /legation.test.Echo/Who answers NAME
  proxyless.py call TARGET COUNT        calls TARGET (e.g. xds:///echo.default:9090) COUNT times and
                                         prints one JSON object: {"answers": {name: count}, "errors": [...]}
The client resolves xds:/// targets through the xDS server named in $GRPC_XDS_BOOTSTRAP.
"""
import json
import sys
import time
from concurrent import futures

import grpc

METHOD = "/legation.test.Echo/Who"


def serve(name, host, port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: name.encode())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("legation.test.Echo", {"Who": handler}),))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def call(target, count):
    answers, errors = {}, []
    channel = grpc.insecure_channel(target)
    who = channel.unary_unary(METHOD)
    deadline = time.monotonic() + 60
    for _ in range(count):
        while True:
            try:
                answer = who(b"", timeout=10, wait_for_ready=True).decode()
                answers[answer] = answers.get(answer, 0) + 1
                break
            except grpc.RpcError as error:
                errors.append(f"{error.code().name}: {error.details()}")
                if time.monotonic() > deadline or len(errors) > 50:
                    print(json.dumps({"answers": answers, "errors": errors}), flush=True)
                    return
                time.sleep(0.2)
    channel.close()
    print(json.dumps({"answers": answers, "errors": errors}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "call":
        call(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
