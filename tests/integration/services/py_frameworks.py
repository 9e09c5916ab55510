#!/usr/bin/env python3
"""Uninstrumented Python web frameworks for test_propagation_models (issue 11).

Runs with Debian's /usr/bin/python3 (3.11) and its python3-fastapi,
python3-uvicorn, python3-httpx, python3-aiohttp, python3-flask,
python3-django and gunicorn packages (scripts/setup.sh --tests). Knows
nothing about tracing.

GET /work?id=X: waits a random 0..--jitter-ms, calls GET <downstream>/work?id=X&leg=K
for each leg K of the framework's fan-out, waits a random 0..--jitter-ms again,
answers 200 "done" (502 if a call failed). Frameworks:

  fastapi_async  uvicorn + FastAPI `async def`, httpx.AsyncClient (keep-alive pool of
                 4), two legs at once through asyncio.gather
  fastapi_tasks  uvicorn + FastAPI `async def`: leg 0 in asyncio.create_task, leg 1
                 through asyncio.to_thread with http.client, at once
  fastapi_sync   uvicorn + FastAPI plain `def` (Starlette runs it in anyio's thread
                 pool), httpx.Client (keep-alive pool of 4), one leg
  aiohttp        aiohttp.web server (a task per keep-alive connection), one
                 aiohttp.ClientSession (pool of 4), two legs through asyncio.gather
  flask          Flask on werkzeug's threaded server, http.client, one leg
  django         Django (WSGI) under gunicorn, gthread worker (8 threads), http.client, one leg

Prints "listening" once it accepts connections.
"""
import argparse
import asyncio
import http.client
import os
import random
import sys
import urllib.parse

FANOUT = {"fastapi_async": 2, "fastapi_tasks": 2, "fastapi_sync": 1, "aiohttp": 2,
          "flask": 1, "django": 1}


def leg_target(rid, k):
    return f"/work?id={rid}&leg={k}"


def jitter_s(opts):
    return random.uniform(0, opts.jitter_ms) / 1000.0


def blocking_get(url, target):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", target)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def fastapi_app(opts):
    import httpx
    from fastapi import FastAPI, Response
    import time

    app = FastAPI()
    state = {}
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)

    @app.on_event("startup")
    async def startup():
        state["async"] = httpx.AsyncClient(limits=limits, timeout=30)
        state["sync"] = httpx.Client(limits=limits, timeout=30)
        print("listening", flush=True)

    if opts.framework == "fastapi_sync":
        @app.get("/work")
        def work(id: str):
            time.sleep(jitter_s(opts))
            r = state["sync"].get(opts.downstream + leg_target(id, 0))
            time.sleep(jitter_s(opts))
            return Response("done\n", status_code=200 if r.status_code == 200 else 502)
        return app

    @app.get("/work")
    async def work_async(id: str):
        await asyncio.sleep(jitter_s(opts))
        if opts.framework == "fastapi_async":
            client = state["async"]
            rs = await asyncio.gather(*(client.get(opts.downstream + leg_target(id, k))
                                        for k in range(2)))
            ok = all(r.status_code == 200 for r in rs)
        else:
            async def leg0():
                r = await state["async"].get(opts.downstream + leg_target(id, 0))
                return r.status_code
            task = asyncio.create_task(leg0())
            st1 = await asyncio.to_thread(blocking_get, opts.downstream, leg_target(id, 1))
            ok = (await task) == 200 and st1 == 200
        await asyncio.sleep(jitter_s(opts))
        return Response("done\n", status_code=200 if ok else 502)

    return app


def run_uvicorn(opts):
    import uvicorn
    uvicorn.run(fastapi_app(opts), host=opts.host, port=opts.port, log_level="warning",
                loop="asyncio", http="h11", backlog=256)


def run_aiohttp(opts):
    import aiohttp
    from aiohttp import web

    async def work(request):
        rid = request.query["id"]
        await asyncio.sleep(jitter_s(opts))
        session = request.app["session"]

        async def leg(k):
            async with session.get(opts.downstream + leg_target(rid, k)) as r:
                await r.read()
                return r.status
        sts = await asyncio.gather(leg(0), leg(1))
        await asyncio.sleep(jitter_s(opts))
        return web.Response(text="done\n", status=200 if all(s == 200 for s in sts) else 502)

    async def main():
        app = web.Application()
        app.router.add_get("/work", work)
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, opts.host, opts.port, backlog=256).start()
        print("listening", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def run_flask(opts):
    import time
    from flask import Flask, request
    from werkzeug.serving import make_server

    app = Flask("front")

    @app.get("/work")
    def work():
        rid = request.args["id"]
        time.sleep(jitter_s(opts))
        st = blocking_get(opts.downstream, leg_target(rid, 0))
        time.sleep(jitter_s(opts))
        return "done\n", 200 if st == 200 else 502

    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = make_server(opts.host, opts.port, app, threaded=True)
    print("listening", flush=True)
    srv.serve_forever()


# ---- Django under gunicorn (gthread) ----------------------------------------

def django_application():
    import time
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    downstream = os.environ["PYFW_DOWNSTREAM"]
    jitter_ms = int(os.environ.get("PYFW_JITTER_MS", "0"))

    def work(request):
        rid = request.GET["id"]
        time.sleep(random.uniform(0, jitter_ms) / 1000.0)
        st = blocking_get(downstream, leg_target(rid, 0))
        time.sleep(random.uniform(0, jitter_ms) / 1000.0)
        return HttpResponse("done\n", status=200 if st == 200 else 502)

    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                       SECRET_KEY="test-only", MIDDLEWARE=[])
    global urlpatterns
    urlpatterns = [path("work", work)]
    django.setup()
    from django.core.wsgi import get_wsgi_application
    return get_wsgi_application()


urlpatterns = []


def run_django(opts):
    conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_frameworks_gunicorn.py")
    env = dict(os.environ, PYFW_DOWNSTREAM=opts.downstream, PYFW_JITTER_MS=str(opts.jitter_ms),
               PYTHONPATH=os.path.dirname(os.path.realpath(__file__)))
    # exec: the test's pid is gunicorn's master; its gthread worker is its child.
    os.execve(sys.executable, [sys.executable, "-m", "gunicorn", "-c", conf,
                               "--worker-class", "gthread", "--threads", "8", "--workers", "1",
                               "--backlog", "256", "--bind", f"{opts.host}:{opts.port}",
                               "--log-level", "warning", "py_frameworks:django_wsgi()"], env)


def django_wsgi():
    return django_application()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--framework", choices=sorted(FANOUT), required=True)
    ap.add_argument("--downstream", required=True)
    ap.add_argument("--jitter-ms", type=int, default=0)
    opts = ap.parse_args()
    if opts.framework.startswith("fastapi"):
        run_uvicorn(opts)
    elif opts.framework == "aiohttp":
        run_aiohttp(opts)
    elif opts.framework == "flask":
        run_flask(opts)
    else:
        run_django(opts)


if __name__ == "__main__":
    main()
