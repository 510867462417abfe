"""The doctor's readers on fake /proc and /sys trees (recorded text, no live machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.doctor.gather import can_bind_privileged, loopback
from homeport.explain.facts import ipv6_on_lo

IF_INET6 = (
    "00000000000000000000000000000001 01 80 10 80       lo\n"
    "fd000000000000000000000000000002 02 40 00 80     eth0\n"
)


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "up", "ipv6", "disabled"),
    [
        (
            {"sys/class/net/lo/flags": "0x9\n", "proc/net/if_inet6": IF_INET6,
             "proc/sys/net/ipv6/conf/lo/disable_ipv6": "0\n"},
            True, ("::1",), False,
        ),
        (
            {"sys/class/net/lo/flags": "0x8\n", "proc/net/if_inet6": IF_INET6,
             "proc/sys/net/ipv6/conf/lo/disable_ipv6": "1\n"},
            False, ("::1",), True,
        ),
        ({"sys/class/net/lo/flags": "0x9\n"}, True, (), None),  # kernel without IPv6
    ],
)  # fmt: skip
def test_loopback_reader(
    tmp_path: Path, files: dict[str, str], up: bool, ipv6: tuple[str, ...], disabled: bool | None
) -> None:
    root = tree(tmp_path, files)
    lo = loopback(proc=root / "proc", sys_root=root / "sys")
    assert (lo.exists, lo.up, lo.ipv6, lo.ipv6_disabled) == (True, up, ipv6, disabled)


def test_missing_lo(tmp_path: Path) -> None:
    lo = loopback(proc=tmp_path / "proc", sys_root=tmp_path / "sys")
    assert (lo.exists, lo.up) == (False, None)


def test_ipv6_on_lo(tmp_path: Path) -> None:
    on = tree(tmp_path / "a", {"net/if_inet6": IF_INET6, "sys/net/ipv6/conf/lo/disable_ipv6": "0"})
    off = tree(tmp_path / "b", {"net/if_inet6": "", "sys/net/ipv6/conf/lo/disable_ipv6": "1"})
    assert ipv6_on_lo(on) is True
    assert ipv6_on_lo(off) is False
    assert ipv6_on_lo(tmp_path / "none") is False


@pytest.mark.parametrize(
    ("cap_eff", "euid", "expected"),
    [
        ("0000000000000000", 1000, False),
        ("0000000000000400", 1000, True),  # bit 10: CAP_NET_BIND_SERVICE
        ("000001ffffffffff", 1000, True),
        ("0000000000000000", 0, True),  # root
    ],
)
def test_can_bind_privileged(cap_eff: str, euid: int, expected: bool) -> None:
    status = f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\n"
    assert can_bind_privileged(status, euid=euid) is expected
