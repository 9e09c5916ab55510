#!/usr/bin/env python3
"""An uninstrumented HTTP service that queries PostgreSQL (psycopg2) and
Redis (redis-py) for hoptrace's database tests. Python standard library
HTTP server, one thread per request; each request opens its own database
connections, so the agent sees them from their first byte.

  GET /user?id=N   SELECT the user's email, cache it in Redis, answer 200
                   (404 when there is no such user)
"""
import argparse
import http.server
import socketserver
import sys
import urllib.parse

import psycopg2
import redis


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        opts = self.server.opts
        url = urllib.parse.urlsplit(self.path)
        user_id = int(urllib.parse.parse_qs(url.query).get("id", ["0"])[0])
        conn = psycopg2.connect(host=opts.pg_host, port=opts.pg_port, dbname="shop",
                                user="postgres", sslmode="disable")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT email FROM users WHERE id = %s", (user_id,))
                row = cur.fetchone()
            conn.commit()
        finally:
            conn.close()
        cache = redis.Redis(host=opts.redis_host, port=opts.redis_port)
        if row:
            cache.set(f"user:{user_id}", row[0])
        cache.close()
        body = (row[0] if row else "not found").encode() + b"\n"
        self.send_response(200 if row else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--pg-host", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--redis-host", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    opts = ap.parse_args()
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    print("listening", flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
