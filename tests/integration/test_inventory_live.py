"""The inventory against real sockets held by real processes, and against ss(8)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest

import homeport
from homeport.errors import NotFound

SPEC = [
    {"proto": "tcp", "addr": "127.0.0.1"},
    {"proto": "tcp", "addr": "127.0.0.2"},
    {"proto": "tcp", "addr": "::1", "v6only": 1},
    {"proto": "tcp", "addr": "0.0.0.0"},
    {"proto": "tcp", "addr": "::", "v6only": 0},
    {"proto": "udp", "addr": "127.0.0.1"},
    {"proto": "udp", "addr": "::1", "v6only": 1},
]
EXPOSURE = [
    "loopback",
    "loopback",
    "loopback",
    "all-interfaces",
    "all-interfaces",
    "loopback",
    "loopback",
]


def _mine(items: list, pids: list[int]) -> dict:
    """Only the sockets our child holds: other tests run in parallel and may reuse a number."""
    return {(x.proto, x.address, x.port): x for x in items if set(x.pids) & set(pids)}


@pytest.mark.parametrize("backend", ["netlink", "procfs", "psutil"])
def test_listeners_report_exactly_the_sockets_opened(sockhost, monkeypatch, backend) -> None:
    from homeport.inventory import _facade

    monkeypatch.setenv("HOMEPORT_INVENTORY_BACKEND", backend)
    _facade.backend.cache_clear()
    try:
        host = sockhost(SPEC)
        got = _mine(homeport.listeners(), host.pids)
    finally:
        _facade.backend.cache_clear()
    expected = {(s["proto"], s["addr"], p) for s, p in zip(SPEC, host.ports, strict=True)}
    assert set(got) == expected
    for s, port, exposure in zip(SPEC, host.ports, EXPOSURE, strict=True):
        x = got[(s["proto"], s["addr"], port)]
        assert x.exposure == exposure
        assert x.pids == (host.pids[0],)
        assert x.owners[0].cmdline[-1].startswith("[{")  # the sockhost's JSON argument
        assert x.owner_status == "known"
    if backend == "netlink":  # only sock_diag reports IPV6_V6ONLY
        assert got[("tcp", "::", host.ports[4])].notes == (
            "dual-stack: accepts IPv4 connections too",
        )


def test_forked_server_has_two_owners_and_who_lists_clients(sockhost) -> None:
    host = sockhost([{"proto": "tcp", "addr": "127.0.0.1", "fork": True}])
    port = host.ports[0]
    with socket.create_connection(("127.0.0.1", port)) as client:
        # With the address: a bind(0) number is unique per address only, and parallel tests
        # may hold the same number on 127.0.0.2 or ::1.
        report = homeport.who(f"127.0.0.1:{port}")
        assert len(report.listeners) == 1
        assert sorted(report.listeners[0].pids) == sorted(host.pids)
        owner = report.listeners[0].owners[0]
        assert owner.parents
        assert owner.cwd
        peer = client.getsockname()
        assert [(c.server.remote_addr, c.server.remote_port) for c in report.clients] == [peer]
        import os

        assert [p.pid for p in report.clients[0].owners] == [os.getpid()]


def test_who_matches_host_the_way_the_kernel_routes_it(sockhost) -> None:
    host = sockhost(
        [{"proto": "tcp", "addr": "127.0.0.1"}, {"proto": "tcp", "addr": "::", "v6only": 1}]
    )
    v4, v6only_any = host.ports
    assert homeport.who(f"127.0.0.1:{v4}").listeners[0].address == "127.0.0.1"
    with pytest.raises(NotFound):
        homeport.who(f"[::1]:{v4}")  # a 127.0.0.1 listener does not receive ::1
    assert homeport.who(f"[::1]:{v6only_any}").listeners[0].address == "::"
    with pytest.raises(NotFound):
        homeport.who(f"127.0.0.1:{v6only_any}")  # IPV6_V6ONLY: no IPv4


def _ss(flags: str) -> set[tuple[str, int, tuple[int, ...]]]:
    out = subprocess.run(["ss", "-H", flags], capture_output=True, text=True, check=True).stdout
    rows = set()
    for line in out.splitlines():
        f = line.split()
        local = f[3]
        addr, _, port = local.rpartition(":")
        addr = addr.strip("[]")
        addr = {"*": "::"}.get(addr, addr)  # ss prints a dual-stack :: as *
        pids = tuple(sorted(int(p.split("=")[1]) for p in line.split(",") if p.startswith("pid=")))
        rows.add((addr.split("%")[0], int(port), pids))
    return rows


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
def test_agrees_with_ss(sockhost) -> None:
    host = sockhost([*SPEC, {"proto": "tcp", "addr": "127.0.0.3", "fork": True}])
    pids = tuple(sorted(host.pids))
    ours = {
        (x.address, x.port, tuple(sorted(x.pids)))
        for x in homeport.listeners(udp=False)
        if tuple(sorted(x.pids)) == pids
    }
    theirs = {r for r in _ss("-tlnp") if r[2] == pids}
    assert ours == theirs
    assert len(ours) == 6
    ours_udp = {
        (x.address, x.port, tuple(sorted(x.pids)))
        for x in homeport.listeners(tcp=False)
        if tuple(sorted(x.pids)) == pids
    }
    assert ours_udp == {r for r in _ss("-ulnp") if r[2] == pids}
    assert len(ours_udp) == 2


def test_cli_ls_json_and_who(sockhost, cli) -> None:
    host = sockhost([{"proto": "tcp", "addr": "0.0.0.0"}])
    port = host.ports[0]
    r = cli("ls", "--port", str(port), "--json")
    assert r.status == 0, r.stderr
    data = json.loads(r.stdout)
    mine = [x for x in data["listeners"] if x["pids"] == host.pids]
    assert [x["address"] for x in mine] == ["0.0.0.0"]
    assert port in [a["port"] for a in data["attention"]]
    r = cli("ls", "--exposed")
    assert str(port) in r.stdout
    assert "listens on every interface" in r.stdout
    r = cli("who", f"127.0.0.1:{port}")
    assert r.status == 0
    assert f"pid {host.pids[0]}" in r.stdout


def test_cli_who_nothing_there(cli, free_port) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port))  # bound, not listening: nothing holds it as a server
        r = cli("who", str(free_port))
    assert r.status == 1
    assert r.stderr.startswith(f"homeport: nothing listens on :{free_port}")
    assert "Traceback" not in r.stderr


def test_ls_names_the_gateway_route_of_a_listener(sockhost, cli, state_dir) -> None:
    from homeport.gateway.contract import Route
    from homeport.store import Store

    host = sockhost([{"proto": "tcp", "addr": "127.0.0.1"}])
    port = host.ports[0]
    store = Store()  # the gateway's database in this test's state dir; no daemon runs
    try:
        store.put_route(Route("api.localhost", f"http://127.0.0.1:{port}"))
    finally:
        store.close()
    r = cli("ls", "--port", str(port), "--json")
    mine = [x for x in json.loads(r.stdout)["listeners"] if x["pids"] == host.pids]
    assert [x["route"] for x in mine] == ["api.localhost"]
    table = cli("ls", "--port", str(port)).stdout
    assert table.splitlines()[0].split()[4] == "ROUTE"
    assert "api.localhost" in table
