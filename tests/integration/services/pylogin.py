#!/usr/bin/env python3
"""A Python login service for the Python function probes (test_uprobes_python.py).

Uninstrumented, standard library only. GET /login?user=U runs
login (5 ms) -> validate_payload (10 ms) -> check_password (15 ms, then a
GET of the downstream's /work). The user "mallory" makes check_password
raise PasswordRejected (before the downstream call), which login catches:
403. Functions not named by the test run inside too: hash_password (3 ms,
in check_password), pylogin_other.check_password (same name, another file),
and tokens (a generator named by the test: not timed).

usage: pylogin.py PORT DOWNSTREAM_URL
"""
import http.server
import sys
import time
import urllib.request

import pylogin_other


class PasswordRejected(Exception):
    pass


DOWNSTREAM = ""


def tokens(n):
    for i in range(n):
        yield i


def hash_password(user):
    time.sleep(0.003)
    return sum(tokens(3)) + len(user)


def check_password(user):
    time.sleep(0.015)
    hash_password(user)
    if user == "mallory":
        raise PasswordRejected(user)
    with urllib.request.urlopen(DOWNSTREAM + "/work", timeout=30) as r:
        r.read()


def validate_payload(user):
    time.sleep(0.010)
    check_password(user)


def login(user):
    time.sleep(0.005)
    pylogin_other.check_password(user)
    try:
        validate_payload(user)
        return 200
    except PasswordRejected:
        return 403


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        user = self.path.split("user=", 1)[1] if "user=" in self.path else "nobody"
        code = login(user) if self.path.startswith("/login") else 404
        body = b"ok\n" if code == 200 else b"no\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global DOWNSTREAM
    DOWNSTREAM = sys.argv[2]
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
