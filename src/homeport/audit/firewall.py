"""Reading the firewall when the outside-in probe cannot run: a best-effort, "not verified"
view of what the input path would do to a TCP port.

The rules are read and parsed once, by ``homeport.doctor.firewall`` (``nft -j list
ruleset``, libnftables JSON schema, nft 0.9+; else ``iptables-save``/``ip6tables-save``);
``view`` (pure) reduces its records to what the audit asks: only rules in *filter* chains
hooked on *input* count (packets to this host's own addresses), per TCP destination port;
a rule that also matches on interface, address or state is "conditional".
Docker's ``DOCKER`` chains are noted because published ports are DNAT-ed in *prerouting*
and forwarded, so input rules never see them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from homeport.doctor import firewall as fw

RuleVerdict = Literal["accept", "drop", "reject"]
_VERDICTS: dict[str, RuleVerdict] = {"accept": "accept", "drop": "drop", "reject": "reject"}


@dataclass(frozen=True, slots=True)
class PortRule:
    lo: int
    hi: int
    verdict: RuleVerdict
    conditional: bool
    source: str  # "nft" or "iptables"


@dataclass(frozen=True, slots=True)
class FirewallView:
    tool: str  # "nft", "iptables-save" or "none"
    input_filter: bool = False
    default_drop: bool = False
    rules: tuple[PortRule, ...] = ()
    docker: bool = False


def verdict_for(view: FirewallView | None, port: int) -> str:
    """What the rules say about TCP ``port`` arriving on input, in words."""
    if view is None:
        return "firewall rules unreadable"
    if not view.input_filter:
        return f"no input filtering found ({view.tool})"
    for rule in view.rules:
        if rule.lo <= port <= rule.hi:
            how = " for some sources/interfaces" if rule.conditional else ""
            word = "allowed" if rule.verdict == "accept" else "blocked"
            return f"{word} by a {rule.source} rule ({rule.verdict}){how}"
    return "blocked by the input policy (drop)" if view.default_drop else "no rule for this port"


def blocks(view: FirewallView | None, port: int) -> bool:
    """Whether the rules (read, not tested) most likely stop ``port`` from outside."""
    if view is None or not view.input_filter:
        return False
    for rule in view.rules:
        if rule.lo <= port <= rule.hi and not rule.conditional:
            return rule.verdict != "accept"
    return view.default_drop


def view(chains: Sequence[fw.FwChain], rules: Sequence[fw.FwRule], tool: str) -> FirewallView:
    """The audit's view of a parsed ruleset (``tool``: "nft" or "iptables-save")."""
    inputs = {
        (c.source, c.table, c.name) for c in chains if c.hook == "input" and c.type == "filter"
    }
    default_drop = any(c.policy == "drop" for c in chains if (c.source, c.table, c.name) in inputs)
    mine = [r for r in rules if (r.source, r.table, r.chain) in inputs]
    ports = tuple(
        PortRule(lo, hi, verdict, r.conditional, r.source)
        for r in mine
        if (verdict := _VERDICTS.get(r.verdict)) is not None  # jumps, logs: no verdict
        for lo, hi in r.tcp_dports
    )
    # An input chain that neither drops by default nor holds a rule filters nothing: an
    # iptables filter table always has its INPUT chain, usually empty and accepting.
    filtering = bool(inputs) and (default_drop or bool(mine))
    docker = any(c.name.startswith("DOCKER") for c in chains)
    return FirewallView(tool, filtering, default_drop, ports, docker)


def parse_nft_json(text: str) -> FirewallView:
    return view(*fw.parse_nft_json(text), "nft")


def parse_iptables_save(text: str) -> FirewallView:
    return view(*fw.parse_iptables_save(text), "iptables-save")


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def read_firewall(timeout: float = 3.0) -> FirewallView | None:
    """The rules as ``homeport doctor`` reads them; None when neither tool could be read."""
    reading = fw.read_firewall(run=lambda argv: _run(argv, timeout))
    if reading.status != "ok":
        return None
    return view(
        reading.chains, reading.rules, "nft" if reading.source == "nft" else "iptables-save"
    )
