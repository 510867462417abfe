"""TCP routes end to end: a real PostgreSQL reached with ``psql`` through a route on the name's
own address, the connection in the access log, and a 1 GiB transfer with flat memory."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procutil import stop_child
from test_audit_servers import _need, _need_root, _stop
from test_hosts_sync import in_namespace

from homeport.daemon.client import Client
from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import start_background

GiB = 1 << 30


@pytest.fixture
def daemon(
    state_dir: Path, tmp_path: Path, free_port_factory: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Client, int]]:  # fmt: skip
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(hosts))
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port_factory()))
    config = DaemonConfig.build()
    pid = int(start_background(config)["pid"])
    try:
        yield Client.for_config(config), pid
    finally:
        stop_child(pid)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homeport", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def add_tcp_route(client: Client, name: str, port: int) -> str:
    data = client.call("POST", "/api/routes", {"name": name, "target": str(port), "tcp": True})
    assert data["listen_error"] is None
    listen = str(data["listen"])
    addr, _, got = listen.rpartition(":")
    assert int(got) == port  # the service's own port, on the name's own address
    assert addr.startswith("127.")
    assert addr != "127.0.0.1"
    return addr


@pytest.fixture
def postgres(free_port_factory: Callable[[], int]) -> Iterator[tuple[int, Path]]:
    initdb, server = _need("initdb"), _need("postgres")
    _need("psql")
    _need_root()
    shared = Path(tempfile.mkdtemp(prefix="hp-tcp-"))
    shared.chmod(0o755)
    shutil.chown(shared, "postgres")
    data = shared / "data"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", initdb, "-D", str(data), "-U", "postgres",
         "-A", "trust", "--no-sync", "--no-instructions"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port_factory()
    proc = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", server, "-D", str(data), "-k", str(shared),
         "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the readiness line: startup refuses logins before it
            if b"ready to accept connections" in line:
                break
        else:
            raise AssertionError("postgres exited before it was ready")
        drain = threading.Thread(target=proc.stderr.read, daemon=True)
        drain.start()
        yield port, shared
    finally:
        _stop(proc)
        shutil.rmtree(shared, ignore_errors=True)


def test_psql_through_a_tcp_route(daemon: tuple[Client, int], postgres: tuple[int, Path]) -> None:
    client, _ = daemon
    port, _ = postgres
    addr = add_tcp_route(client, "db", port)
    done = subprocess.run(
        ["psql", "-h", addr, "-p", str(port), "-U", "postgres", "-tAc", "select 6 * 7"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while not records and time.monotonic() < deadline:  # the access writer batches
        records = [
            r for r in client.call("GET", "/api/access?route=db.localhost")["records"]
            if r["method"] == "TCP"
        ]  # fmt: skip
        time.sleep(0.05) if not records else None
    assert records, "the TCP connection is not in the access log"
    rec = records[-1]
    assert rec["host"] == f"{addr}:{port}"
    assert rec["bytes_in"] > 0
    assert rec["bytes_out"] > 0
    assert rec["duration_ms"] > 0
    # by name, for a client that asks the system resolver: hosts sync into the temp file,
    # bind-mounted over /etc/hosts in a private mount namespace only
    synced = cli("hosts", "sync")
    assert synced.returncode == 0, synced.stderr
    assert f"{addr}  db.localhost" in synced.stdout
    if in_namespace("true").returncode == 0:
        by_name = in_namespace(
            f"mount --bind {os.environ['HOMEPORT_HOSTS_FILE']} /etc/hosts &&"
            f" psql -h db.localhost -p {port} -U postgres -tAc 'select 7 * 6'"
        )
        assert (by_name.returncode, by_name.stdout.strip()) == (0, "42"), by_name.stderr
    routes = {r["name"]: r["target"] for r in client.call("GET", "/api/routes")["routes"]}
    assert routes["db.localhost"] == f"tcp://127.0.0.1:{port}"
    # the address is gone with the route, and back with it
    client.call("DELETE", "/api/routes/db.localhost")
    with socket.socket() as s:
        s.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            s.connect((addr, port))
    assert add_tcp_route(client, "db", port) == addr  # the name keeps its address


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set (VmHWM) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_one_gib_through_a_tcp_route_with_flat_memory(
    daemon: tuple[Client, int], free_port_factory: Callable[[], int]
) -> None:
    """The service sends 1 GiB as fast as it can; the client first reads nothing, so without
    back-pressure the gateway would buffer everything. The service's sends must block
    early, and the gateway's peak memory must stay flat through the whole GiB."""
    client, pid = daemon
    port = free_port_factory()
    listener = socket.create_server(("127.0.0.1", port))
    addr = add_tcp_route(client, "bulk", port)
    sent = {"blocked_at": -1, "total": 0}
    resume = threading.Event()

    def source() -> None:
        conn, _ = listener.accept()
        conn.setblocking(False)
        chunk = b"\xab" * (1 << 20)
        total = 0
        while total < GiB:
            _, writable, _ = select.select([], [conn], [], 3.0)
            if not writable and sent["blocked_at"] < 0:
                sent["blocked_at"] = total  # no progress for 3 s: the pipe is full
                resume.set()
                continue
            try:
                total += conn.send(chunk[: min(len(chunk), GiB - total)])
            except BlockingIOError:
                continue
        sent["total"] = total
        resume.set()
        conn.close()

    before = vm_hwm_kib(pid)
    thread = threading.Thread(target=source, daemon=True)
    thread.start()
    with socket.create_connection((addr, port), timeout=30) as c:
        assert resume.wait(120), "the source never blocked nor finished"
        got = 0
        while data := c.recv(1 << 20):
            got += len(data)
    thread.join(60)
    listener.close()
    assert got == GiB
    assert 0 <= sent["blocked_at"] < 64 << 20, f"the service could push {sent['blocked_at']} B"
    growth_mib = (vm_hwm_kib(pid) - before) / 1024
    assert growth_mib < 64, f"the gateway's peak memory grew {growth_mib:.0f} MiB for 1 GiB"
