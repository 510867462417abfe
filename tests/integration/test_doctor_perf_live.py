"""`homeport doctor --perf` on real loopback: the figures it reports, and the slowdowns it
names when a private network namespace's lo is made slow (a tbf qdisc, MTU 1500, an
nftables rule that every loopback packet traverses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "ip", "tc", "nft")),
    reason="needs root and unshare, ip, tc, nft for a private network namespace",
)


def _perf(setup: str = "") -> dict[str, object]:
    script = f"ip link set lo up\n{setup}\nexec {sys.executable} -m homeport doctor --perf --json"
    argv = (
        ["unshare", "-n", "sh", "-ec", script] if setup else ["sh", "-ec", script.split("\n")[-1]]
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def test_the_figures_are_reported() -> None:
    doc = _perf()
    assert isinstance(doc["throughput_bits_per_second"], int)
    assert doc["throughput_bits_per_second"] > 0
    assert isinstance(doc["rtt_median_us"], float)
    assert doc["rtt_median_us"] > 0
    assert doc["verdict"] in ("ok", "slow")


@needs_netns
def test_a_slow_lo_is_named() -> None:
    tbf = "tc qdisc add dev lo root tbf rate 200mbit burst 64kbit latency 50ms"
    nft = (
        "nft add table inet hp\n"
        "nft add chain inet hp in '{ type filter hook input priority 0; }'\n"
        "nft add rule inet hp in tcp dport 1-2 counter"
    )
    doc = _perf(f"{tbf}\nip link set lo mtu 1500\n{nft}")
    ids = {s["id"] for s in doc["slowdowns"]}  # type: ignore[attr-defined]
    assert {"lo.qdisc", "lo.mtu", "firewall.rules"} <= ids
    assert doc["config"]["lo_mtu"] == 1500  # type: ignore[index]
    # 200 Mbit/s against an AF_UNIX pair that moves gigabits: slow by the figures alone.
    assert doc["verdict"] == "slow"


@needs_netns
def test_a_fresh_namespace_has_no_loopback_slowdown() -> None:
    doc = _perf("true")
    ids = {s["id"] for s in doc["slowdowns"]}  # type: ignore[attr-defined]
    # (host-wide settings such as the CPU governor may still be named)
    assert not ids & {"lo.qdisc", "lo.mtu", "firewall.rules", "conntrack.lo"}
