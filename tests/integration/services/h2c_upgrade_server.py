#!/usr/bin/env python3
"""A cleartext HTTP/2 server that accepts the HTTP/1.1 upgrade to h2c (RFC
7540 3.2), for test_http2.py: nghttpd does not. Debian's /usr/bin/python3
with python3-h2 (4.1, scripts/setup.sh --tests). Knows nothing about tracing.

Each connection starts as HTTP/1.1. A request with "Upgrade: h2c" and an
HTTP2-Settings field is answered "101 Switching Protocols"; the connection
is HTTP/2 from then on, the upgraded request being stream 1 (answered in
HTTP/2), later requests further streams. Without the upgrade a request gets
a plain HTTP/1.1 answer. Routes: GET /hello -> 200 "hello", anything else
-> 404. One thread per connection.

Prints "listening" once it accepts connections.
"""
import argparse
import socket
import socketserver
import sys

import h2.config
import h2.connection
import h2.events


def answer(path):
    if path.split("?", 1)[0] == "/hello":
        return 200, b"hello\n"
    return 404, b"not found\n"


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        upgrade = [t.strip().lower() for t in fields.get("upgrade", "").split(",")]
        if "h2c" not in upgrade or "http2-settings" not in fields:
            status, body = answer(path)
            sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, len(body)) + body)
            return
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_upgrade_connection(fields["http2-settings"])
        self.respond(conn, 1, path)  # RFC 7540 3.2: the upgraded request is stream 1
        sock.sendall(conn.data_to_send())
        data = rest
        while True:
            if data:
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {k.decode(): v.decode() for k, v in event.headers}
                        self.respond(conn, event.stream_id, headers[":path"])
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        sock.sendall(conn.data_to_send())
                        return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            data = sock.recv(65536)
            if not data:
                return

    @staticmethod
    def respond(conn, stream_id, path):
        status, body = answer(path)
        conn.send_headers(stream_id, [(":status", str(status)),
                                      ("content-length", str(len(body))),
                                      ("content-type", "text/plain")])
        conn.send_data(stream_id, body, end_stream=True)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = socket.AF_INET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    opts = ap.parse_args()
    srv = Server((opts.host, opts.port), Handler)
    print("listening", flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
