"""PostgreSQL seen on the wire: a private cluster (initdb, its own port, in
a namespace of the test) and unmodified clients, psql, psycopg2 (simple
query protocol) and psycopg 3 (extended protocol, named prepared statements
reused). The agent follows the clients from their first byte; the spans
must name the operation and table, carry the sanitized query, the database
and the server, an SQLSTATE for errors, and no literal of any query may
appear anywhere in the agent's output."""
from conftest import PYTHON, SERVICES, attr, by_kind
from db_util import Gated, python_client, start_postgres, start_redis

HOST, PORT = "10.211.1.2", 5433
# Literals the queries carry: none may leave the agent.
SECRET_ID = 987654321987
SECRET_MAIL = "S3cr3t-Mail@example.com"


def db_setup(topo):
    c, db = topo.ns("c"), topo.ns("db")
    topo.link(c, "10.211.1.1", db, HOST)
    start_postgres(topo, db, HOST, PORT)
    return c


def db_spans(spans):
    return [s for s in spans if attr(s, "db.system.name") == "postgresql"]


def assert_common(span):
    assert span["kind"] == "CLIENT"
    assert attr(span, "db.system.name") == "postgresql"
    assert attr(span, "db.namespace") == "shop"
    assert attr(span, "server.address") == HOST
    assert attr(span, "server.port") == PORT
    assert span["end_time_unix_nano"] >= span["start_time_unix_nano"]


def assert_no_literals(agent):
    agent.stop()
    text = agent.out.read_text() + agent.log_text()
    for secret in (str(SECRET_ID), SECRET_MAIL, "S3cr3t"):
        assert secret not in text, f"{secret!r} left the host"


PSYCOPG2 = f"""
import psycopg2
conn = psycopg2.connect(host="{HOST}", port={PORT}, dbname="shop", user="postgres",
                        sslmode="prefer")  # SSLRequest, answered 'N'
conn.autocommit = True
cur = conn.cursor()
cur.execute("INSERT INTO users (id, email) VALUES (%s, %s)", ({SECRET_ID}, "{SECRET_MAIL}"))
cur.execute("SELECT email FROM users WHERE id = %s", ({SECRET_ID},))
assert cur.fetchone() == ("{SECRET_MAIL}",)
try:
    cur.execute("SELECT * FROM no_such_table WHERE email = %s", ("{SECRET_MAIL}",))
except psycopg2.errors.UndefinedTable:
    pass
conn.close()
"""


def test_psycopg2_simple_queries_and_error(topo, agent_factory):
    c = db_setup(topo)
    client = python_client(topo, c, PSYCOPG2)
    agent = agent_factory("--pid", str(client.pid), "--no-propagation")
    code, _ = client.run()
    assert code == 0
    spans = agent.wait_spans(lambda s: len(db_spans(s)) >= 3)
    ins, sel, err = db_spans(spans)
    for s in (ins, sel, err):
        assert_common(s)

    assert ins["name"] == "INSERT users"
    assert attr(ins, "db.operation.name") == "INSERT"
    assert attr(ins, "db.collection.name") == "users"
    assert attr(ins, "db.query.text") == "INSERT INTO users (id, email) VALUES (?, ?)"
    assert ins["status"]["code"] == "UNSET"

    assert sel["name"] == "SELECT users"
    assert attr(sel, "db.query.text") == "SELECT email FROM users WHERE id = ?"
    assert attr(sel, "db.response.returned_rows") == 1
    assert sel["status"]["code"] == "UNSET"

    assert err["name"] == "SELECT no_such_table"
    assert attr(err, "db.query.text") == "SELECT * FROM no_such_table WHERE email = ?"
    assert err["status"]["code"] == "ERROR"
    assert attr(err, "db.response.status_code") == "42P01"
    assert attr(err, "error.type") == "42P01"

    # One client thread, no incoming request: each query is its own trace.
    assert len({s["trace_id"] for s in (ins, sel, err)}) == 3
    assert all(s["parent_span_id"] in ("", "0" * 16, None) for s in (ins, sel, err))
    assert_no_literals(agent)


PSYCOPG3 = f"""
import psycopg
with psycopg.connect(host="{HOST}", port={PORT}, dbname="shop", user="postgres",
                     sslmode="disable", autocommit=True) as conn:
    for i in range(3):  # prepared once, then Bind/Execute on the named statement
        conn.execute("SELECT email FROM users WHERE id = %s", ({SECRET_ID} + i,), prepare=True)
    conn.execute("UPDATE users SET email = %s WHERE id = %s", ("{SECRET_MAIL}", {SECRET_ID}))
    try:
        conn.execute("SELECT * FROM no_such_table WHERE id = %s", ({SECRET_ID},))
    except psycopg.errors.UndefinedTable:
        pass
"""


def test_psycopg3_extended_protocol_prepared_reuse_and_error(topo, agent_factory):
    c = db_setup(topo)
    client = python_client(topo, c, PSYCOPG3)
    agent = agent_factory("--pid", str(client.pid), "--no-propagation")
    code, _ = client.run()
    assert code == 0
    spans = agent.wait_spans(lambda s: len(db_spans(s)) >= 5)
    got = db_spans(spans)
    assert [s["name"] for s in got] == ["SELECT users"] * 3 + ["UPDATE users",
                                                                "SELECT no_such_table"]
    for s in got:
        assert_common(s)
    for s in got[:3]:
        assert attr(s, "db.query.text") == "SELECT email FROM users WHERE id = $1"
        assert attr(s, "db.operation.name") == "SELECT"
        assert attr(s, "db.collection.name") == "users"
        assert s["status"]["code"] == "UNSET"
    assert attr(got[3], "db.query.text") == "UPDATE users SET email = $1 WHERE id = $2"
    assert got[4]["status"]["code"] == "ERROR"
    assert attr(got[4], "error.type") == "42P01"
    assert_no_literals(agent)


def test_psql_simple_query(topo, agent_factory):
    c = db_setup(topo)
    client = Gated(topo, c, ["psql", "-X", "-h", HOST, "-p", str(PORT), "-U", "postgres", "-d",
                             "shop", "-c",
                             f"SELECT count(*) FROM users WHERE email = '{SECRET_MAIL}'"])
    agent = agent_factory("--pid", str(client.pid), "--no-propagation")
    code, out = client.run()
    assert code == 0 and "0" in out
    spans = agent.wait_spans(lambda s: any(x["name"] == "SELECT users" for x in db_spans(s)))
    [sel] = [s for s in db_spans(spans) if s["name"] == "SELECT users"]
    assert_common(sel)
    assert attr(sel, "db.query.text") == "SELECT count(*) FROM users WHERE email = ?"
    assert attr(sel, "db.response.returned_rows") == 1
    assert_no_literals(agent)


def test_http_server_span_parents_its_database_calls(topo, agent_factory):
    """curl -> a Python HTTP service (one thread per request) -> PostgreSQL
    and Redis: the service's SERVER span is the parent of every database
    CLIENT span the request's thread made, all in the caller's trace."""
    c, app, db = topo.ns("c"), topo.ns("app"), topo.ns("db")
    topo.link(c, "10.211.3.1", app, "10.211.3.2")
    topo.link(app, "10.211.1.1", db, HOST)
    start_postgres(topo, db, HOST, PORT)
    start_redis(topo, db, HOST, 6390)
    svc = topo.start(app, [PYTHON, str(SERVICES / "db_service.py"), "--host", "10.211.3.2",
                           "--port", "8080", "--pg-host", HOST, "--pg-port", str(PORT),
                           "--redis-host", HOST, "--redis-port", "6390"])
    assert svc.stdout.readline().strip() == b"listening"
    from db_util import psql
    psql(topo, db, HOST, PORT, "shop", f"INSERT INTO users VALUES ({SECRET_ID}, '{SECRET_MAIL}')")
    agent = agent_factory("--pid", str(svc.pid), "--no-propagation")
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert topo.curl(c, f"http://10.211.3.2:8080/user?id={SECRET_ID}",
                     "-H", f"traceparent: 00-{trace}-{parent}-01") == "200"
    names = {"BEGIN shop", "SELECT users", "COMMIT shop", "SET"}
    spans = agent.wait_spans(lambda s: names <= {x["name"] for x in s} and by_kind(s, "SERVER"))
    [server] = by_kind(spans, "SERVER")
    assert server["trace_id"] == trace and server["parent_span_id"] == parent
    calls = {s["name"]: s for s in by_kind(spans, "CLIENT")}
    assert set(calls) == names, sorted(calls)
    for name, span in calls.items():
        assert span["trace_id"] == trace, name
        assert span["parent_span_id"] == server["span_id"], name
        assert server["start_time_unix_nano"] <= span["start_time_unix_nano"], name
        assert span["end_time_unix_nano"] <= server["end_time_unix_nano"], name
    assert attr(calls["SELECT users"], "db.query.text") == "SELECT email FROM users WHERE id = ?"
    assert attr(calls["BEGIN shop"], "db.operation.name") == "BEGIN"
    assert attr(calls["SET"], "db.system.name") == "redis"
    assert_no_literals(agent)


def test_traced_server_gives_server_spans(topo, agent_factory):
    """The agent on the postmaster: each backend it forks for a connection
    reads the startup and the queries, so the server side gets SERVER spans
    with the same names and sanitized text as a client would."""
    c, db = topo.ns("c"), topo.ns("db")
    topo.link(c, "10.211.1.1", db, HOST)
    postmaster = start_postgres(topo, db, HOST, PORT)
    agent = agent_factory("--pid", str(postmaster.pid), "--no-propagation")
    client = python_client(topo, c, PSYCOPG2)
    code, _ = client.run()
    assert code == 0
    spans = agent.wait_spans(lambda s: len(by_kind(db_spans(s), "SERVER")) >= 3)
    ins, sel, err = [s for s in by_kind(db_spans(spans), "SERVER")
                     if s["name"] in ("INSERT users", "SELECT users", "SELECT no_such_table")]
    assert attr(ins, "db.query.text") == "INSERT INTO users (id, email) VALUES (?, ?)"
    assert attr(sel, "db.query.text") == "SELECT email FROM users WHERE id = ?"
    assert attr(err, "error.type") == "42P01"
    for s in (ins, sel, err):
        assert attr(s, "db.namespace") == "shop"
        assert attr(s, "server.address") == HOST
        assert attr(s, "server.port") == PORT
        assert s["resource"]["attributes"]["process.pid"] != postmaster.pid  # a backend
    assert_no_literals(agent)
