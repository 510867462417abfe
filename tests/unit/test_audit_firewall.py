"""Firewall-rules fallback: parse recorded ``nft -j list ruleset`` and ``iptables-save``."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.audit.firewall import (
    FirewallView,
    blocks,
    parse_iptables_save,
    parse_nft_json,
    read_firewall,
    verdict_for,
)

FIX = Path(__file__).parent.parent / "fixtures" / "audit"
FW_DUMPS = Path(__file__).parent.parent / "fixtures" / "firewall"


@pytest.fixture
def nft() -> FirewallView:
    return parse_nft_json((FIX / "nft_ruleset.json").read_text())


@pytest.fixture
def ipt() -> FirewallView:
    return parse_iptables_save((FIX / "iptables_save.txt").read_text())


def test_nft_reads_input_policy_and_port_rules(nft: FirewallView) -> None:
    assert nft.tool == "nft"
    assert nft.input_filter
    assert nft.default_drop
    assert nft.docker
    ports = {(r.lo, r.hi, r.verdict, r.conditional) for r in nft.rules}
    assert ports == {
        (22, 22, "accept", False),
        (6379, 6379, "drop", False),
        (2375, 2375, "reject", False),
        (2376, 2376, "reject", False),
        (8000, 8100, "accept", False),
        (5432, 5432, "accept", True),
    }


@pytest.mark.parametrize(
    ("port", "blocked", "words"),
    [
        (22, False, "allowed by a nft rule (accept)"),
        (6379, True, "blocked by a nft rule (drop)"),
        (2376, True, "blocked by a nft rule (reject)"),
        (8050, False, "allowed by a nft rule (accept)"),
        (5432, True, "allowed by a nft rule (accept) for some sources/interfaces"),
        (9999, True, "blocked by the input policy (drop)"),
    ],
)
def test_nft_verdicts(nft: FirewallView, port: int, blocked: bool, words: str) -> None:
    assert blocks(nft, port) is blocked
    assert verdict_for(nft, port) == words


def test_iptables_save(ipt: FirewallView) -> None:
    assert ipt.input_filter
    assert ipt.default_drop
    assert ipt.docker
    assert {(r.lo, r.hi, r.verdict, r.conditional) for r in ipt.rules} == {
        (22, 22, "accept", False),
        (6379, 6379, "drop", False),
        (2375, 2375, "reject", False),
        (2376, 2376, "reject", False),
        (5432, 5432, "accept", True),
    }
    assert blocks(ipt, 6379)
    assert not blocks(ipt, 22)
    assert blocks(ipt, 5432)  # only 10.0.0.0/8 may come in; the policy drops the rest


def test_empty_rulesets_filter_nothing() -> None:
    empty = parse_nft_json('{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    assert not empty.input_filter
    assert not blocks(empty, 6379)
    assert verdict_for(empty, 6379) == "no input filtering found (nft)"
    assert verdict_for(None, 1) == "firewall rules unreadable"
    accept_all = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    assert not accept_all.input_filter


@pytest.mark.parametrize("name", ["empty", "iptables_legacy_style"])
def test_one_ruleset_one_view_whichever_tool_dumped_it(name: str) -> None:
    """These rulesets were built with iptables (tests/fixtures/firewall/capture.sh) and
    dumped through both nft and iptables-save: the audit's verdicts must not depend on
    which was read. (The audit once missed iptables-nft's REJECT, an ``xt`` target in
    nft's JSON.) The other scenarios there are native nft tables, which iptables-save
    does not show."""
    nft = parse_nft_json((FW_DUMPS / f"{name}.nft.json").read_text())
    ipt = parse_iptables_save((FW_DUMPS / f"{name}.iptables.txt").read_text())
    assert (nft.input_filter, nft.default_drop, nft.docker) == (
        ipt.input_filter,
        ipt.default_drop,
        ipt.docker,
    )
    assert {(r.lo, r.hi, r.verdict, r.conditional) for r in nft.rules} == {
        (r.lo, r.hi, r.verdict, r.conditional) for r in ipt.rules
    }
    for port in (22, 3000, 5432, 6379, 8080, 9999):
        assert blocks(nft, port) == blocks(ipt, port), port


def test_iptables_nft_reject_is_a_blocking_port_rule() -> None:
    nft = parse_nft_json((FW_DUMPS / "iptables_legacy_style.nft.json").read_text())
    assert verdict_for(nft, 8080) == "blocked by a nft rule (reject)"
    assert blocks(nft, 8080)


def test_read_firewall_is_doctors_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """One reader: the audit's view comes from ``homeport.doctor.firewall.read_firewall``."""
    from homeport.doctor import firewall as doctor_fw

    text = (FW_DUMPS / "lo_port_drop.nft.json").read_text()
    chains, rules = doctor_fw.parse_nft_json(text)
    reading = doctor_fw.FirewallReading("ok", "nft", chains, rules)
    monkeypatch.setattr(doctor_fw, "read_firewall", lambda run: reading)
    assert read_firewall() == parse_nft_json(text)
    denied = doctor_fw.FirewallReading("denied", message="nft: Operation not permitted")
    monkeypatch.setattr(doctor_fw, "read_firewall", lambda run: denied)
    assert read_firewall() is None
