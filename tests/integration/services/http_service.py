#!/usr/bin/env python3
"""A small, uninstrumented HTTP service for hoptrace's tests and demo.

Python standard library only; knows nothing about tracing. Routes:
  GET /work       sleep --sleep-ms, then (with --downstream) GET the
                  downstream URL's /work, answer 200 (502 if it failed)
  GET /status/N   answer with status N
  GET /slowbody   send headers and a long body slowly (client may hang up)
  GET /big/N      answer N bytes of a known pattern (see pattern())
  anything else   200 "ok"

With --cert/--key it serves HTTPS (Python's ssl module, OpenSSL); --cafile
is the CA its https downstream is verified with.
"""
import argparse
import http.server
import os
import socket
import socketserver
import ssl
import sys
import time
import urllib.error
import urllib.request


# Seconds a downstream call may take: 30, times the test harness's
# HOPTRACE_TEST_TIME_SCALE on a slow (emulated) machine.
DOWNSTREAM_TIMEOUT = 30 * max(1.0, float(os.environ.get("HOPTRACE_TEST_TIME_SCALE", "1")))


def pattern(n):
    """n bytes: 0..255 repeated; what /big/N answers (tests compare it)."""
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "svc/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _reply(self, code, body=b"ok\n"):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        opts = self.server.opts
        path = self.path.split("?", 1)[0]
        if path == "/work":
            time.sleep(opts.sleep_ms / 1000.0)
            if opts.downstream:
                try:
                    with urllib.request.urlopen(opts.downstream + "/work",
                                                timeout=DOWNSTREAM_TIMEOUT,
                                                context=self.server.client_ctx) as r:
                        body = r.read()
                    self._reply(200, b"via " + body)
                except (urllib.error.URLError, ConnectionError, OSError):
                    self._reply(502, b"downstream failed\n")
                return
            self._reply(200, b"done\n")
        elif path.startswith("/status/"):
            self._reply(int(path.rsplit("/", 1)[1]))
        elif path.startswith("/big/"):
            self._reply(200, pattern(int(path.rsplit("/", 1)[1])))
        elif path == "/slowbody":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"x" * 16384)
                    self.wfile.flush()
                    time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        else:
            self._reply(200)

    do_HEAD = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sleep-ms", type=int, default=0)
    ap.add_argument("--downstream", default="")
    ap.add_argument("--cert", default="")
    ap.add_argument("--key", default="")
    ap.add_argument("--cafile", default="")
    opts = ap.parse_args()
    if ":" in opts.host:  # an IPv6 address
        Server.address_family = socket.AF_INET6
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    srv.client_ctx = ssl.create_default_context(cafile=opts.cafile) if opts.cafile else None
    if opts.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.cert, opts.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
