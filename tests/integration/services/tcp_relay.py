#!/usr/bin/env python3
"""A TCP relay that passes the caller's bytes on after a fixed delay.

For hoptrace's hop tests: a middlebox that is not traced (a proxy, a slow
link in between) between two services. It terminates TCP on both sides, so
the caller's connection ends here and the callee's starts here.

  tcp_relay.py --listen HOST:PORT --upstream HOST:PORT [--delay-ms 20]

Bytes from the caller reach the upstream --delay-ms after they arrived, in
order; bytes back go at once. Prints "listening"; stops on SIGTERM.
"""
import argparse
import queue
import socket
import threading
import time


def forward(src, dst, delay_s):
    """Copies src to dst, each chunk delay_s after it arrived."""
    q = queue.Queue()

    def sender():
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if data:
                    dst.sendall(data)
                else:
                    dst.shutdown(socket.SHUT_WR)
                    return
            except OSError:
                return

    threading.Thread(target=sender, daemon=True).start()
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        q.put((time.monotonic() + delay_s, data))
        if not data:
            return


def serve(caller, upstream_addr, delay_s):
    try:
        upstream = socket.create_connection(upstream_addr, timeout=10)
        upstream.settimeout(None)
    except OSError:
        caller.close()
        return
    threading.Thread(target=forward, args=(caller, upstream, delay_s), daemon=True).start()
    forward(upstream, caller, 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    opts = ap.parse_args()
    lhost, lport = opts.listen.rsplit(":", 1)
    uhost, uport = opts.upstream.rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((lhost, int(lport)))
    srv.listen(64)
    print("listening", flush=True)
    while True:
        caller, _ = srv.accept()
        threading.Thread(target=serve, args=(caller, (uhost, int(uport)), opts.delay_ms / 1000.0),
                         daemon=True).start()


if __name__ == "__main__":
    main()
