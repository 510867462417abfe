"""Address leases against the real kernel: binds on 127.0.x.y, parallel pickers, dead holders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from homeport.errors import NotFound
from homeport.ports.address import bind_free_on, pick_address
from homeport.ports.addrpool import parse_pool

SMALL = "127.0.9.1-127.0.9.60"


@pytest.fixture(autouse=True)
def _private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(hosts))
    monkeypatch.setenv("HOMEPORT_STATE_DIR", str(tmp_path / "state"))


def test_an_address_with_the_port_bound_is_skipped(tmp_path: Path) -> None:
    pool = parse_pool("127.0.9.1-127.0.9.3")
    with socket.socket() as s:
        s.bind(("127.0.9.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not bind_free_on("127.0.9.1", port)
        got = {pick_address(port=port, pool=pool, lease_dir=tmp_path).address for _ in range(2)}
    assert got == {"127.0.9.2", "127.0.9.3"}


def test_a_wildcard_listener_on_the_port_makes_every_address_busy(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(NotFound, match="no free loopback address"):
            pick_address(port=port, pool=parse_pool(SMALL), lease_dir=tmp_path)


def test_the_same_name_gets_the_same_address_and_a_server_can_bind_it(tmp_path: Path) -> None:
    pool = parse_pool(SMALL)
    first = pick_address("db.localhost", port=5432, pool=pool, lease_dir=tmp_path)
    again = pick_address("db.localhost", port=5432, pool=pool, lease_dir=tmp_path)
    assert first.address == again.address  # renewed by its own holder, not moved
    assert first.address is not None
    assert IPv4Address(first.address).is_loopback
    with socket.socket() as s:  # the kernel accepts a bind there: lo carries all of 127/8
        s.bind((first.address, 0))


def test_time_wait_remnants_do_not_take_a_names_address(
    tmp_path: Path, free_port_factory: Callable[[], int]
) -> None:
    pool, port = parse_pool(SMALL), free_port_factory()
    first = pick_address("tw.localhost", port=port, pool=pool, lease_dir=tmp_path)
    assert first.address is not None
    from homeport.ports.address import release_address

    release_address(first.address, holder_pid=os.getpid(), lease_dir=tmp_path)
    with socket.socket() as srv:  # the server closes first: TIME-WAIT sits on ADDR:PORT
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((first.address, port))
        srv.listen()
        client = socket.create_connection((first.address, port))
        conn, _ = srv.accept()
        conn.close()
        assert client.recv(1) == b""
        client.close()
    again = pick_address("tw.localhost", port=port, pool=pool, lease_dir=tmp_path)
    assert again.address == first.address


HOLD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from homeport.ports.address import pick_address
    from homeport.ports.addrpool import parse_pool
    pool = parse_pool(sys.argv[2])
    n = int(sys.argv[3])
    got = [pick_address(port=8000, pool=pool, lease_dir=Path(sys.argv[1])).address
           for _ in range(n)]
    print(json.dumps(got), flush=True)
    sys.stdin.read()  # hold the leases until the test lets go
""")


def _holders(tmp_path: Path, pool: str, n: int, count: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, str(tmp_path), pool, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def test_parallel_pickers_never_share_an_address(tmp_path: Path) -> None:
    # 8 x 120 picks from a pool of 1,016 addresses: without leases they would collide.
    pool = "127.0.20.1-127.0.23.254"
    procs = _holders(tmp_path, pool, 120, 8)
    try:
        got = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    finally:
        for p in procs:
            p.communicate("", timeout=30)
    flat = [a for addrs in got for a in addrs]
    assert len(flat) == 960
    assert len(set(flat)) == 960, "an address:port was handed to two live holders"


def test_a_dead_holders_address_is_reclaimed(tmp_path: Path) -> None:
    pool = "127.0.30.1-127.0.30.4"
    (holder,) = _holders(tmp_path, pool, 4, 1)
    assert holder.stdout is not None
    taken = json.loads(holder.stdout.readline())
    assert len(set(taken)) == 4
    with pytest.raises(NotFound):  # all four are leased to a live process
        pick_address(port=8000, pool=parse_pool(pool), lease_dir=tmp_path)
    holder.kill()
    holder.wait(10)
    # Pickers reuse a "still alive" answer about a holder for up to a second (lease.py,
    # HOLDER_CACHE_TTL): poll until the dead holder's leases are seen as free.
    again: set[str | None] = set()
    deadline = time.monotonic() + 10
    while len(again) < 4 and time.monotonic() < deadline:
        try:
            again.add(pick_address(port=8000, pool=parse_pool(pool), lease_dir=tmp_path).address)
        except NotFound:
            time.sleep(0.05)  # the cache expiry has no event to wait on
    assert again == set(taken)
    holder.communicate(timeout=5)
