"""homeport addr through the CLI: output shapes, stable names, exit statuses."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.1.1 box\n")
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(hosts))


def test_addr_prints_a_loopback_address_from_the_pool(cli: Any, state_dir: Path) -> None:
    r = cli("addr")
    assert r.status == 0, r.stderr
    addr = IPv4Address(r.stdout.strip())
    assert addr.is_loopback
    assert addr not in (IPv4Address("127.0.0.1"), IPv4Address("127.0.1.1"))


def test_a_name_keeps_its_address_and_json_says_so(cli: Any, state_dir: Path) -> None:
    first = json.loads(cli("addr", "db.shop", "--port", "5432", "--json").stdout)
    cli("addr", "--release", first["address"])
    again = json.loads(cli("addr", "db.shop", "--port", "5432", "--json").stdout)
    assert again["address"] == first["address"]
    assert again["lease"]["name"] == "db.shop.localhost"
    assert again["lease"]["port"] == 5432
    assert "::1" in again["ipv6"]
    listed = json.loads(cli("addr", "--list", "--json").stdout)["leases"]
    assert [x["address"] for x in listed if x["live"]] == [first["address"]]


def test_bad_input_is_one_line_and_exit_2(
    cli: Any, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli("addr", "--port", "70000")
    assert r.status == 2
    assert "out of range" in r.stderr
    assert "Traceback" not in r.stderr
    monkeypatch.setenv("HOMEPORT_ADDRESS_POOL", "10.0.0.1-10.0.0.5")
    r = cli("addr")
    assert r.status == 2
    assert "127.0.0.0/8" in r.stderr


def test_ls_names_a_listener_on_a_leased_address(cli: Any, state_dir: Path) -> None:
    """The lease's name is ls's ROUTE for a listener on its address; with no address lease
    file at all, ls does not read (or import) the lease code and names nothing."""
    import socket

    lease = json.loads(cli("addr", "db.shop", "--json").stdout)
    with socket.socket() as s:
        s.bind((lease["address"], 0))
        s.listen()
        port = s.getsockname()[1]
        rows = json.loads(cli("ls", "--port", str(port), "--json").stdout)["listeners"]
        assert [r["route"] for r in rows if r["address"] == lease["address"]] == [
            "db.shop.localhost"
        ]
        for f in (state_dir / "leases").glob("addrs-*.leases"):
            f.unlink()
        rows = json.loads(cli("ls", "--port", str(port), "--json").stdout)["listeners"]
        assert [r["route"] for r in rows if r["address"] == lease["address"]] == [None]
