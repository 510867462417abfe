"""``homeport mcp`` through the official SDK's client over stdio, against real listeners, a
real gateway and real services (``python -m http.server`` started through ``run_service``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp.shared.exceptions import MCPError
from mcp_support import McpHome, deadline_poll, gone, run, wait_gone

from homeport.ports.wait import wait_for

TOOLS = {
    "listeners",
    "who",
    "explain",
    "doctor",
    "free_port",
    "wait_for",
    "routes",
    "run_service",
    "stop_service",
    "restart_service",
    "service_logs",
    "access_log",
    "kill_port",
    "project_up",
    "project_status",
    "audit",
}
HTTP_SERVER = "python3 -m http.server*"


@pytest.fixture
def mcp_home(tmp_path: Path, free_port: int) -> Iterator[McpHome]:
    home = McpHome(tmp_path, free_port)
    try:
        yield home
    finally:
        home.stop_gateway()


@pytest.fixture
def foreign_server(free_port_factory: object) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real HTTP server this test started itself: not the MCP session's, not homeport's."""
    port = free_port_factory()  # type: ignore[operator]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"127.0.0.1:{port}", timeout=20, pid=proc.pid)
        yield port, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_lists_every_tool_with_its_schemas(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client() as c:
            listed = await c.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            for t in listed.tools:
                jsonschema.Draft202012Validator.check_schema(t.input_schema)
                assert t.output_schema is not None
                jsonschema.Draft202012Validator.check_schema(t.output_schema)
                assert t.description
            kill = next(t for t in listed.tools if t.name == "kill_port")
            assert kill.input_schema["required"] == ["port"]

    run(scenario)


def test_service_lifecycle_through_the_gateway(mcp_home: McpHome) -> None:
    """Start a real server via run_service, see it in listeners, reach it by name, read its
    output, restart and stop it, and see it gone from the inventory."""

    async def scenario() -> None:
        async with mcp_home.client("--allow-run", HTTP_SERVER) as c:
            started = await mcp_home.call(
                c, "run_service", {"command": "python3 -m http.server", "name": "web"}
            )
            svc = started["service"]
            assert svc["state"] == "running"
            assert started["url"] == f"http://web.localhost:{mcp_home.port}"
            port, pid = svc["port"], svc["pid"]

            seen = await mcp_home.call(c, "listeners", {"port": port})
            assert [x["pids"] for x in seen["listeners"]] == [[pid]]
            assert seen["listeners"][0]["route"] == "web.localhost"

            routes = await mcp_home.call(c, "routes", {})
            assert routes["gateway_running"]
            assert [r["target"] for r in routes["routes"]] == [f"http://127.0.0.1:{port}"]

            # Through the gateway, by name: the access log records it, the server logs it.
            url = f"http://localhost:{port}/"
            ready = await mcp_home.call(c, "wait_for", {"targets": [url], "timeout": 10})
            assert ready["ready"] is True
            assert ready["targets"][0]["status"] == 200
            assert _get(mcp_home.port, "web.localhost", "/from-the-test") == 404
            logs = await mcp_home.call(c, "service_logs", {"name": "web"})  # an alias
            assert any("/from-the-test" in line for line in logs["lines"])
            after = await mcp_home.call(
                c, "service_logs", {"service": "web", "since": logs["next"]}
            )
            assert after["lines"] == []
            assert after["next"] == logs["next"]

            # The gateway writes its access log in batches, from a thread: poll for the row.
            query = {"route": "web", "status": 404}
            deadline = time.monotonic() + 20
            while not (access := await mcp_home.call(c, "access_log", query))["records"]:
                assert time.monotonic() < deadline, "the request never reached the access log"
                await asyncio.sleep(0.05)
            assert [r["path"] for r in access["records"]] == ["/from-the-test"]

            again = await mcp_home.call(c, "restart_service", {"service": "web"})
            new_pid = again["service"]["pid"]
            assert new_pid != pid
            assert wait_gone(pid)
            assert again["service"]["port"] == port

            stopped = await mcp_home.call(c, "stop_service", {"service": "web"})
            assert stopped["service"]["state"] == "stopped"
            assert wait_gone(new_pid)
            after_stop = await mcp_home.call(c, "listeners", {"port": port})
            assert after_stop["listeners"] == []

        # The dashboard's events panel shows the calls, by the client's name.
        def shown() -> bool:
            events = mcp_home.dashboard_events()
            return any(
                e["kind"] == "mcp-tool-call"
                and e["data"]["message"].startswith(
                    "MCP pytest-agent 1.0: stop_service(service='web') ok"
                )
                for e in events
            )

        assert deadline_poll(shown)

    run(scenario)


def _get(gateway_port: int, host: str, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{gateway_port}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_query_tools_answer_with_their_schemas(
    mcp_home: McpHome, foreign_server: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, proc = foreign_server

    async def scenario() -> None:
        async with mcp_home.client() as c:
            listing = await mcp_home.call(c, "listeners", {"tcp": True})
            mine = [x for x in listing["listeners"] if x["port"] == port]
            assert [x["pids"] for x in mine] == [[proc.pid]]

            held = await mcp_home.call(c, "who", {"target": f"127.0.0.1:{port}"})
            assert held["listeners"][0]["owners"][0]["pid"] == proc.pid
            by_port = await mcp_home.call(c, "who", {"port": port})
            assert by_port["listeners"] == held["listeners"]

            told = await mcp_home.call(
                c, "explain", {"text": f"connect ECONNREFUSED 127.0.0.1:{port}"}
            )
            assert told["kind"] == "error"
            assert [x["port"] for x in told["live"]["listeners"]] == [port]

            checked = await mcp_home.call(c, "doctor", {"only": ["loopback.ipv4"]})
            assert [x["id"] for x in checked["checks"]] == ["loopback.ipv4"]

            notes: list[tuple[float, float | None, str | None]] = []

            async def progress(done: float, total: float | None, message: str | None) -> None:
                notes.append((done, total, message))

            ready = await mcp_home.call(
                c, "wait_for", {"targets": [port], "timeout": 10}, progress_callback=progress
            )
            assert ready["ready"] is True

            audited = await mcp_home.call(
                c, "audit", {"port": port, "timeout": 1}, progress_callback=progress
            )
            assert [x["port"] for x in audited["listeners"]] == [port]
            assert any(m and "listeners probed" in m for _, _, m in notes)
            last = await c.read_resource("homeport://audit/last")
            assert f'"port": {port}' in last.contents[0].text  # type: ignore[union-attr]

            empty = await mcp_home.call(c, "routes", {})
            assert empty["routes"] == []
            assert (await mcp_home.call(c, "access_log", {}))["records"] == []

    run(scenario)


def test_wait_for_sends_progress_while_waiting(mcp_home: McpHome, free_port: int) -> None:
    async def scenario() -> None:
        notes: list[tuple[float, float | None]] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            notes.append((done, total))

        async with mcp_home.client() as c:
            # free_port is leased and nothing listens there: a wait that runs its course.
            report = await mcp_home.call(
                c, "wait_for", {"targets": [free_port], "timeout": 1.5}, progress_callback=progress
            )
        assert report["ready"] is False
        assert "refused" in report["targets"][0]["reason"]
        assert len(notes) >= 2
        assert all(total == 1.5 for _, total in notes)
        assert [d for d, _ in notes] == sorted(d for d, _ in notes)

    run(scenario)


def test_kill_port_refuses_a_process_the_session_did_not_start(
    mcp_home: McpHome, foreign_server: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, proc = foreign_server

    async def scenario() -> None:
        async with mcp_home.client() as c:
            text = await mcp_home.error(c, "kill_port", {"port": port})
            assert "--allow-kill any" in text
            assert str(proc.pid) in text
            assert proc.poll() is None  # untouched
        async with mcp_home.client("--allow-kill", "any") as c:
            report = await mcp_home.call(c, "kill_port", {"port": port})
            assert report["released"] is True
            assert [p["pid"] for p in report["processes"]] == [proc.pid]
        assert proc.wait(10) is not None

    run(scenario)


def test_kill_port_stops_a_service_of_this_session(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client("--allow-run", HTTP_SERVER, "--allow-kill", "any") as c:
            svc = (await mcp_home.call(c, "run_service", {"command": "python3 -m http.server"}))[
                "service"
            ]
            report = await mcp_home.call(c, "kill_port", {"port": svc["port"]})
            assert report["released"] is True
            assert wait_gone(svc["pid"])
            text = await mcp_home.error(c, "kill_port", {"port": svc["port"]})
            assert "nothing listens" in text
            # Not even --allow-kill any stops the gateway itself.
            text = await mcp_home.error(c, "kill_port", {"port": mcp_home.port})
            assert "the homeport gateway is not stopped through MCP" in text
            assert mcp_home.homeport("status").returncode == 0

    run(scenario)


def test_run_service_enforces_the_allowlist(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client() as c:
            text = await mcp_home.error(c, "run_service", {"command": "python3 -m http.server"})
            assert "allows no commands" in text
        async with mcp_home.client("--allow-run", "npm run *") as c:
            text = await mcp_home.error(c, "run_service", {"command": ["sh", "-c", "sleep 60"]})
            assert "matches none of the allowed patterns" in text
            assert "'npm run *'" in text
        async with mcp_home.client("--allow-run", "npm run dev") as c:
            # `&&` does not chain a second command past a pattern: the line is split like a
            # shell's, never run by one, and matched whole.
            sneaky = {"command": "npm run dev && rm -rf /tmp/x"}
            text = await mcp_home.error(c, "run_service", sneaky)
            assert "refused to run \"npm run dev '&&' rm -rf /tmp/x\"" in text
        refused = [e for e in mcp_home.events() if e["kind"] == "mcp-tool-call"]
        assert refused
        assert all(e["data"]["outcome"].startswith("refused") for e in refused)

    run(scenario)


def test_disconnect_stops_the_sessions_services_and_keep_leaves_them(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client("--allow-run", HTTP_SERVER) as c:
            a = await mcp_home.call(c, "run_service", {"command": "python3 -m http.server"})
            b = await mcp_home.call(
                c, "run_service", {"command": "python3 -m http.server", "name": "two"}
            )
            leased = (await mcp_home.call(c, "free_port", {"count": 2}))["ports"]
        pids = [a["service"]["pid"], b["service"]["pid"]]
        assert all(wait_gone(pid) for pid in pids)
        listed = mcp_home.homeport("port", "--list", "--json")

        live = {x["port"] for x in json.loads(listed.stdout)["leases"] if x["live"]}
        assert not live & {x["port"] for x in leased}

        async with mcp_home.client("--allow-run", HTTP_SERVER, "--keep") as c:
            kept = await mcp_home.call(c, "run_service", {"command": "python3 -m http.server"})
        pid = kept["service"]["pid"]
        assert not gone(pid)  # the daemon owns it now
        stop = mcp_home.homeport("kill", str(kept["service"]["port"]), "--yes")
        assert stop.returncode == 0, stop.stderr
        assert wait_gone(pid)

    run(scenario)


def test_a_killed_server_leaves_no_service_behind(mcp_home: McpHome) -> None:
    """kill -9 of the MCP server (no cleanup of its own): the daemon, which watches the
    session's process as the services' owner, stops them."""
    started: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_home.client("--allow-run", HTTP_SERVER) as c:
            answer = await mcp_home.call(c, "run_service", {"command": "python3 -m http.server"})
            started.update(answer["service"])
            os.kill(started["owner_pid"], signal.SIGKILL)

    # The client sees its server die under it: that is the point of this test.
    with contextlib.suppress(Exception):
        run(scenario)
    assert started, "run_service did not answer"
    assert wait_gone(started["pid"])
    assert deadline_poll(lambda: any(e["kind"] == "service-reaped" for e in mcp_home.events()))


def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client() as c:
            cases = {
                ("kill_port", "{}"): "'port' is a required property",
                ("kill_port", '{"port": "http"}'): "is not of type 'integer'",
                ("kill_port", '{"port": 70000}'): "70000 is greater than the maximum",
                ("listeners", '{"colour": true}'): "Additional properties are not allowed",
                ("who", '{"target": "nonsense:host:x"}'): "",
                ("explain", '{"text": " "}'): "nothing to explain",
                ("doctor", '{"only": ["no.such"]}'): "unknown check no.such",
                ("wait_for", '{"targets": [1], "status": "abc"}'): "bad status range",
                ("service_logs", '{"service": "nope"}'): "the homeport daemon is not running",
                ("nope", "{}"): "no tool named 'nope'",
            }

            for (tool, args), expected in cases.items():
                text = await mcp_home.error(c, tool, json.loads(args))
                assert expected in text, (tool, text)
            with pytest.raises(
                MCPError, match=r"no resource homeport://nope \(see resources/list\)"
            ):
                await c.read_resource("homeport://nope")
            # still serving
            assert "listeners" in await mcp_home.call(c, "listeners", {"port": 1})

    run(scenario)


def test_tool_calls_are_in_the_event_log_with_the_client_name(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client(name="claude-code") as c:
            await mcp_home.call(c, "listeners", {"port": 1})
            await mcp_home.error(c, "kill_port", {"port": 0})
        calls = [e["data"] for e in mcp_home.events() if e["kind"] == "mcp-tool-call"]
        assert [(x["client"], x["tool"]) for x in calls] == [
            ("claude-code 1.0", "listeners"),
            ("claude-code 1.0", "kill_port"),
        ]
        assert calls[0]["message"] == "MCP claude-code 1.0: listeners(port=1) ok"
        assert calls[1]["outcome"].startswith("refused: bad arguments")

    run(scenario)


def test_no_answer_reveals_a_route_token_or_password(mcp_home: McpHome) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        target = srv.getsockname()[1]
        added = mcp_home.homeport(
            "route", "add", "secret", str(target), "--auth", "token", "--json"
        )
        assert added.returncode == 0, added.stderr

        token = json.loads(added.stdout)["token"]
        basic = mcp_home.homeport(
            "route", "add", "admin", str(target), "--auth", "basic:me:hunter2hunter2"
        )
        assert basic.returncode == 0, basic.stderr
        _get(mcp_home.port, "secret.localhost", f"/?homeport_token={token}")

        async def scenario() -> None:
            async with mcp_home.client() as c:
                answers = [
                    await mcp_home.call(c, "routes", {}),
                    await mcp_home.call(c, "access_log", {"control": True}),
                    await mcp_home.call(c, "listeners", {}),
                    await mcp_home.call(
                        c, "explain", {"text": f"http://me:{token}@127.0.0.1:{target}/"}
                    ),
                ]
                res = await c.read_resource("homeport://routes")
                answers.append({"text": res.contents[0].text})  # type: ignore[union-attr]
            blob = json.dumps(answers)
            assert token not in blob
            assert "hunter2hunter2" not in blob
            assert "secret.localhost" in blob
            assert "[redacted]" in blob

        run(scenario)
        assert token not in json.dumps(mcp_home.events())


def test_hosts_on_the_initialize_handshake_are_served_too(
    mcp_home: McpHome, free_port: int
) -> None:
    """Most agent hosts still speak a 2025 protocol revision (initialize, then calls): the
    client's name comes from initialize's clientInfo, and progress still flows."""

    async def scenario() -> None:
        notes: list[float] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            notes.append(done)

        async with mcp_home.client(name="legacy-host", mode="legacy") as c:
            assert c.protocol_version.startswith("2025-")
            report = await mcp_home.call(
                c, "wait_for", {"targets": [free_port], "timeout": 0.6}, progress_callback=progress
            )
            assert report["ready"] is False
        assert notes
        calls = [e["data"] for e in mcp_home.events() if e["kind"] == "mcp-tool-call"]
        assert [x["client"] for x in calls] == ["legacy-host 1.0"]

    run(scenario)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a server as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_allow_kill_any_still_spares_another_users_process(
    mcp_home: McpHome, free_port: int
) -> None:
    proc = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
         "-m", "http.server", str(free_port), "--bind", "127.0.0.1", "--directory", "/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"127.0.0.1:{free_port}", timeout=20, pid=proc.pid)

        async def scenario() -> None:
            async with mcp_home.client("--allow-kill", "any") as c:
                text = await mcp_home.error(c, "kill_port", {"port": free_port})
                assert "belongs to another user" in text

        run(scenario)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_a_disconnect_ends_only_that_sessions_services(mcp_home: McpHome) -> None:
    async def scenario() -> None:
        async with mcp_home.client("--allow-run", HTTP_SERVER, name="agent-b") as b:
            theirs = await mcp_home.call(
                b, "run_service", {"command": "python3 -m http.server", "name": "theirs"}
            )
            async with mcp_home.client("--allow-run", HTTP_SERVER, name="agent-a") as a:
                mine = await mcp_home.call(
                    a, "run_service", {"command": "python3 -m http.server", "name": "mine"}
                )
            assert wait_gone(mine["service"]["pid"])
            assert not gone(theirs["service"]["pid"])
            # and the other session still sees and serves its own
            logs = await mcp_home.call(b, "service_logs", {"service": "theirs"})
            assert logs["service"]["state"] == "running"
        assert wait_gone(theirs["service"]["pid"])

    run(scenario)


PROJECT = """\
[project]
name = "mcpdemo"

[services.web]
cmd = "exec python3 -m http.server ${web.port} --bind 127.0.0.1"
"""


def test_project_up_and_status_and_down_with_the_session(mcp_home: McpHome) -> None:
    folder = mcp_home.home / "demo"
    folder.mkdir()
    (folder / "homeport.toml").write_text(PROJECT)

    async def scenario() -> None:
        async with mcp_home.client() as c:  # no allowlist: the project's command is refused
            text = await mcp_home.error(c, "project_up", {"path": str(folder)})
            assert "mcpdemo.web: refused to run" in text
        notes: list[str | None] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            notes.append(message)

        allow = "exec python3 -m http.server *"
        async with mcp_home.client("--allow-run", allow) as c:
            up = await mcp_home.call(
                c, "project_up", {"path": str(folder), "timeout": 60}, progress_callback=progress
            )
            (web,) = up["project"]["services"]
            assert web["state"] == "ready"
            seen = await mcp_home.call(c, "listeners", {"port": web["port"]})
            assert [x["pids"] for x in seen["listeners"]] == [[web["pid"]]]
            status = await mcp_home.call(c, "project_status", {})
            assert [p["name"] for p in status["projects"]] == ["mcpdemo"]
            one = await mcp_home.call(c, "project_status", {"project": up["project"]["id"]})
            assert one["projects"][0]["services"][0]["pid"] == web["pid"]
        assert notes
        assert wait_gone(web["pid"])  # the session brought it up: it went down with it

    run(scenario)
