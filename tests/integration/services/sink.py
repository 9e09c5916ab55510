#!/usr/bin/env python3
"""The peer of the propagation no-harm tests: an HTTP/1.1 server that checks
what arrives, byte for byte. Standard library only, untraced.

Per request (keep-alive and pipelining supported) it answers 200 with a JSON
body: {"len": body bytes, "sha": sha256 of the body, "head": the raw head}.
A request with "Content-Length" has that body; one with "X-Body: eof" has a
body that ends when the client half-closes. GET /blob?n=N answers with N
bytes of a known pattern instead (Content-Length: N)."""
import argparse
import hashlib
import json
import socket
import socketserver
import sys


def pattern(n):
    block = bytes(range(256)) * 64
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            head += b"\r\n\r\n"
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                k, sep, v = line.partition(b":")
                if sep:
                    fields.setdefault(k.strip().lower(), v.strip())
            parts = head.split(b" ", 2)
            target = parts[1].decode("latin-1") if len(parts) > 2 else "/"
            h = hashlib.sha256()
            length = 0
            if fields.get(b"x-body") == b"eof":
                while True:
                    h.update(buf)
                    length += len(buf)
                    buf = sock.recv(65536)
                    if not buf:
                        break
            else:
                want = int(fields.get(b"content-length", b"0"))
                while len(buf) < want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                h.update(buf[:want])
                length = want
                buf = buf[want:]
            if target.startswith("/blob?n="):
                body = pattern(int(target.split("=", 1)[1]))
            else:
                body = json.dumps({"len": length, "sha": h.hexdigest(),
                                   "head": head.decode("latin-1")}).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            if fields.get(b"x-body") == b"eof":
                return


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    opts = ap.parse_args()
    srv = Server((opts.host, opts.port), Handler)
    print("listening", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
