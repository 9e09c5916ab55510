"""Private PostgreSQL and Redis servers for the database tests, each in a
network namespace the test created, on its own address and port.

PostgreSQL: a cluster the test initialises with Debian's postgresql-15
`initdb` (trust authentication, no TLS), run as the `postgres` user the
package creates (the server refuses root) through `setpriv`, which execs, so
the pid the test holds is the postmaster's. Redis: `redis-server` with no
persistence. Clients are started paused (`gated`): they print "ready", wait
for a line on stdin, then run; the test starts the agent on their pid in
between, so every connection is followed from its first byte."""
import os
import pwd
import subprocess
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PYTHON = "/usr/bin/python3"


def wait_port(topo, ns, host, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["ip", "netns", "exec", ns, "bash", "-c",
                            f"exec 3<>/dev/tcp/{host}/{port}"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{host}:{port} in {ns} did not open in {timeout}s")


def start_postgres(topo, ns, host, port, database="shop"):
    """initdb + postgres on host:port; creates `database` with a users table.
    Returns the postmaster's Popen."""
    pg = pwd.getpwnam("postgres")
    root = Path(f"/tmp/ht{topo.tag}/pg")
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, pg.pw_uid, pg.pw_gid)
    os.chmod(root.parent, 0o755)
    data = root / "data"
    as_pg = ["setpriv", f"--reuid={pg.pw_uid}", f"--regid={pg.pw_gid}", "--init-groups", "--"]
    subprocess.run(as_pg + [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                   check=True, capture_output=True)
    # initdb trusts loopback only; the clients come from the test's veth.
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 0.0.0.0/0 trust\n")
    proc = topo.start(ns, as_pg + [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                                   "-c", f"listen_addresses={host}", "-c", f"unix_socket_directories={root}",
                                   "-c", "ssl=off", "-c", "fsync=off"])
    wait_port(topo, ns, host, port)
    # The port opens before the server accepts queries ("starting up").
    deadline = time.time() + 30
    while subprocess.run(["ip", "netns", "exec", ns, str(PG_BIN / "pg_isready"), "-q", "-h", host,
                          "-p", str(port)]).returncode != 0:
        assert time.time() < deadline, "postgres did not get ready in 30s"
        time.sleep(0.1)
    psql(topo, ns, host, port, "postgres", f"CREATE DATABASE {database}")
    psql(topo, ns, host, port, database,
         "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)")
    return proc


def psql(topo, ns, host, port, database, sql):
    r = subprocess.run(["ip", "netns", "exec", ns, "psql", "-X", "-q", "-h", host, "-p", str(port),
                    "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql],
                   capture_output=True, text=True, env={**os.environ, "PGSSLMODE": "disable"})
    assert r.returncode == 0, f"psql {sql!r}: {r.stderr}"


def start_redis(topo, ns, host, port):
    work = Path(f"/tmp/ht{topo.tag}/redis-{port}")
    work.mkdir(parents=True, exist_ok=True)
    proc = topo.start(ns, ["redis-server", "--bind", host, "--port", str(port), "--save", "",
                           "--appendonly", "no", "--protected-mode", "no", "--dir", str(work),
                           "--logfile", str(work / "log")])
    wait_port(topo, ns, host, port)
    return proc


class Gated:
    """A client process started paused: run() lets it go and waits for it."""

    def __init__(self, topo, ns, argv, env=None):
        self.proc = topo.start(ns, ["bash", "-c", 'echo ready; read -r _; exec "$@"', "gated"]
                               + argv, env=env, stdin=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == b"ready"
        self.pid = self.proc.pid

    def run(self, timeout=60):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        return code, out.decode()


def python_client(topo, ns, code, env=None):
    return Gated(topo, ns, [PYTHON, "-c", code], env=env)
