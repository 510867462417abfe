"""The firewall reader on real dumps (tests/fixtures/firewall, captured in network namespaces
by capture.sh there), and its graceful degradation when tools are missing or denied."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from homeport.doctor.firewall import (
    lo_effects,
    parse_iptables_save,
    parse_nft_json,
    read_firewall,
)

FW = Path(__file__).parent.parent / "fixtures" / "firewall"

# fixture file -> (chains closed to lo, blocking rules (substring of text), lo-accepting rules)
TABLE = [
    ("empty.nft.json", [], [], 0),
    ("empty.iptables.txt", [], [], 0),
    ("lo_port_drop.nft.json", [], ["iif lo tcp dport 5432 drop"], 0),
    ("policy_drop_lo_accept.nft.json", [], [], 1),
    ("policy_drop_no_lo.nft.json", ["input"], [], 0),
    ("output_reject.nft.json", [], ["oifname lo ip daddr 127.0.0.1 tcp dport 6379 reject"], 0),
    ("iptables_legacy_style.nft.json", [], ["tcp dport 8080 reject"], 1),
    ("iptables_legacy_style.iptables.txt", [], ["--dport 8080 -j REJECT"], 1),
]


@pytest.mark.parametrize(
    ("name", "closed", "blocking", "accepting"), TABLE, ids=[t[0] for t in TABLE]
)
def test_lo_effects_of_real_dumps(
    name: str, closed: list[str], blocking: list[str], accepting: int
) -> None:
    text = (FW / name).read_text()
    chains, rules = parse_nft_json(text) if name.endswith(".json") else parse_iptables_save(text)
    eff = lo_effects(chains, rules)
    assert [c.name for c in eff.closed_chains] == closed
    assert len(eff.blocking) == len(blocking)
    for want, got in zip(blocking, eff.blocking, strict=True):
        assert want in got.text
    assert len(eff.accepting) == accepting


def test_rule_on_other_interface_does_not_touch_lo() -> None:
    chains, rules = parse_iptables_save((FW / "iptables_legacy_style.iptables.txt").read_text())
    negated = [r for r in rules if "3000" in r.text]
    assert len(negated) == 1
    assert negated[0].verdict == "drop"
    assert not negated[0].applies_to_lo  # `! -i lo` excludes loopback
    assert [c.policy for c in chains if c.name == "INPUT"] == ["drop"]


def _runner(results: dict[str, tuple[int, str, str]]):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        code, out, err = results[argv[0]]
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return run


def test_missing_tools_degrade_to_missing() -> None:
    r = read_firewall(run=_runner({}), which=lambda _name: None)
    assert r.status == "missing"
    assert "nft not installed" in (r.message or "")


def test_denied_is_reported_as_denied() -> None:
    err = (1, "", "Operation not permitted (you must be root)\n")
    r = read_firewall(
        run=_runner({"nft": err, "iptables-save": err, "ip6tables-save": err}),
        which=lambda name: "/usr/sbin/" + name,
    )
    assert r.status == "denied"


def test_empty_nft_falls_back_to_legacy_iptables() -> None:
    legacy = (FW / "iptables_legacy_style.iptables.txt").read_text()
    r = read_firewall(
        run=_runner(
            {
                "nft": (0, (FW / "empty.nft.json").read_text(), ""),
                "iptables-save": (0, legacy, ""),
                "ip6tables-save": (0, "", ""),
            }
        ),
        which=lambda name: "/usr/sbin/" + name,
    )
    assert (r.status, r.source) == ("ok", "iptables")
    assert any("8080" in x.text for x in r.rules)


def test_nft_rules_win_when_present() -> None:
    r = read_firewall(
        run=_runner({"nft": (0, (FW / "lo_port_drop.nft.json").read_text(), "")}),
        which=lambda name: "/usr/sbin/" + name if name == "nft" else None,
    )
    assert (r.status, r.source) == ("ok", "nft")
    assert len(r.rules) == 1


def test_garbage_json_is_an_error_not_a_crash() -> None:
    r = read_firewall(
        run=_runner({"nft": (0, "{not json", "")}),
        which=lambda name: "/usr/sbin/nft" if name == "nft" else None,
    )
    assert r.status == "error"


@pytest.mark.parametrize(
    ("name", "want"),
    [
        # (rule text substring, TCP dports, conditional) for each rule with a port
        ("lo_port_drop.nft.json", {("dport 5432", ((5432, 5432),), True)}),
        (
            "iptables_legacy_style.iptables.txt",
            {("--dport 8080", ((8080, 8080),), False), ("--dport 3000", ((3000, 3000),), True)},
        ),
        (
            "iptables_legacy_style.nft.json",
            {("dport 8080", ((8080, 8080),), False), ("dport 3000", ((3000, 3000),), True)},
        ),
        ("policy_drop_no_lo.nft.json", {("dport 22", ((22, 22),), True)}),  # iifname eth0
    ],
)
def test_rules_carry_their_tcp_ports_and_conditions(
    name: str, want: set[tuple[str, tuple[tuple[int, int], ...], bool]]
) -> None:
    """What the audit's "not verified" fallback reads from the same records."""
    text = (FW / name).read_text()
    _chains, rules = parse_nft_json(text) if name.endswith(".json") else parse_iptables_save(text)
    got = {(r.text, r.tcp_dports, r.conditional) for r in rules if r.tcp_dports}
    assert len(got) == len(want)
    for sub, ports, cond in want:
        assert any(sub in t and p == ports and c == cond for t, p, c in got), (sub, got)


def test_chain_type_is_kept() -> None:
    chains, _ = parse_nft_json((FW / "policy_drop_no_lo.nft.json").read_text())
    assert [(c.name, c.hook, c.type, c.policy) for c in chains] == [
        ("input", "input", "filter", "drop")
    ]
    chains, _ = parse_iptables_save((FW / "iptables_legacy_style.iptables.txt").read_text())
    assert ("INPUT", "filter", "drop") in {(c.name, c.type, c.policy) for c in chains}
