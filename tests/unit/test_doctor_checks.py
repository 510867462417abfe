"""The doctor's checks, table-driven over hand-built facts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from homeport.doctor.checks import (
    DoctorFacts,
    LoopbackFacts,
    LoopbackListener,
    evaluate,
    parse_hosts,
    parse_port_list,
    parse_sockstat_tw,
)
from homeport.doctor.firewall import FirewallReading, FwChain, FwRule
from homeport.doctor.gather import parse_if_inet6
from homeport.explain.facts import Resolution

BASE = DoctorFacts()
DROP_LO = FwRule(
    "nft", "inet t", "in", "input", "iif lo tcp dport 5432 drop", "drop", (("in", "lo", False),)
)
CLOSED = FwChain("nft", "inet fw", "input", "input", "drop")

CASES = [
    ("all-good", BASE, {}),
    ("lo-down", replace(BASE, loopback=LoopbackFacts(up=False)), {"loopback.interface": "fail"}),
    ("no-lo", replace(BASE, loopback=LoopbackFacts(exists=False)), {"loopback.interface": "fail"}),
    ("no-127", replace(BASE, loopback=LoopbackFacts(ipv4=())), {"loopback.ipv4": "fail"}),
    (
        "v6-off",
        replace(BASE, loopback=LoopbackFacts(ipv6=(), ipv6_disabled=True)),
        {"loopback.ipv6": "warn"},
    ),
    (
        "no-v6-kernel",
        replace(BASE, loopback=LoopbackFacts(ipv6=(), ipv6_disabled=None)),
        {"loopback.ipv6": "warn"},
    ),
    ("hosts-missing", replace(BASE, hosts_text=None), {"localhost.hosts": "warn"}),
    (
        "hosts-no-localhost",
        replace(BASE, hosts_text="127.0.0.1 myhost\n"),
        {"localhost.hosts": "warn"},
    ),
    (
        "hosts-hijacked",
        replace(BASE, hosts_text="10.0.0.9 localhost\n"),
        {"localhost.hosts": "fail"},
    ),
    (
        "resolve-fails",
        replace(BASE, localhost=Resolution("localhost", (), "no")),
        {"localhost.resolution": "fail"},
    ),
    (
        "resolve-public",
        replace(BASE, localhost=Resolution("localhost", ("8.8.8.8",))),
        {"localhost.resolution": "fail"},
    ),
    (
        "v6-first-v4-server",
        replace(BASE, listeners=(LoopbackListener(3000, "127.0.0.1", "node, pid 9"),)),
        {"localhost.resolution": "warn"},
    ),
    (
        "v6-first-dual-server",
        replace(BASE, listeners=(LoopbackListener(3000, "::", "node", False),)),
        {},
    ),
    (
        "v4-only-v6-server",
        replace(
            BASE,
            localhost=Resolution("localhost", ("127.0.0.1",)),
            listeners=(LoopbackListener(5173, "::1", "node, pid 9"),),
        ),
        {"localhost.resolution": "warn"},
    ),
    ("127.0.0.2-is-a-choice", replace(BASE, listeners=(LoopbackListener(80, "127.0.0.2"),)), {}),
    (
        "sub-unresolved",
        replace(BASE, subdomain=Resolution("x.localhost", (), "Name or service not known")),
        {"localhost.subdomains": "warn"},
    ),
    (
        "sub-public",
        replace(BASE, subdomain=Resolution("x.localhost", ("203.0.113.5",))),
        {"localhost.subdomains": "fail"},
    ),
    ("dev-ports-ephemeral", replace(BASE, ephemeral=(1024, 65535)), {"ports.ephemeral": "warn"}),
    ("dev-ports-reserved", replace(BASE, ephemeral=(49152, 65535), reserved_ports="62893\n"), {}),
    ("mac-range-home-inside", replace(BASE, ephemeral=(49152, 65535)), {"ports.ephemeral": "warn"}),
    ("tiny-range", replace(BASE, ephemeral=(61000, 61999)), {"ports.ephemeral": "warn"}),
    (
        "fw-missing",
        replace(BASE, firewall=FirewallReading("missing", message="nft not installed")),
        {"firewall.lo": "skip"},
    ),
    (
        "fw-denied",
        replace(BASE, firewall=FirewallReading("denied", message="nft: denied")),
        {"firewall.lo": "skip"},
    ),
    (
        "fw-lo-drop",
        replace(BASE, firewall=FirewallReading("ok", "nft", (), (DROP_LO,))),
        {"firewall.lo": "warn"},
    ),
    (
        "fw-closed",
        replace(BASE, firewall=FirewallReading("ok", "nft", (CLOSED,), ())),
        {"firewall.lo": "fail"},
    ),
    (
        "tw-busy",
        replace(BASE, time_wait=20000, time_wait_top=("127.0.0.1:8080", 15000)),
        {"tcp.time_wait": "fail"},
    ),
    (
        "tw-some",
        replace(BASE, time_wait=9000, time_wait_top=("127.0.0.1:8080", 7000)),
        {"tcp.time_wait": "warn"},
    ),
    ("tw-unknown", replace(BASE, time_wait=None), {"tcp.time_wait": "skip"}),
    ("home-taken", replace(BASE, home_owner="nginx, pid 5"), {"homeport.port": "warn"}),
    ("home-ours", replace(BASE, home_owner="python, pid 5 homeport"), {}),
]


@pytest.mark.parametrize(("facts", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_statuses(facts: DoctorFacts, expected: dict[str, str]) -> None:
    report = evaluate(facts)
    got = {c.id: c.status for c in report.checks}
    assert set(got) == {c.id for c in evaluate(BASE).checks}
    for cid, status in got.items():
        assert status == expected.get(cid, "ok"), (cid, status, report.to_json())
    for c in report.checks:
        if c.status in ("warn", "fail"):
            assert c.fix or c.detail, c.id


def test_report_status_and_exit_policy() -> None:
    assert evaluate(BASE).status == "ok"
    bad = evaluate(replace(BASE, loopback=LoopbackFacts(up=False)))
    assert bad.status == "fail"
    assert bad.to_json()["counts"]["fail"] == 1
    assert list(bad.to_json()) == ["status", "counts", "checks"]
    assert list(bad.to_json()["checks"][0]) == ["id", "title", "status", "summary", "detail", "fix"]


def test_bind0_listeners_in_the_ephemeral_range_are_counted_not_weighed() -> None:
    f = replace(
        BASE,
        localhost=Resolution("localhost", ("127.0.0.1",)),
        listeners=(LoopbackListener(40001, "::1"), LoopbackListener(40002, "::1")),
    )
    c = next(c for c in evaluate(f).checks if c.id == "localhost.resolution")
    assert c.status == "ok"
    assert any("2 listener(s)" in d and "not weighed" in d for d in c.detail)


def test_many_unreachable_listeners_are_capped() -> None:
    many = tuple(LoopbackListener(p, "::1") for p in range(3000, 3050))
    c = next(
        c
        for c in evaluate(
            replace(BASE, localhost=Resolution("localhost", ("127.0.0.1",)), listeners=many)
        ).checks
        if c.id == "localhost.resolution"
    )
    assert c.status == "warn"
    assert "50" in c.summary
    assert len(c.detail) < 12
    assert "42 more" in c.detail[-1]


def test_parsers() -> None:
    hosts = parse_hosts("# c\n127.0.0.1 localhost loghost\n::1 localhost ip6-localhost # x\n")
    assert hosts["localhost"] == ["127.0.0.1", "::1"]
    assert parse_port_list("8080,9000-9002\n") == {8080, 9000, 9001, 9002}
    assert parse_port_list("") == set()
    stat = "sockets: used 5\nTCP: inuse 5 orphan 0 tw 21 alloc 7 mem 1\nUDP: inuse 1 mem 0\n"
    assert parse_sockstat_tw(stat) == 21
    assert parse_sockstat_tw("UDP: inuse 1\n") is None
    inet6 = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe8000000000000000fc00fffe000001 02 40 20 80     eth0\n"
    )
    assert parse_if_inet6(inet6, "lo") == ("::1",)
    assert parse_if_inet6(inet6, "eth0") == ("fe80::fc:ff:fe00:1",)
