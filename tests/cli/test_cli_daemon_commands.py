"""The daemon's commands in-process through the ``cli`` fixture: up, down, status, route, logs,
open, against a real daemon on a free port with a private state dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport import gateway
from homeport.daemon.client import lock_held
from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import read_info
from homeport.gateway.contract import AccessRecord
from homeport.store import Store

Cli = Callable[..., Any]


def stop(config: DaemonConfig) -> None:
    info = read_info(config) or {}
    pid = info.get("pid")
    if not isinstance(pid, int):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while lock_held(config) and time.monotonic() < deadline:
        time.sleep(0.02)  # the lock frees when the daemon is gone
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.fixture
def config(
    state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DaemonConfig]:
    """Where a daemon started by these tests lives; stopped by PID afterwards."""
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    cfg = DaemonConfig.build()
    try:
        yield cfg
    finally:
        stop(cfg)


@pytest.fixture
def up(cli: Cli, config: DaemonConfig) -> DaemonConfig:
    result = cli("up", "-d", "--json")
    assert result.status == 0, result.stderr
    return config


def test_up_detached_then_again_says_where(cli: Cli, config: DaemonConfig) -> None:
    first = cli("up", "-d", "--json")
    assert first.status == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["port"] == config.port
    assert info["url"] == f"http://homeport.localhost:{config.port}"
    again = cli("up", "-d")
    assert again.status == 1
    assert (
        f"already running at http://homeport.localhost:{config.port} (pid {info['pid']})"
        in again.stderr
    )


def test_status_and_down(cli: Cli, up: DaemonConfig) -> None:
    st = cli("status", "--json")
    assert st.status == 0
    data = json.loads(st.stdout)
    assert data["running"] is True
    assert data["status"]["port"] == up.port
    assert set(data) == {"running", "status", "routes", "services", "notices"}
    lag = data["status"]["loop_lag_ms"]
    assert {"p99", "max", "p99_own", "max_own", "over_5ms", "over_5ms_own"} <= set(lag)
    # The daemon runs this install: compiled or not, it says so, and the text says pure.
    assert data["status"]["build"] == gateway.build()
    human = cli("status")
    assert f"at http://homeport.localhost:{up.port}" in human.stdout
    assert ("proxy: pure Python" in human.stdout) == (gateway.build() == "python")
    down = cli("down", "--json")
    assert (down.status, json.loads(down.stdout)["stopped"]) == (0, True)
    assert not lock_held(up)
    after = cli("status", "--json")
    assert after.status == 1
    assert json.loads(after.stdout) == {
        "running": False,
        "status": None,
        "routes": [],
        "services": [],
        "notices": [],
    }
    assert cli("down").status == 1


def test_route_add_ls_rm(cli: Cli, up: DaemonConfig) -> None:
    added = cli("route", "add", "api", "3000", "--json")
    assert added.status == 0, added.stderr
    assert json.loads(added.stdout)["route"]["target"] == "http://127.0.0.1:3000"
    tok = cli("route", "add", "admin", "[::1]:9000", "--auth", "token", "--same-origin")
    assert tok.status == 0
    assert "token: " in tok.stdout
    cgi = cli("route", "add", "cgi", "3001", "--allow-underscores", "--json")
    assert json.loads(cgi.stdout)["route"]["allow_underscores"] is True
    listed = cli("route", "ls", "--json")
    rows = json.loads(listed.stdout)["routes"]
    assert [(r["name"], r["auth"], r["same_origin"], r["allow_underscores"]) for r in rows] == [
        ("admin.localhost", "token", True, False),
        ("api.localhost", "none", False, False),
        ("cgi.localhost", "none", False, True),
    ]
    table = cli("route", "ls")
    assert f"http://api.localhost:{up.port}" in table.stdout
    assert cli("route", "rm", "api").status == 0
    missing = cli("route", "rm", "api")
    assert missing.status == 1
    assert "no route named api.localhost" in missing.stderr


def test_route_add_cross_site_opt_outs(cli: Cli, up: DaemonConfig) -> None:
    added = cli(
        "route", "add", "api", "3000", "--allow-origin", "HTTP://LocalHost:5173/",
        "--allow-origin", "https://web.localhost:443", "--json",
    )  # fmt: skip
    assert added.status == 0, added.stderr
    route = json.loads(added.stdout)["route"]
    assert route["allow_origins"] == ["http://localhost:5173", "https://web.localhost"]
    assert route["allow_cross_site"] is False
    opened = cli("route", "add", "open", "3001", "--allow-cross-site", "--json")
    assert json.loads(opened.stdout)["route"]["allow_cross_site"] is True


def test_status_shows_the_upgrade_notice_once(cli: Cli, config: DaemonConfig) -> None:
    import sqlite3

    from homeport.store import MIGRATIONS, db_path

    config.state_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path(config.state_dir))
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO routes VALUES ('old.localhost', 'http://127.0.0.1:3000', 0, 'none', NULL,"
        " 0, '[]', NULL, 1.0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    assert cli("up", "-d").status == 0
    first = cli("status")
    assert "notice: cross-site protection is now on by default: old.localhost" in first.stdout
    again = cli("status", "--json")
    assert json.loads(again.stdout)["notices"] == []


def test_route_add_starts_the_daemon_when_needed(cli: Cli, config: DaemonConfig) -> None:
    assert read_info(config) is None
    result = cli("route", "add", "auto", "4000")
    assert result.status == 0, result.stderr
    assert f"http://auto.localhost:{config.port} -> http://127.0.0.1:4000" in result.stdout
    assert read_info(config) is not None


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("route", "add", "api", "10.1.2.3:80"), "not on loopback"),
        (("route", "add", "bad name", "80"), "bad route name"),
        (("route", "add", "api", "80", "--auth", "magic"), "bad auth"),
        (("route", "add", "api", "80", "--allow-origin", "localhost:5173"), "bad origin"),
        (("run", "--allow-origin", "http://x/y", "--", "true"), "bad origin"),
        (("up", "-d", "--expose", "192.168.1.9"), "without authentication"),
        (("run",), "nothing to run"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_starts_nothing(
    cli: Cli, config: DaemonConfig, argv: tuple[str, ...], fragment: str
) -> None:
    result = cli(*argv)
    assert result.status == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert read_info(config) is None


def test_logs_access_reads_the_ring(cli: Cli, up: DaemonConfig) -> None:
    store = Store(up.db_path)
    store.append_access(
        [
            AccessRecord(
                1.0e9 + i,
                "127.0.0.1" if i else "192.168.1.7",
                5000 + i,
                f"r{i % 2}.localhost",
                "GET",
                f"/{i}",
                200 if i else 502,
                0,
                10,
                0.5,
                f"r{i % 2}.localhost",
                None if i else "upstream-refused",
                external=not i,
            )
            for i in range(4)
        ]
    )
    store.close()
    # The daemon logs the API calls the CLI itself makes: hidden unless asked for.
    data = json.loads(cli("logs", "--access", "--json").stdout)
    assert [r["path"] for r in data["records"]] == ["/0", "/1", "/2", "/3"]

    def api_calls_logged() -> bool:  # the daemon writes its log in batches (every 0.2 s)
        rows = json.loads(cli("logs", "--access", "--control", "--json").stdout)["records"]
        return any(r["reason"] == "control" and r["path"].startswith("/api/") for r in rows)

    deadline = time.monotonic() + 10
    while not api_calls_logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api_calls_logged()
    only = json.loads(cli("logs", "--access", "--route", "r1", "--json").stdout)
    assert [r["path"] for r in only["records"]] == ["/1", "/3"]
    human = cli("logs", "--access", "-n", "4").stdout.splitlines()
    assert "EXTERNAL" in human[0]
    assert "(upstream-refused)" in human[0]
    assert "EXTERNAL" not in human[1]


def test_logs_access_without_a_daemon_reads_the_database(cli: Cli, config: DaemonConfig) -> None:
    store = Store(config.db_path)
    store.append_access(
        [
            AccessRecord(
                1.0e9, "127.0.0.1", 1, "a.localhost", "GET", "/x", 200, 0, 1, 0.1, "a.localhost"
            )
        ]
    )
    store.close()
    data = json.loads(cli("logs", "--access", "--json").stdout)
    assert [r["path"] for r in data["records"]] == ["/x"]
    assert json.loads(cli("logs", "--json").stdout) == data  # no service named: the access log
    assert read_info(config) is None  # reading the log started nothing


def test_open_prints_a_one_time_link(cli: Cli, up: DaemonConfig) -> None:
    result = cli("open", "--json")
    assert result.status == 0
    data = json.loads(result.stdout)
    assert data["url"].startswith(f"http://homeport.localhost:{up.port}/login?token=")
    assert data["opened"] is False
    second = json.loads(cli("open", "--json").stdout)
    assert second["url"] != data["url"]


def test_help_teaches_with_examples(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("up", "down", "status", "run", "route", "logs", "open"):
        result = cli(command, "--help")
        assert result.status == 0
        text = result.stdout + capsys.readouterr().out  # argparse prints help to sys.stdout
        assert "examples:" in text, command
        assert "--json" in text, command


def test_logs_follow_prints_new_requests_as_json_lines(up: DaemonConfig) -> None:
    import select
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "homeport",
            "logs",
            "--access",
            "-f",
            "--json",
            "--interval",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOMEPORT_PORT": str(up.port)},
    )
    try:
        store = Store(up.db_path)
        rec = AccessRecord(
            2.0e9, "127.0.0.1", 1, "f.localhost", "POST", "/followed", 201, 3, 4, 0.2, "f.localhost"
        )
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + 20
        while b"/followed" not in line and time.monotonic() < deadline:
            store.append_access([rec])  # until the follower has started and sees one
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
        store.close()
        got = json.loads(line)
        assert (got["path"], got["status"], got["method"]) == ("/followed", 201, "POST")
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def gateway_status(port: int, host: str, user_pass: str | None) -> int:
    """The status the gateway answers for ``GET /`` on ``host``, with basic credentials."""
    import base64
    import http.client

    headers = {"Host": host}
    if user_pass is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port held bound but not listening: a connect there is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    "argv",
    [
        ("route", "add", "api", "80", "--auth", "basic:me"),
        ("run", "--auth", "basic:me", "--", "true"),
        ("up", "-d", "--auth", "basic:me"),
    ],
)
def test_basic_user_without_password_or_tty_is_one_usage_line(
    cli: Cli, config: DaemonConfig, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    monkeypatch.delenv("HOMEPORT_AUTH_PASSWORD", raising=False)
    result = cli(*argv)  # the cli fixture's stdin is no terminal
    assert result.status == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs a password" in lines[0]
    assert "HOMEPORT_AUTH_PASSWORD=" in lines[0]  # says how to pass it
    assert read_info(config) is None  # no gateway started for nothing


def test_route_add_basic_user_from_the_environment(
    cli: Cli, up: DaemonConfig, monkeypatch: pytest.MonkeyPatch, dead_port: int
) -> None:
    monkeypatch.setenv("HOMEPORT_AUTH_PASSWORD", "env-pass")
    added = cli("route", "add", "locked", str(dead_port), "--auth", "basic:me", "--json")
    assert added.status == 0, added.stderr
    assert added.stderr == ""  # no warning: nothing secret was on the command line
    assert json.loads(added.stdout)["route"]["auth"] == "basic"
    assert "HOMEPORT_AUTH_PASSWORD" not in os.environ  # gone before any child could start
    host = f"locked.localhost:{up.port}"
    assert gateway_status(up.port, host, None) == 401
    assert gateway_status(up.port, host, "me:wrong") == 401
    assert gateway_status(up.port, host, "me:env-pass") == 502  # past auth; nothing listens


def test_inline_password_works_with_a_one_line_warning(
    cli: Cli, up: DaemonConfig, dead_port: int
) -> None:
    added = cli("route", "add", "inline", str(dead_port), "--auth", "basic:me:pw")
    assert added.status == 0, added.stderr
    lines = added.stderr.splitlines()
    assert len(lines) == 1, added.stderr
    assert "visible to every user in the process list" in lines[0]
    assert "HOMEPORT_AUTH_PASSWORD" in lines[0]  # and how to avoid it
    host = f"inline.localhost:{up.port}"
    assert gateway_status(up.port, host, "me:pw") == 502


def test_up_detached_basic_user_from_the_environment(
    cli: Cli, config: DaemonConfig, monkeypatch: pytest.MonkeyPatch, dead_port: int
) -> None:
    monkeypatch.setenv("HOMEPORT_AUTH_PASSWORD", "gw-pass")
    started = cli("up", "-d", "--auth", "basic:me", "--json")
    assert started.status == 0, started.stderr
    assert started.stderr == ""
    pid = json.loads(started.stdout)["pid"]
    for part in ("cmdline", "environ"):
        assert b"gw-pass" not in Path(f"/proc/{pid}/{part}").read_bytes(), part
    # A route without auth of its own takes the gateway's.
    assert cli("route", "add", "plain", str(dead_port)).status == 0
    host = f"plain.localhost:{config.port}"
    assert gateway_status(config.port, host, None) == 401
    assert gateway_status(config.port, host, "me:gw-pass") == 502


def test_audit_checks_routes_through_the_gateway_and_agrees_with_it(
    cli: Cli, up: DaemonConfig
) -> None:
    """A route the gateway protects yields no browser-risk finding; one that opted out is
    judged by its service (a real WebSocket server that accepts any Origin)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from gateway_support import ws_echo

    with ws_echo() as port:
        assert cli("route", "add", "guarded", str(port)).status == 0
        assert cli("route", "add", "opened", str(port), "--allow-cross-site").status == 0
        result = cli("audit", "--port", str(up.port), "--no-outside", "--json")
        assert result.status in (0, 1), result.stderr
        found = json.loads(result.stdout)["findings"]
    ws = [f for f in found if f["rule"] == "websocket-origin"]
    assert len(ws) == 1, found
    assert "route opened.localhost" in ws[0]["title"]
    assert not any("guarded.localhost" in json.dumps(f) for f in found)
