"""Redis seen on the wire: redis-server on its own port in a namespace of
the test, and unmodified clients: redis-cli (RESP2 and, with -3, RESP3) and
Python redis (a pipeline, SELECT, an error). Spans are named after the
command, carry it without its values, the database index and the server,
and an error reply's prefix; no value or key leaves the agent."""
from conftest import attr
from db_util import Gated, python_client, start_redis

HOST, PORT = "10.211.2.2", 6390
SECRET_KEY = "S3cr3t-key-user-987654321987"
SECRET_VALUE = "S3cr3t-value-hunter2"


def redis_setup(topo):
    c, db = topo.ns("c"), topo.ns("db")
    topo.link(c, "10.211.2.1", db, HOST)
    start_redis(topo, db, HOST, PORT)
    return c


def redis_spans(spans):
    return [s for s in spans if attr(s, "db.system.name") == "redis"]


def assert_common(span, namespace="0"):
    assert span["kind"] == "CLIENT"
    assert attr(span, "db.namespace") == namespace
    assert attr(span, "server.address") == HOST
    assert attr(span, "server.port") == PORT
    assert attr(span, "db.operation.name") == span["name"]


def assert_no_values(agent):
    agent.stop()
    text = agent.out.read_text() + agent.log_text()
    for secret in (SECRET_KEY, SECRET_VALUE, "S3cr3t", "987654321987"):
        assert secret not in text, f"{secret!r} left the host"


CLIENT = f"""
import redis
r = redis.Redis(host="{HOST}", port={PORT}, db=2)  # SELECT 2 on connect
r.set("{SECRET_KEY}", "{SECRET_VALUE}")
assert r.get("{SECRET_KEY}") == b"{SECRET_VALUE}"
p = r.pipeline(transaction=False)
p.incr("{SECRET_KEY}:n")  # sent as INCRBY key 1
p.rpush("{SECRET_KEY}:l", "{SECRET_VALUE}", "b")
p.lrange("{SECRET_KEY}:l", 0, -1)
p.execute()
try:
    r.lpush("{SECRET_KEY}", "x")  # a string key: WRONGTYPE
except redis.exceptions.ResponseError:
    pass
"""


def test_python_redis_commands_pipeline_and_error(topo, agent_factory):
    c = redis_setup(topo)
    client = python_client(topo, c, CLIENT)
    agent = agent_factory("--pid", str(client.pid), "--no-propagation")
    code, _ = client.run()
    assert code == 0
    spans = agent.wait_spans(lambda s: len(redis_spans(s)) >= 7)
    got = redis_spans(spans)
    assert [s["name"] for s in got] == ["SELECT", "SET", "GET", "INCRBY", "RPUSH", "LRANGE", "LPUSH"]
    select, set_, get, incr, rpush, lrange, lpush = got
    assert_common(select, namespace="2")  # the index SELECTed is this command's own
    for s in got[1:]:
        assert_common(s, namespace="2")
    assert attr(set_, "db.query.text") == "SET ? ?"
    assert attr(get, "db.query.text") == "GET ?"
    assert attr(incr, "db.query.text") == "INCRBY ? ?"
    assert attr(rpush, "db.query.text") == "RPUSH ? ? ?"
    assert attr(lrange, "db.query.text") == "LRANGE ? ? ?"
    for s in got[:-1]:
        assert s["status"]["code"] == "UNSET", s
    assert lpush["status"]["code"] == "ERROR"
    assert attr(lpush, "error.type") == "WRONGTYPE"
    assert attr(lpush, "db.response.status_code") == "WRONGTYPE"
    # The pipeline's commands were written in one go: they overlap in time,
    # each ending when its own reply was read.
    assert incr["start_time_unix_nano"] <= rpush["start_time_unix_nano"] <= lrange["end_time_unix_nano"]
    assert incr["end_time_unix_nano"] <= lrange["end_time_unix_nano"]
    assert_no_values(agent)


def test_redis_cli_resp2_and_resp3(topo, agent_factory):
    c = redis_setup(topo)
    cli = ["redis-cli", "-h", HOST, "-p", str(PORT)]
    set_client = Gated(topo, c, cli + ["SET", SECRET_KEY, SECRET_VALUE])
    hgetall = Gated(topo, c, cli + ["-3", "HGETALL", SECRET_KEY + ":h"])
    agent = agent_factory("--pid", str(set_client.pid), "--pid", str(hgetall.pid),
                          "--no-propagation")
    assert set_client.run()[0] == 0
    assert hgetall.run()[0] == 0
    spans = agent.wait_spans(lambda s: {"SET", "HGETALL"} <= {x["name"] for x in redis_spans(s)})
    by_name = {s["name"]: s for s in redis_spans(spans)}
    assert attr(by_name["SET"], "db.query.text") == "SET ? ?"
    assert attr(by_name["HGETALL"], "db.query.text") == "HGETALL ?"
    assert "HELLO" in by_name  # redis-cli -3 switches protocols first
    for name in ("SET", "HGETALL", "HELLO"):
        assert_common(by_name[name])
        assert by_name[name]["status"]["code"] == "UNSET"
    assert_no_values(agent)
