#!/usr/bin/env python3
"""An uninstrumented Python HTTP/1.1 service for the propagation tests.

Standard library only; knows nothing about tracing. It logs the raw head of
every request it receives (one JSON line per request: {"head": "..."}) so a
test can check the exact bytes that arrived, and can call downstream
services in three server models:

  threads  thread per request (socketserver.ThreadingMixIn); the handler
           thread connects and sends each downstream request itself
  pool     thread per request reads the request and connects; a shared
           worker pool writes the downstream request and reads the answer
  asyncio  one event loop (asyncio streams) serves everything; downstream
           requests on fresh connections made by the handling task

Routes: GET /work  -> sleep --sleep-ms (+ random 0..--jitter-ms), then GET <downstream>/work for each
                      --downstream (in order), answer 200 "via ..." (502 on failure);
                      the query string goes along (tests tag requests with it)
        GET /leaf  -> answer 200 "leaf" (after --sleep-ms)
        anything else -> 200 "ok"
Request bodies (Content-Length) are read and ignored.
"""
import argparse
import asyncio
import concurrent.futures
import http.client
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

LOG_LOCK = threading.Lock()
# Seconds a downstream call may take: 30, times the test harness's
# HOPTRACE_TEST_TIME_SCALE on a slow (emulated) machine.
DOWNSTREAM_TIMEOUT = 30 * max(1.0, float(os.environ.get("HOPTRACE_TEST_TIME_SCALE", "1")))


def log_head(opts, head):
    if not opts.headers_log:
        return
    line = json.dumps({"head": head.decode("latin-1")}) + "\n"
    with LOG_LOCK:
        with open(opts.headers_log, "a") as f:
            f.write(line)


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or 0)
    return 0


def response(code, body):
    reason = {200: "OK", 502: "Bad Gateway", 404: "Not Found"}.get(code, "X")
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


# ---- threads and pool ------------------------------------------------------

POOL = None


def call_blocking(opts, url, target):
    """One downstream GET on a new connection, in the calling thread."""
    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=DOWNSTREAM_TIMEOUT)
    try:
        conn.request("GET", target, headers={"User-Agent": "prop-service"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def call_pooled(opts, url, target):
    """Connect on this (the request's) thread; a pool worker writes and reads."""
    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=DOWNSTREAM_TIMEOUT)
    conn.connect()

    def work():
        try:
            conn.request("GET", target, headers={"User-Agent": "prop-service"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    return POOL.submit(work).result()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        opts = self.server.opts
        while True:
            head = b""
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                head += line
                if line in (b"\r\n", b"\n"):
                    break
            log_head(opts, head)
            n = content_length(head)
            if n:
                self.rfile.read(n)
            path, _, query = head.split(b" ", 2)[1].decode("latin-1").partition("?")
            target = "/work" + ("?" + query if query else "")
            time.sleep((opts.sleep_ms + random.uniform(0, opts.jitter_ms)) / 1000.0)
            code, body = 200, b"ok\n"
            if path == "/work":
                body = b"done\n"
                call = call_pooled if opts.model == "pool" else call_blocking
                for url in opts.downstream:
                    try:
                        status, got = call(opts, url, target)
                        code = 200 if status == 200 and code == 200 else 502
                        body = b"via " + got
                    except OSError:
                        code, body = 502, b"downstream failed\n"
            elif path == "/leaf":
                body = b"leaf\n"
            self.wfile.write(response(code, body))
            self.wfile.flush()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


# ---- asyncio ---------------------------------------------------------------

async def call_async(url, target):
    host, port = split_url(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"User-Agent: prop-service\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        body = await reader.readexactly(content_length(head))
        return status, body
    finally:
        writer.close()


async def serve_async(opts, reader, writer):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            log_head(opts, head)
            n = content_length(head)
            if n:
                await reader.readexactly(n)
            path, _, query = head.split(b" ", 2)[1].decode("latin-1").partition("?")
            target = "/work" + ("?" + query if query else "")
            await asyncio.sleep((opts.sleep_ms + random.uniform(0, opts.jitter_ms)) / 1000.0)
            code, body = 200, b"ok\n"
            if path == "/work":
                body = b"done\n"
                for url in opts.downstream:
                    try:
                        status, got = await call_async(url, target)
                        code = 200 if status == 200 and code == 200 else 502
                        body = b"via " + got
                    except (OSError, asyncio.IncompleteReadError):
                        code, body = 502, b"downstream failed\n"
            elif path == "/leaf":
                body = b"leaf\n"
            writer.write(response(code, body))
            await writer.drain()
    finally:
        writer.close()


async def main_async(opts):
    srv = await asyncio.start_server(lambda r, w: serve_async(opts, r, w), opts.host, opts.port,
                                     backlog=256)
    print("listening", flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    global POOL
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", choices=["threads", "pool", "asyncio"], default="threads")
    ap.add_argument("--sleep-ms", type=int, default=0)
    ap.add_argument("--jitter-ms", type=int, default=0, help="plus a random 0..N ms")
    ap.add_argument("--downstream", action="append", default=[])
    ap.add_argument("--headers-log", default="")
    opts = ap.parse_args()
    if opts.model == "asyncio":
        asyncio.run(main_async(opts))
        return
    POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    if ":" in opts.host:
        Server.address_family = socket.AF_INET6
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    print("listening", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
