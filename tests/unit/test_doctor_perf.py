"""The loopback self-test's verdict from hand-built figures and configurations."""

from __future__ import annotations

import pytest

from homeport.doctor.perf import Figures, LoopbackConfig, evaluate, percentile, suspects
from homeport.doctor.perfprobe import parse_qdisc

HEALTHY = LoopbackConfig(
    mtu=65536,
    qdisc="noqueue",
    congestion="cubic",
    tcp_rmem_max=6291456,
    tcp_wmem_max=4194304,
    conntrack_entries=0,
)
TCP = Figures((14.0, 15.0, 16.0), 10_000_000_000, 1.0)
UNIX = Figures((10.0, 10.0, 11.0), 20_000_000_000, 1.0)


def test_the_interface_keys() -> None:
    j = evaluate(TCP, UNIX, HEALTHY).to_json()
    assert j["throughput_bits_per_second"] == 80_000_000_000
    assert j["rtt_median_us"] == 15.0
    assert j["verdict"] == "ok"
    assert j["slowdowns"] == []


def test_slow_against_the_baseline() -> None:
    slow = Figures((400.0, 410.0, 420.0), 100_000_000, 1.0)
    assert evaluate(slow, UNIX, HEALTHY).verdict == "slow"


@pytest.mark.parametrize(
    ("change", "sid"),
    [
        ({"mtu": 1500}, "lo.mtu"),
        ({"qdisc": "tbf 8002: root refcnt 2 rate 100Mbit"}, "lo.qdisc"),
        ({"fw_rules": ("nft inet t in: tcp dport 1-2 counter",)}, "firewall.rules"),
        ({"conntrack_entries": 3}, "conntrack.lo"),
        ({"tcp_rmem_max": 87380}, "tcp.buffers"),
        ({"congestion": "lp"}, "tcp.congestion"),
        ({"governor": "powersave"}, "cpu.governor"),
    ],
)
def test_each_suspect_is_named(change: dict[str, object], sid: str) -> None:
    from dataclasses import replace

    assert suspects(HEALTHY) == ()
    got = suspects(replace(HEALTHY, **change))  # type: ignore[arg-type]
    assert [s.id for s in got] == [sid]
    assert got[0].fix


def test_rules_behind_an_early_lo_accept_cost_nothing() -> None:
    from dataclasses import replace

    c = replace(HEALTHY, fw_rules=("x",), fw_lo_accepted_first=True)
    assert suspects(c) == ()
    assert suspects(replace(HEALTHY, conntrack_entries=5, conntrack_lo_exempt=True)) == ()


def test_qdisc_text() -> None:
    assert parse_qdisc("qdisc noqueue 0: root refcnt 2 \n") == "noqueue"
    assert parse_qdisc("qdisc tbf 8002: root refcnt 2 rate 100Mbit burst 4Kb lat 50ms\n") == (
        "tbf 8002: root refcnt 2 rate 100Mbit burst 4Kb lat 50ms"
    )
    assert parse_qdisc("") is None


def test_percentile() -> None:
    assert percentile((), 50) == 0.0
    assert percentile(tuple(float(i) for i in range(101)), 99) == 99.0
