#!/usr/bin/env python3
"""Client side of the propagation no-harm tests. Runs in the test's cgroup
and is selected by the agent, so every connection it makes enters the
propagation sockhash; it does its socket experiments while serving a request
(GET /run?case=NAME&peer=HOST:PORT), so its HTTP requests get a traceparent
injected. Each case talks to tests/integration/services/sink.py and answers
200 {"ok": true, ...} or 500 {"ok": false, "why": ...}. Standard library only.
"""
import argparse
import fcntl
import hashlib
import http.client
import json
import os
import random
import re
import select
import socket
import socketserver
import struct
import sys
import tempfile
import termios
import threading
import time
import traceback
import urllib.parse

TP = re.compile(r"^traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\r?$", re.I | re.M)


class Fail(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Fail(why)


def connect(peer):
    host, port = peer.split(":")
    s = socket.create_connection((host, int(port)), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        check(chunk, "connection closed before a response head")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(buf) < n:
        chunk = s.recv(65536)
        check(chunk, "connection closed in a response body")
        buf += chunk
    return head, buf[:n], buf[n:]


def fionread(s):
    """Bytes waiting on s, as FIONREAD says."""
    return struct.unpack("i", fcntl.ioctl(s, termios.FIONREAD, b"\0\0\0\0"))[0]


def blob_fionread(s, n):
    """Asks the sink for an n-byte blob on s and polls FIONREAD (10 s at most)
    until the whole answer waits: (what FIONREAD said, the answer's size)."""
    s.sendall(b"GET /blob?n=%d HTTP/1.1\r\nHost: sink\r\n\r\n" % n)
    expected = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n) + n
    deadline = time.time() + 10
    pending = 0
    while time.time() < deadline:
        pending = fionread(s)
        if pending >= expected:
            break
        time.sleep(0.01)
    return pending, expected


def traceparents(head):
    return TP.findall(head)


def request(path, body_len=None, extra=""):
    h = f"POST {path} HTTP/1.1\r\nHost: sink\r\nUser-Agent: probe\r\n{extra}"
    if body_len is not None:
        h += f"Content-Length: {body_len}\r\n"
    return (h + "\r\n").encode()


def pattern(n):
    block = bytes(range(256)) * 64
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def expect_sink_reply(s, body, buf=b""):
    head, reply, buf = read_response(s, buf)
    got = json.loads(reply)
    check(got["len"] == len(body), f"sink got {got['len']} bytes, sent {len(body)}")
    check(got["sha"] == hashlib.sha256(body).hexdigest(), "body changed on the way")
    tps = traceparents(got["head"])
    check(len(tps) <= 1, f"{len(tps)} traceparents in {got['head']!r}")
    return got, buf


# ---- cases ------------------------------------------------------------------

def case_http(peer):
    """A plain GET through whatever peer (sink directly, or nginx in front)."""
    host, port = peer.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=20)
    c.request("GET", "/json")
    r = c.getresponse()
    body = r.read()
    check(r.status == 200, f"status {r.status}")
    got = json.loads(body)
    tps = traceparents(got["head"])
    check(len(tps) == 1, f"expected one traceparent, head {got['head']!r}")
    return {"traceparents": tps}


def case_fionread(peer):
    s = connect(peer)
    n = 50000
    pending, expected = blob_fionread(s, n)
    check(pending == expected, f"FIONREAD {pending}, expected {expected}")
    head, body, rest = read_response(s)
    check(body == pattern(n) and not rest, "blob changed")
    after = fionread(s)
    check(after == 0, f"FIONREAD {after} after reading everything")
    s.close()
    return {"fionread": pending}


def case_fionread_keepalive(peer):
    """Requests one after another on one connection: FIONREAD counts every
    response exactly, and every request carries a traceparent (with the read
    guard the socket leaves the sockhash when a request is acknowledged and
    comes back once its response has been read)."""
    s = connect(peer)
    buf, tps = b"", []
    for i in range(4):
        body = b"x" * (100 + i)
        s.sendall(request("/echo", len(body)) + body)
        select.select([s], [], [], 10)
        time.sleep(0.05)  # the whole (small) answer is in
        pending = fionread(s)
        head, reply, buf = read_response(s, buf)
        whole = len(head) + 4 + len(reply)
        check(pending == whole, f"request {i}: FIONREAD {pending}, the answer was {whole}")
        got = json.loads(reply)
        check(got["len"] == len(body), f"sink got {got['len']} bytes, sent {len(body)}")
        tps.append(len(traceparents(got["head"])))
        after = fionread(s)
        check(after == 0, f"request {i}: FIONREAD {after} after reading everything")
        time.sleep(0.3)  # as a pooled connection waits for the next call
    check(tps == [1, 1, 1, 1], f"traceparents per request: {tps}")
    s.close()
    return {"traceparents": tps}


def case_fionread_not_http(peer):
    """A connection whose first write is not HTTP leaves the sockhash (the
    agent takes it out): FIONREAD counts what waits, as without the agent."""
    s = connect(peer)
    s.sendall(b"PING\r\n\r\n")  # not a request: the sink answers as for "/"
    time.sleep(0.5)  # the agent sweeps every 100 ms
    head, body, rest = read_response(s)
    n = 50000
    pending, expected = blob_fionread(s, n)
    check(pending == expected, f"FIONREAD {pending}, expected {expected}")
    head, body, rest = read_response(s)
    check(body == pattern(n), "blob changed")
    s.close()
    return {"fionread": pending}


def case_poll(peer):
    s = connect(peer)
    s.setblocking(False)
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP)
    ev = dict(ep.poll(2))
    check(ev.get(s.fileno(), 0) & select.EPOLLOUT, "not writable after connect")
    check(not ev.get(s.fileno(), 0) & select.EPOLLIN, "readable before anything was sent")
    ep.modify(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    check(not ep.poll(0.2), "readable before the request")
    s.setblocking(True)
    s.sendall(b"GET /blob?n=1000 HTTP/1.1\r\nHost: sink\r\n\r\n")
    s.setblocking(False)
    ev = dict(ep.poll(5))
    check(ev.get(s.fileno(), 0) & select.EPOLLIN, "epoll: no EPOLLIN for the response")
    r, _, _ = select.select([s], [], [], 5)
    check(r, "select: not readable")
    p = select.poll()
    p.register(s, select.POLLIN)
    check(p.poll(5000), "poll: not readable")
    s.setblocking(True)
    head, body, rest = read_response(s)
    check(body == pattern(1000), "blob changed")
    s.setblocking(False)
    check(not ep.poll(0.2), "readable after the response was read")
    # A request whose body ends with our half-close; the sink answers and
    # closes: EPOLLIN and EPOLLRDHUP, then the answer, then EOF.
    body = b"half" * 1000
    s.setblocking(True)
    s.sendall(request("/eof", extra="X-Body: eof\r\n") + body)
    s.shutdown(socket.SHUT_WR)
    s.setblocking(False)
    got = b""
    deadline = time.time() + 10
    saw_rdhup = False
    while time.time() < deadline:
        ev = dict(ep.poll(5))
        flags = ev.get(s.fileno(), 0)
        saw_rdhup |= bool(flags & select.EPOLLRDHUP)
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        got += chunk
    check(saw_rdhup, "no EPOLLRDHUP after the peer closed")
    s.setblocking(True)
    head, reply, rest = read_response(_Replay(got))
    check(json.loads(reply)["sha"] == hashlib.sha256(body).hexdigest(), "half-closed body changed")
    s.close()
    return {}


class _Replay:
    """recv() over bytes already read."""

    def __init__(self, data):
        self.data = data

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


def case_sendfile(peer):
    n = 2 * 1024 * 1024
    body = os.urandom(n)
    with tempfile.TemporaryFile() as f:
        f.write(body)
        f.flush()
        s = connect(peer)
        s.setblocking(True)  # os.sendfile on a blocking socket, as servers do
        s.sendall(request("/sendfile", n))
        sent = 0
        while sent < n:
            sent += os.sendfile(s.fileno(), f.fileno(), sent, n - sent)
        got, _ = expect_sink_reply(s, body)
        s.close()
    check(len(traceparents(got["head"])) == 1, "no traceparent in the sendfile request")
    return {}


def case_splice(peer):
    n = 1024 * 1024
    body = os.urandom(n)
    r, w = os.pipe()
    s = connect(peer)
    s.setblocking(True)
    s.sendall(request("/splice", n))

    def feed():
        os.write(w, body)  # blocks until splice drains the pipe
        os.close(w)

    t = threading.Thread(target=feed)
    t.start()
    moved = 0
    while moved < n:
        k = os.splice(r, s.fileno(), n - moved)
        check(k > 0, "splice moved nothing")
        moved += k
    t.join()
    os.close(r)
    got, _ = expect_sink_reply(s, body)
    s.close()
    check(len(traceparents(got["head"])) == 1, "no traceparent in the spliced request")
    return {}


def case_halfclose(peer):
    body = os.urandom(300000)
    s = connect(peer)
    s.sendall(request("/halfclose", extra="X-Body: eof\r\n"))
    for i in range(0, len(body), 7000):
        s.sendall(body[i:i + 7000])
    s.shutdown(socket.SHUT_WR)
    got, rest = expect_sink_reply(s, body)
    check(s.recv(1) == b"", "no EOF after the answer")
    s.close()
    check(len(traceparents(got["head"])) == 1, "no traceparent in the half-closed request")
    return {}


def case_stream(peer):
    """Pipelined requests with bodies, cut into writes every which way;
    small send buffer, non-blocking phases: nothing lost, reordered,
    duplicated or stalled."""
    rnd = random.Random(4)
    s = connect(peer)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    bodies = [bytes(rnd.choice(b"abcdefghij") for _ in range(rnd.choice([0, 1, 100, 5000, 70000])))
              for _ in range(120)]
    wire = [request(f"/s{i}", len(b)) + b for i, b in enumerate(bodies)]
    results, errors = [], []

    def reader():
        buf = b""
        try:
            for b in bodies:
                got, buf = expect_sink_reply(s, b, buf)
                results.append(got)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    for i, msg in enumerate(wire):
        mode = i % 4
        if mode == 0:
            s.sendall(msg)
        elif mode == 1:  # writev: several buffers, one syscall
            cut = sorted(rnd.sample(range(1, len(msg)), min(3, len(msg) - 1)))
            parts = [msg[a:b] for a, b in zip([0] + cut, cut + [len(msg)])]
            sent = s.sendmsg(parts)
            if sent < len(msg):
                s.sendall(msg[sent:])
        elif mode == 2:  # MSG_MORE then the rest
            k = len(msg) // 2
            if k:
                s.sendall(msg[:k], socket.MSG_MORE)
            s.sendall(msg[k:])
        else:  # non-blocking sends (MSG_DONTWAIT), small pieces, waiting for room
            off = 0
            while off < len(msg):
                try:
                    off += s.send(msg[off:off + rnd.choice([1, 13, 700, 9000])],
                                  socket.MSG_DONTWAIT)
                except BlockingIOError:
                    select.select([], [s], [], 5)
    t.join(60)
    check(not t.is_alive(), "stalled: responses stopped coming")
    check(not errors, f"reader: {errors}")
    check(len(results) == len(bodies), f"{len(results)} answers for {len(bodies)} requests")
    injected = [traceparents(r["head"]) for r in results]
    spans = [tp[0].split("-")[2] for tp in injected if tp]
    check(len(spans) == len(set(spans)), "a span id was injected twice")
    s.close()
    return {"requests": len(bodies), "injected": len(spans)}


def case_nagle(peer):
    """Keep-alive request/response without TCP_NODELAY (Nagle on, as nginx's
    upstream connections have it): an inserted header must not turn one
    write into pieces that Nagle holds until the peer's delayed ack."""
    s = connect(peer)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    worst = 0.0
    buf = b""
    injected = []
    for i in range(40):
        body = b"n" * (i * 37 % 300)
        t0 = time.perf_counter()
        s.sendall(request(f"/nagle{i}", len(body)) + body)
        got, buf = expect_sink_reply(s, body, buf)
        worst = max(worst, time.perf_counter() - t0)
        injected.append(len(traceparents(got["head"])))
    s.close()
    check(worst < 0.025, f"a request took {worst * 1000:.1f} ms (a delayed-ack stall)")
    # Back to back: with the read guard (kernels with the sockmap FIONREAD
    # regression) a request written before the agent has put the socket
    # back goes without one; the test checks the counts.
    check(injected[0] == 1, "no traceparent in the first request")
    return {"worst_ms": worst * 1000, "injected": sum(injected)}


def case_bigwrite(peer):
    body = os.urandom(16 * 1024 * 1024)
    s = connect(peer)
    s.sendall(request("/big", len(body)) + body)
    got, _ = expect_sink_reply(s, body)
    s.close()
    check(len(traceparents(got["head"])) == 1, "no traceparent in the big request")
    return {}


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(line.split()[1].decode()).query)
        case, peer = q["case"][0], q["peer"][0]
        try:
            out = {"ok": True, **CASES[case](peer)}
            code = 200
        except Exception as e:  # noqa: BLE001 - the test reads why
            where = traceback.extract_tb(e.__traceback__)[-1]
            out = {"ok": False, "why": f"{type(e).__name__}: {e} (line {where.lineno})"}
            code = 500
        body = json.dumps(out).encode()
        self.wfile.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (code, len(body)) + body)


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
