"""``homeport run --own-address`` end to end: two real ``python -m http.server 8000`` side by
side on two leased addresses, each reached by name through the gateway; a service that
ignores HOST and binds the wildcard is reported with the flag that fixes it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from test_run_http_server import Run, gateway, get  # noqa: F401  (the gateway fixture)

from homeport.daemon.client import Client
from homeport.ports.address import bind_free_on


@pytest.fixture(autouse=True)
def _hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(hosts))


def ready_event(run: Run, timeout: float = 30.0) -> dict[str, object]:
    """The --json ready event of a run."""
    assert run.proc.stdout is not None
    fd = run.proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while True:
        for line in run.output.splitlines():
            if line.startswith("{") and '"ready"' in line:
                event: dict[str, object] = json.loads(line)
                return event
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no ready event; output so far:\n{run.output}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"run exited early:\n{run.output}")
        run.output += chunk.decode(errors="replace")


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:  # Ctrl-C: run stops its service's group itself (a SIGKILL of the
        if run.proc.poll() is None:  # CLI would leave that to a daemon being torn down)
            os.kill(run.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.finish(timeout=20)
        run.kill()


def test_two_http_servers_on_port_8000_side_by_side(
    gateway: Client,  # noqa: F811
    tmp_path: Path,
    runs: list[Run],
) -> None:
    if not bind_free_on("127.0.2.250", 8000):
        pytest.skip("another process holds a wildcard listener on port 8000")
    addrs = []
    for name in ("alpha", "beta"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "who.txt").write_text(f"I am {name}\n")
        cmd = ("--own-address", "--json", "--name", name, "--")
        runs.append(Run(*cmd, sys.executable, "-m", "http.server", "8000", cwd=folder))
    for run, name in zip(runs, ("alpha", "beta"), strict=True):
        event = ready_event(run)
        assert event["port"] == 8000
        own = IPv4Address(str(event["own_address"]))
        assert own.is_loopback
        assert own != IPv4Address("127.0.0.1")
        assert event["address"] == str(own)
        assert event["bind_warning"] is None
        addrs.append(own)
        status, body = get(gateway.port, f"{name}.localhost", "/who.txt")
        assert (status, body) == (200, f"I am {name}\n".encode())
    assert addrs[0] != addrs[1]
    # ls names each listener by its own address, not by the shared port
    from homeport.cli.ls import with_routes
    from homeport.inventory import listeners

    named = {
        (x.address, x.route) for x in with_routes(listeners(port=8000, udp=False, owners=False))
    }
    assert {(str(addrs[0]), "alpha.localhost"), (str(addrs[1]), "beta.localhost")} <= named
    targets = {r["name"]: r["target"] for r in gateway.call("GET", "/api/routes")["routes"]}
    assert targets == {
        "alpha.localhost": f"http://{addrs[0]}:8000",
        "beta.localhost": f"http://{addrs[1]}:8000",
    }


BIND_WILDCARD = """
import os, socket, time
s = socket.socket()
s.bind(("0.0.0.0", int(os.environ["PORT"])))  # ignores HOST
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def test_a_service_that_ignores_host_is_reported_with_the_fix(
    gateway: Client,  # noqa: F811
    tmp_path: Path,
    runs: list[Run],
    free_port_factory: Callable[[], int],
) -> None:
    free_port = free_port_factory()  # not the gateway's own
    runs.append(
        Run(
            "--own-address",
            "--json",
            "--name",
            "wild",
            "--port",
            str(free_port),
            "--",
            sys.executable,
            "-c",
            BIND_WILDCARD,
            cwd=tmp_path,
        )
    )
    event = ready_event(runs[0])
    warning = str(event["bind_warning"])
    assert f"0.0.0.0:{free_port}" in warning
    assert "every interface" in warning
    assert f"HOST={event['own_address']}" in warning
