#!/usr/bin/env python3
"""The "test service" the W3C trace-context test suite drives
(https://github.com/w3c/trace-context/tree/main/test): for every POST, the
body is a JSON list of {"url", "arguments"}; the service POSTs each
`arguments` to its `url`, then answers 200. It knows nothing about tracing
and forwards no header: any traceparent/tracestate its outgoing requests
carry was put there by hoptrace. Python standard library only; one thread
per request (ThreadingHTTPServer)."""
import argparse
import http.server
import json
import sys
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            calls = json.loads(body or b"[]")
        except ValueError:
            calls = []
        for call in calls:
            req = urllib.request.Request(call["url"], method="POST",
                                         data=json.dumps(call["arguments"]).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
            except OSError:
                pass
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    opts = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    srv.daemon_threads = True
    print("listening", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
