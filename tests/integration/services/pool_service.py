#!/usr/bin/python3
"""Python services whose downstream calls run on a thread pool that does not
copy contextvars (issue 11, item 5), for test_propagation_models. Run with
Debian's /usr/bin/python3 (3.11); standard library only; knows nothing
about tracing.

  submit    thread per request (socketserver.ThreadingMixIn) reads the
            request, then concurrent.futures.ThreadPoolExecutor.submit(call)
            .result(): a pool worker connects, writes and reads
  executor  one asyncio event loop reads every request; the handler awaits
            loop.run_in_executor(pool, call): a pool worker connects, writes
            and reads

GET /work?<query> -> sleep --sleep-ms + random 0..--jitter-ms, GET
<downstream>/work?<query> on a new connection in a pool worker, sleep again,
answer 200 "via ..." (502 on failure); anything else -> 200 "ok".
"""
import argparse
import asyncio
import concurrent.futures
import http.client
import random
import socketserver
import time
import urllib.parse

POOL = None


def pause(opts):
    return (opts.sleep_ms + random.uniform(0, opts.jitter_ms)) / 1000.0


def call(url, target):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        conn.request("GET", target, headers={"User-Agent": "pool-service"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def response(code, body):
    return (f"HTTP/1.1 {code} {'OK' if code == 200 else 'Bad Gateway'}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


def target_of(head):
    path, _, query = head.split(b" ", 2)[1].decode("latin-1").partition("?")
    return path, "/work" + ("?" + query if query else "")


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        opts = self.server.opts
        head = b""
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            head += line
            if line in (b"\r\n", b"\n"):
                break
        path, target = target_of(head)
        code, body = 200, b"ok\n"
        if path == "/work":
            time.sleep(pause(opts))
            try:
                status, got = POOL.submit(call, opts.downstream, target).result()
                code, body = (200 if status == 200 else 502), b"via " + got
            except OSError:
                code, body = 502, b"downstream failed\n"
            time.sleep(pause(opts))
        self.wfile.write(response(code, body))
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


async def serve_async(opts, reader, writer):
    loop = asyncio.get_running_loop()
    try:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        path, target = target_of(head)
        code, body = 200, b"ok\n"
        if path == "/work":
            await asyncio.sleep(pause(opts))
            try:
                status, got = await loop.run_in_executor(POOL, call, opts.downstream, target)
                code, body = (200 if status == 200 else 502), b"via " + got
            except OSError:
                code, body = 502, b"downstream failed\n"
            await asyncio.sleep(pause(opts))
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
    ap.add_argument("--model", choices=["submit", "executor"], default="submit")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--sleep-ms", type=int, default=0)
    ap.add_argument("--jitter-ms", type=int, default=0, help="plus a random 0..N ms")
    ap.add_argument("--downstream", required=True)
    opts = ap.parse_args()
    POOL = concurrent.futures.ThreadPoolExecutor(max_workers=opts.workers)
    # A warm pool, as a service's is after its first requests: every worker
    # exists (a worker started by a submit takes its item without a wake-up).
    gate = concurrent.futures.Future()
    warm = [POOL.submit(gate.result) for _ in range(opts.workers)]
    gate.set_result(None)
    concurrent.futures.wait(warm)
    if opts.model == "executor":
        asyncio.run(main_async(opts))
        return
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    print("listening", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
