"""The login of a web application, the chain of issue 13: curl -> nginx ->
gunicorn -> Django -> PostgreSQL, nobody instrumented, each in a namespace of
the test. Three logins are answered 422 (a field missing: no query), 400
(wrong password: the account's SELECT) and 200 (the SELECT, then an UPDATE
of last_login). Each login must be one connected trace:

  nginx SERVER -> nginx CLIENT -> Django SERVER -> PostgreSQL CLIENT (each query)

nginx -> Django is joined by the traceparent the kernel inserts into nginx's
proxied request (nginx and gunicorn in the test's own cgroup); Django ->
PostgreSQL by the thread model (gunicorn's gthread worker reads the request
and queries on one thread). No literal of a query (the username, the
timestamp, the account id) nor the password or its hash may appear anywhere
in the agent's output.

Processes: nginx (Debian's), gunicorn + Django + psycopg2 with Debian's
/usr/bin/python3 (services/django_login.py), PostgreSQL 15 (db_util.py:
initdb on its own port), curl."""
import json
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, SERVICES, attr, by_kind, children, require_propagation
from db_util import psql, start_postgres
from propagation_util import TestCgroup, nginx_proxy, start_in, wait_heads

PG_HOST, PG_PORT = "10.214.3.2", 5434
APP_HOST, APP_PORT = "10.214.2.2", 8000
WEB_HOST, WEB_PORT = "10.214.1.2", 8080
USERNAME = "alice-S3cr3tUser"
PASSWORD = "pw-S3cr3tPass"
WRONG_PASSWORD = "pw-Wr0ngS3cr3t"
ACCOUNT_ID = 7351908642  # long enough not to occur by chance in ids or times
SERVICE = "django-login"

SELECT_TEXT = ('SELECT "accounts"."id", "accounts"."username", "accounts"."password", '
               '"accounts"."last_login" FROM "accounts" WHERE "accounts"."username" = ? '
               'ORDER BY "accounts"."id" ASC LIMIT ?')
UPDATE_TEXT = 'UPDATE "accounts" SET "last_login" = ?::timestamptz WHERE "accounts"."id" = ?'


@pytest.fixture
def cg(topo):
    require_propagation()
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def login_chain(topo, cg):
    """Starts PostgreSQL (db), Django under gunicorn (app) and nginx (web);
    returns (client namespace, pids to select, the password's hash, the file
    where Django logs the traceparent of each request)."""
    c, web, app, db = topo.ns("c"), topo.ns("web"), topo.ns("app"), topo.ns("db")
    topo.link(c, "10.214.1.1", web, WEB_HOST)
    topo.link(web, "10.214.2.1", app, APP_HOST)
    topo.link(app, "10.214.3.1", db, PG_HOST)
    start_postgres(topo, db, PG_HOST, PG_PORT)
    pw_hash = subprocess.run([PYTHON, str(SERVICES / "django_login.py"), "--hash", PASSWORD],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert pw_hash.startswith("md5$"), pw_hash
    psql(topo, db, PG_HOST, PG_PORT, "shop",
         "CREATE TABLE accounts (id bigint PRIMARY KEY, username text UNIQUE NOT NULL, "
         "password text NOT NULL, last_login timestamptz); "
         f"INSERT INTO accounts VALUES ({ACCOUNT_ID}, '{USERNAME}', '{pw_hash}', NULL)")
    heads_log = Path(f"/tmp/ht{topo.tag}/django.heads.jsonl")
    django = start_in(topo, cg, app, [PYTHON, str(SERVICES / "django_login.py"),
                                      "--host", APP_HOST, "--port", str(APP_PORT),
                                      "--pg-host", PG_HOST, "--pg-port", str(PG_PORT),
                                      "--headers-log", str(heads_log)],
                      env={"OTEL_SERVICE_NAME": SERVICE})
    assert django.stdout.readline().strip() == b"listening", "gunicorn did not start"
    nginx, _ = nginx_proxy(topo, cg, web, WEB_HOST, WEB_PORT, f"http://{APP_HOST}:{APP_PORT}")
    pids = [nginx.pid] + list(cg.extra_pids) + [django.pid] + children(django.pid)
    assert len(pids) == 4, pids  # nginx master + worker, gunicorn master + worker
    return c, pids, pw_hash, heads_log


def post_login(topo, ns, *fields):
    """curl POSTs the form fields (name=value) to nginx; returns the status."""
    argv = []
    for f in fields:
        argv += ["--data-urlencode", f]
    return topo.curl(ns, f"http://{WEB_HOST}:{WEB_PORT}/login", *argv)


def last_login(topo):
    r = subprocess.run(["ip", "netns", "exec", f"ht{topo.tag}db", "psql", "-X", "-At", "-h",
                        PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", "shop", "-c",
                        f"SELECT last_login IS NOT NULL FROM accounts WHERE id = {ACCOUNT_ID}"],
                       capture_output=True, text=True)
    return r.stdout.strip()


LOGINS = [  # (form fields, status, the queries Django makes)
    ((f"username={USERNAME}",), 422, []),
    # Django quotes every name; the collection is kept as written (sql_summary.h).
    ((f"username={USERNAME}", f"password={WRONG_PASSWORD}"), 400, ['SELECT "accounts"']),
    ((f"username={USERNAME}", f"password={PASSWORD}"), 200, ['SELECT "accounts"',
                                                              'UPDATE "accounts"']),
]


def test_login_chain_one_trace_per_login_nginx_django_postgresql(topo, cg, agent_factory):
    c, pids, pw_hash, heads_log = login_chain(topo, cg)
    args = ["--propagation-cgroup", str(cg.path)]
    for pid in pids:
        args += ["--pid", str(pid)]
    agent = agent_factory(*args)

    for fields, status, _ in LOGINS:
        assert post_login(topo, c, *fields) == str(status), fields
    assert last_login(topo) == "t"  # the 200 login really updated the row

    n_db = sum(len(q) for _, _, q in LOGINS)
    spans = agent.wait_spans(
        lambda s: len(by_kind(s, "SERVER", SERVICE)) >= 3 and len(by_kind(s, "SERVER", "nginx"))
        >= 3 and len(by_kind(s, "CLIENT", "nginx")) >= 3 and
        len([x for x in by_kind(s, "CLIENT", SERVICE)
             if attr(x, "db.system.name") == "postgresql"]) >= n_db, timeout=30)
    traces = {}
    for s in spans:
        traces.setdefault(s["trace_id"], []).append(s)
    assert len(traces) == len(LOGINS), {t: [(x["kind"], x["name"]) for x in v]
                                         for t, v in traces.items()}
    by_status = {}
    for trace_id, members in traces.items():
        [srv] = by_kind(members, "SERVER", "nginx")
        by_status[attr(srv, "http.response.status_code")] = members
    assert sorted(by_status) == sorted(status for _, status, _ in LOGINS)

    for _, status, queries in LOGINS:
        check_login_trace(by_status[status], status, queries)

    # On the wire: Django received exactly the traceparent naming nginx's
    # CLIENT span of the same login (inserted by the kernel into nginx's
    # request; nginx itself got none from curl).
    received = [json.loads(line)["traceparent"] for line in heads_log.read_text().splitlines()]
    expected = []
    for _, status, _ in LOGINS:
        [n_cli] = by_kind(by_status[status], "CLIENT", "nginx")
        expected.append(f"00-{n_cli['trace_id']}-{n_cli['span_id']}-01")
    assert received == expected

    agent.stop()
    out = agent.out.read_text() + agent.log_text()
    for secret in (USERNAME, "S3cr3t", PASSWORD, WRONG_PASSWORD, pw_hash, pw_hash.split("$")[-1],
                   str(ACCOUNT_ID)):
        assert secret not in out, f"{secret!r} left the host"


def check_login_trace(spans, status, queries):
    """One login's trace: exactly nginx SERVER -> nginx CLIENT -> Django
    SERVER -> the queries, with their parents, names, statuses and times."""
    [n_srv] = by_kind(spans, "SERVER", "nginx")
    [n_cli] = by_kind(spans, "CLIENT", "nginx")
    [d_srv] = by_kind(spans, "SERVER", SERVICE)
    db = by_kind(spans, "CLIENT", SERVICE)
    assert len(spans) == 3 + len(queries), [(s["kind"], s["name"]) for s in spans]
    assert [s["name"] for s in sorted(db, key=lambda s: s["start_time_unix_nano"])] == queries

    # Parents, exactly: a new trace at nginx (curl sent no traceparent).
    assert n_srv["parent_span_id"] == ""
    assert n_cli["parent_span_id"] == n_srv["span_id"]
    assert d_srv["parent_span_id"] == n_cli["span_id"]
    for q in db:
        assert q["parent_span_id"] == d_srv["span_id"], q["name"]
    for child, parent in [(n_cli, n_srv), (d_srv, n_cli)] + [(q, d_srv) for q in db]:
        assert parent["start_time_unix_nano"] <= child["start_time_unix_nano"], child["name"]
        assert child["end_time_unix_nano"] <= parent["end_time_unix_nano"], child["name"]

    # HTTP: names, attributes and the semconv status rules (a 4xx is an
    # error for the client, not for the server).
    for s in (n_srv, n_cli, d_srv):
        assert s["name"] == "POST", s["name"]
        assert attr(s, "http.request.method") == "POST"
        assert attr(s, "http.response.status_code") == status
        assert attr(s, "user_agent.original").startswith("curl/")  # nginx passes it on
    for s in (n_srv, d_srv):
        assert attr(s, "url.path") == "/login"
    assert attr(n_cli, "url.full") == f"http://{APP_HOST}:{APP_PORT}/login"
    assert attr(n_cli, "server.address") == APP_HOST and attr(n_cli, "server.port") == APP_PORT
    assert attr(n_srv, "client.address") == "10.214.1.1"
    assert attr(d_srv, "client.address") == "10.214.2.1"
    for s in (n_srv, d_srv):
        assert s["status"]["code"] == "UNSET", (s["name"], status)
        assert attr(s, "error.type") is None
    if status >= 400:
        assert n_cli["status"]["code"] == "ERROR"
        assert attr(n_cli, "error.type") == str(status)
    else:
        assert n_cli["status"]["code"] == "UNSET"
        assert attr(n_cli, "error.type") is None

    # PostgreSQL: what the query was, never with what values.
    for q in db:
        assert attr(q, "db.system.name") == "postgresql"
        assert attr(q, "db.namespace") == "shop"
        assert attr(q, "server.address") == PG_HOST and attr(q, "server.port") == PG_PORT
        assert attr(q, "db.collection.name") == '"accounts"'
        assert q["status"]["code"] == "UNSET"
    if queries:
        select = min(db, key=lambda s: s["start_time_unix_nano"])
        assert attr(select, "db.operation.name") == "SELECT"
        assert attr(select, "db.query.text") == SELECT_TEXT
        assert attr(select, "db.response.returned_rows") == 1
    if len(queries) == 2:
        update = max(db, key=lambda s: s["start_time_unix_nano"])
        assert attr(update, "db.operation.name") == "UPDATE"
        assert attr(update, "db.query.text") == UPDATE_TEXT
