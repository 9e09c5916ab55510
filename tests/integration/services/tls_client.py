#!/usr/bin/env python3
"""An uninstrumented HTTPS client (Python's ssl module, OpenSSL) for the
two-host TLS tests: prints "ready", waits for a line on stdin, connects,
prints "port <local port>", sends each GET path on the one kept-alive
connection and prints "<status> <body length> <sha256 of body>" per
response. Standard library only."""
import argparse
import hashlib
import socket
import ssl
import sys


def read_response(f):
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = f.read(length)
    return status, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    print("ready", flush=True)
    sys.stdin.readline()
    ctx = ssl.create_default_context(cafile=a.cafile)
    with socket.create_connection((a.host, a.port)) as raw:
        print("port", raw.getsockname()[1], flush=True)
        with ctx.wrap_socket(raw, server_hostname="hoptrace.test") as s:
            f = s.makefile("rb")
            for p in a.paths:
                s.sendall(f"GET {p} HTTP/1.1\r\nHost: hoptrace.test\r\n"
                          "User-Agent: tls-client/1\r\n\r\n".encode())
                status, body = read_response(f)
                print(status, len(body), hashlib.sha256(body).hexdigest(), flush=True)


if __name__ == "__main__":
    main()
