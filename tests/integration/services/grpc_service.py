#!/usr/bin/env python3
"""A gRPC service (Debian's python3-grpcio) for hoptrace's HTTP/2 tests.

Generic handlers with bytes in and out, so no .proto and no generated code:
the wire is real gRPC (HTTP/2, HPACK, length-prefixed messages, trailers).
Knows nothing about tracing. Methods of service helloworld.Greeter:
  SayHello      unary: answers b"hello " + request, after --sleep-ms
  ListFeatures  server streaming: request is a count N (ASCII); N messages
  Fail          unary: aborts with NOT_FOUND (5) before any message, so the
                response is Trailers-Only (status in the first HEADERS)
  Crash         unary: aborts with UNAVAILABLE (14)
Run with /usr/bin/python3. Prints "listening" once it accepts calls.

Also a client (--call): makes one call per --method on a fresh channel and
prints each result as "METHOD CODE" (the status code's name).
"""
import argparse
import sys
import time
from concurrent import futures

import grpc

SERVICE = "helloworld.Greeter"


def handlers(sleep_ms):
    def say_hello(request, context):
        time.sleep(sleep_ms / 1000)
        return b"hello " + request

    def list_features(request, context):
        for i in range(int(request or b"3")):
            yield b"feature %d" % i

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")

    def crash(request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "greeter is down")

    return grpc.method_handlers_generic_handler(SERVICE, {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "ListFeatures": grpc.unary_stream_rpc_method_handler(list_features),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
    })


def serve(args):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handlers(args.sleep_ms),))
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


def call(args):
    metadata = []
    if args.traceparent:
        metadata.append(("traceparent", args.traceparent))
    with grpc.insecure_channel(args.call) as channel:
        for method in args.method:
            path = f"/{SERVICE}/{method}"
            try:
                if method == "ListFeatures":
                    replies = list(channel.unary_stream(path)(b"3", metadata=metadata, timeout=10))
                    assert len(replies) == 3, replies
                else:
                    channel.unary_unary(path)(b"world", metadata=metadata, timeout=10)
                print(method, "OK", flush=True)
            except grpc.RpcError as e:
                print(method, e.code().name, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--sleep-ms", type=int, default=0)
    p.add_argument("--call", help="host:port to call instead of serving")
    p.add_argument("--method", action="append", default=[])
    p.add_argument("--traceparent", default="")
    args = p.parse_args()
    if args.call:
        call(args)
    else:
        serve(args)


if __name__ == "__main__":
    sys.exit(main())
