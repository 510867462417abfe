"""A real multi-service project: PostgreSQL (Debian's) + a Python API that uses it + a static
frontend + a migration task, run by a real daemon through the real CLI.

It checks the dependency order and readiness gating (the API asks the database at start-up
and exits if it cannot: it only starts once the database accepts and the migration has
completed), that interpolated URLs reach the right ports through the gateway's names, and
that ``down`` leaves no process of the stack (PostgreSQL forks a process per duty)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_support import Homeport, alive, get, homeport_in, stack_pids

PG_BIN = Path("/usr/lib/postgresql/15/bin")

API = textwrap.dedent(
    """
    import http.server, json, os, subprocess, sys
    URL = os.environ["DATABASE_URL"]

    def query(sql):
        out = subprocess.run(["psql", URL, "-tAc", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip())
        return [line for line in out.stdout.splitlines() if line]

    try:
        print("api: the database has", query("select count(*) from items")[0], "items",
              flush=True)
    except RuntimeError as exc:
        print("api: no database:", exc, flush=True)
        sys.exit(1)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                body = b"ok"
            else:
                body = json.dumps(query("select name from items order by name")).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """
)


def _need(tool: str) -> str:
    path = shutil.which(tool) or (str(PG_BIN / tool) if (PG_BIN / tool).exists() else None)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian postgresql; .ci/run installs it)")
    return path


@pytest.fixture
def project_dir() -> Iterator[Path]:
    # Under /tmp itself, mode 0755: pytest's tmp_path is 0700 root, which the postgres
    # user cannot traverse.
    d = Path(tempfile.mkdtemp(prefix="hp-shop-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _cluster(root: Path) -> str:
    """An initdb'd data folder owned by postgres (trust auth, loopback only); the prefix
    that runs a command as postgres."""
    initdb = _need("initdb")
    _need("psql")
    as_pg = "runuser -u postgres --" if os.geteuid() == 0 else ""
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_pg.split(), initdb, "-D", str(root / "pgdata"), "-U", "postgres", "-A", "trust",
         "--no-sync", "--no-instructions"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return as_pg


@pytest.mark.timeout(240)
def test_postgres_api_frontend_and_migration(
    project_dir: Path, tmp_path: Path, free_port: int
) -> None:
    postgres = _need("postgres")
    as_pg = _cluster(project_dir)
    (project_dir / "api.py").write_text(API)
    (project_dir / "static").mkdir()
    (project_dir / "static" / "index.html").write_text("<!doctype html><title>shop</title>")
    (project_dir / "migrate.sql").write_text(
        "create table items (name text); insert into items values ('pear'), ('apple');\n"
    )
    with homeport_in(project_dir, tmp_path / "state", free_port) as hp:
        hp.write(
            f"""
            [project]
            name = "shop"

            [services.db]
            cmd = "exec {as_pg} {postgres} -D pgdata -k {project_dir} -p ${{db.port}} -c listen_addresses=127.0.0.1 -c fsync=off"
            ready = {{ log = "ready to accept connections" }}
            route = false
            stop_signal = "SIGINT"

            [services.migrate]
            kind = "task"
            cmd = "psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ${{db.port}} -U postgres -f migrate.sql"
            depends_on = ["db"]

            [services.api]
            args = ["{sys.executable}", "api.py"]
            env = {{ DATABASE_URL = "postgresql://postgres@127.0.0.1:${{db.port}}/postgres" }}
            depends_on = {{ db = "ready", migrate = "completed" }}
            ready = {{ http = "/health", status = 200 }}

            [services.web]
            cmd = "echo \\"window.API_URL = '${{api.url}}';\\" > static/config.js && exec {sys.executable} -m http.server $PORT -d static --bind 127.0.0.1"
            depends_on = ["api"]
            """  # noqa: E501
        )
        _check_stack(hp)


def _check_stack(hp: Homeport) -> None:
    up = hp.json("up", "-d")
    assert up["ok"] is True, up
    s = {x["name"]: x for x in up["project"]["services"]}
    assert [x["name"] for x in up["project"]["services"]] == ["db", "migrate", "api", "web"]
    assert s["migrate"]["state"] == "completed"
    assert {s[n]["state"] for n in ("db", "api", "web")} == {"ready"}
    assert s["migrate"]["started"] >= s["db"]["ready_since"]
    assert s["api"]["started"] >= s["db"]["ready_since"]
    # The API's first words: the database accepted and the migration had run.
    logs = hp.run("logs", "api").stdout
    assert "api: the database has 2 items" in logs
    # The frontend was told the API's gateway URL, and that name reaches the API.
    api_host = f"api.shop.localhost:{hp.port}"
    assert s["api"]["url"] == f"http://{api_host}"
    status, config_js = get(hp.port, f"web.shop.localhost:{hp.port}", "/config.js")
    assert status == 200
    assert f"window.API_URL = 'http://{api_host}';" in config_js
    status, items = get(hp.port, api_host, "/items")
    assert (status, json.loads(items)) == (200, ["apple", "pear"])
    pids = stack_pids(s)
    assert len(pids) >= 6  # postgres alone runs a postmaster and several workers
    hp.json("down")
    assert alive(pids) == set()
