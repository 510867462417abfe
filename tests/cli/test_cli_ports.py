"""homeport port / wait / kill through the CLI: output shapes and exit statuses."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from homeport.cli import main
from homeport.cli.env import Env
from homeport.ports.lease import LeaseStore
from homeport.system import ephemeral_range


def test_port_prints_one_number_outside_the_ephemeral_range(cli: Any, state_dir: Path) -> None:
    r = cli("port")
    assert r.status == 0, r.stderr
    port = int(r.stdout)
    lo, hi = ephemeral_range()
    assert 1024 <= port <= 65535
    assert not lo <= port <= hi
    lease = LeaseStore(state_dir / "leases").read(port)
    assert lease is not None
    assert lease.holder.pid == os.getppid()  # recorded: the shell or script that ran us
    assert lease.expires is not None
    assert not lease.bound  # ...but not tied to it (see the subshell test below)


def test_port_json_count_gives_distinct_leases(cli: Any, state_dir: Path) -> None:
    r = cli("port", "--count", "5", "--udp", "--json")
    assert r.status == 0, r.stderr
    ports = json.loads(r.stdout)["ports"]
    assert len({p["port"] for p in ports}) == 5
    assert set(ports[0]) == {"port", "proto", "name", "holder", "created", "expires", "bound"}
    assert {p["proto"] for p in ports} == {"udp"}


def test_named_port_is_stable(cli: Any, state_dir: Path) -> None:
    first = cli("port", "api").stdout
    assert cli("port", "api").stdout == first  # the same holder asking again renews it
    assert cli("port", "web").stdout != first


def test_named_port_moves_when_taken_and_keeps_its_new_home(cli: Any, state_dir: Path) -> None:
    port = int(cli("port", "db", "--ttl", "0.001").stdout)
    with socket.create_server(("127.0.0.1", port)):
        moved = int(cli("port", "db").stdout)
        assert moved != port
    cli("port", "--release", str(moved))
    # "db" now remembers the port it got last; that one is free again.
    assert int(cli("port", "db").stdout) == moved


def test_list_and_release(cli: Any, state_dir: Path) -> None:
    port = int(cli("port", "svc").stdout)
    listed = json.loads(cli("port", "--list", "--json").stdout)["leases"]
    assert [(x["port"], x["name"], x["live"]) for x in listed] == [(port, "svc", True)]
    table = cli("port", "--list").stdout
    assert "svc" in table
    assert "live" in table
    r = cli("port", "--release", str(port))
    assert (r.status, r.stdout) == (0, f"released {port}\n")
    again = cli("port", "--release", str(port))
    assert again.status == 1
    assert "no lease" in again.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["port", "--range", "40000-41000"], "inside the ephemeral range"),
        (["port", "--range", "9-2"], "bad range"),
        (["port", "--count", "0"], "at least 1"),
        (["port", "--holder", "999999999"], "no process with PID"),
        (["port", "--ttl", "0"], "needs --holder PID"),
        (["wait"], "nothing to wait for"),
        (["wait", "3000", "--status", "abc"], "bad status range"),
        (["wait", "redis://localhost:6379"], "cannot wait for redis"),
        (["kill", "3000", "--signal", "NOPE"], "unknown signal"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    cli: Any, state_dir: Path, argv: list[str], says: str
) -> None:
    r = cli(*argv)
    assert r.status == 2
    assert says in r.stderr
    assert "Traceback" not in r.stderr


def test_wait_ready_json(cli: Any, free_port: int) -> None:
    with socket.create_server(("127.0.0.1", free_port)):
        r = cli("wait", str(free_port), "--json", "--timeout", "10")
    assert r.status == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["ready"] is True
    assert data["command"] is None
    [t] = data["targets"]
    assert t["address"] == f"127.0.0.1:{free_port}"
    assert set(t) == {"target", "ready", "attempts", "elapsed", "address", "status", "reason"}


def test_wait_timeout_json_and_options_after_targets(cli: Any, free_port: int) -> None:
    r = cli("wait", str(free_port), "--timeout", "0.3", "--json")
    assert r.status == 1
    data = json.loads(r.stdout)
    assert data["ready"] is False
    assert "refused" in data["targets"][0]["reason"]
    assert "not ready after 0.3s" in r.stderr


def test_wait_tty_shows_why_not_ready(cli: Any, free_port: int) -> None:
    r = cli("wait", str(free_port), "--timeout", "0.3", tty=True)
    assert r.status == 1
    assert "waiting" in r.stdout
    assert "refused" in r.stdout


def test_kill_nothing_there(cli: Any, free_port: int) -> None:
    r = cli("kill", str(free_port), "--yes")
    assert r.status == 1
    assert f"nothing listens on :{free_port}" in r.stderr


def test_kill_refuses_itself(cli: Any, free_port: int) -> None:
    # This test process holds the port: homeport (running in-process) must refuse.
    with socket.create_server(("127.0.0.1", free_port)):
        r = cli("kill", str(free_port), "--yes")
    assert r.status == 3
    assert "homeport itself" in r.stdout
    assert "nothing we may signal" in r.stderr


HOLDER = (
    "import socket, sys; s = socket.create_server(('127.0.0.1', int(sys.argv[1]))); "
    "print('ready', flush=True); sys.stdin.read()"
)


def test_kill_asks_on_a_terminal_and_no_means_no(free_port: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(free_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        out, err = io.StringIO(), io.StringIO()
        env = Env(
            stdout=out,
            stderr=err,
            stdin=io.StringIO("n\n"),
            stdout_isatty=True,
            stdin_isatty=True,
            color=False,
            width=120,
        )
        status = main(["kill", str(free_port)], env)
        assert status == 1
        assert f"pid {child.pid}" in out.getvalue()
        assert "send SIGTERM to 1 process? [y/N]" in out.getvalue()
        assert "nothing signalled" in err.getvalue()
        assert child.poll() is None
    finally:
        child.communicate("", timeout=10)


def test_lease_outlives_the_subshell_of_command_substitution(state_dir: Path) -> None:
    # PORT=$(homeport port) runs homeport in a subshell that exits at once; a lease tied
    # to that parent would be dead before the server starts.
    script = (
        f"P=$({sys.executable} -m homeport port); "
        f'{sys.executable} -m homeport port --list --json; echo "picked $P"'
    )
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    listing, _, tail = proc.stdout.rpartition("picked ")
    [lease] = json.loads(listing)["leases"]
    assert lease["port"] == int(tail)
    assert lease["live"] is True
    assert lease["bound"] is False


def test_holder_bound_lease_ends_with_its_process(cli: Any, state_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        r = cli("port", "--holder", str(child.pid), "--ttl", "0", "--json")
        [lease] = json.loads(r.stdout)["ports"]
        assert (lease["bound"], lease["expires"]) == (True, None)
        assert json.loads(cli("port", "--list", "--json").stdout)["leases"][0]["live"]
    finally:
        child.communicate(b"", timeout=10)
    assert not json.loads(cli("port", "--list", "--json").stdout)["leases"][0]["live"]
