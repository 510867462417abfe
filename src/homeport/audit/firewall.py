"""Reading the firewall when the outside-in probe cannot run: a best-effort, "not verified"
view of what the input path would do to a TCP port.

``parse_nft_json`` reads ``nft -j list ruleset`` (libnftables JSON schema, nft 0.9+),
``parse_iptables_save`` reads ``iptables-save``; both are pure. ``read_firewall`` runs them.
Only rules in chains hooked on *input* count (packets to this host's own addresses);
a rule that also matches on interface or source address is "conditional".
Docker's ``DOCKER`` chains are noted because published ports are DNAT-ed in *prerouting*
and forwarded, so input rules never see them.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("homeport.audit.firewall")

RuleVerdict = Literal["accept", "drop", "reject"]


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


def parse_nft_json(text: str) -> FirewallView:
    items = json.loads(text).get("nftables", [])
    inputs: set[tuple[str, str, str]] = set()
    default_drop = False
    docker = False
    for item in items:
        chain = item.get("chain")
        if chain:
            docker |= chain.get("name", "").startswith("DOCKER")
            if chain.get("hook") == "input" and chain.get("type", "filter") == "filter":
                inputs.add((chain["family"], chain["table"], chain["name"]))
                default_drop |= chain.get("policy") == "drop"
    rules = []
    for item in items:
        rule = item.get("rule")
        if rule and (rule["family"], rule["table"], rule["chain"]) in inputs:
            rules += _nft_rule(rule.get("expr", []))
    return FirewallView("nft", bool(inputs), default_drop, tuple(rules), docker)


def _nft_rule(exprs: list[dict[str, Any]]) -> list[PortRule]:
    ports: list[tuple[int, int]] = []
    verdict: RuleVerdict | None = None
    conditional = False
    for e in exprs:
        if "match" in e:
            left = e["match"].get("left", {})
            field = left.get("payload", {}) if isinstance(left, dict) else {}
            if field.get("field") == "dport" and field.get("protocol") in ("tcp", "th"):
                ports += _nft_ports(e["match"].get("right"))
            elif not (
                field.get("field") == "protocol"
                or ("meta" in left and left["meta"].get("key") in ("l4proto", "nfproto"))
            ):
                conditional = True
        for v in _NFT_VERDICTS:
            if v in e:
                verdict = v
    if verdict is None:
        return []
    return [PortRule(lo, hi, verdict, conditional, "nft") for lo, hi in ports]


def _is_l4proto(left: Any) -> bool:
    return isinstance(left, dict) and left.get("meta", {}).get("key") in ("l4proto", "nfproto")


def _nft_ports(right: Any) -> list[tuple[int, int]]:
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, dict) and "range" in right:
        lo, hi = right["range"]
        return [(int(lo), int(hi))]
    if isinstance(right, dict) and "set" in right:
        out: list[tuple[int, int]] = []
        for x in right["set"]:
            out += _nft_ports(x)
        return out
    return []


def parse_iptables_save(text: str) -> FirewallView:
    default_drop = False
    rules: list[PortRule] = []
    seen_input = False
    docker = False
    for line in text.splitlines():
        if line.startswith(":INPUT "):
            default_drop = line.split()[1] in ("DROP", "REJECT")
            seen_input = True
        docker |= line.startswith(":DOCKER")
        if line.startswith("-A INPUT "):
            rules += _ipt_rule(line.split())
    has_filter = seen_input and (default_drop or bool(rules))
    return FirewallView("iptables-save", has_filter, default_drop, tuple(rules), docker)


_IPT_VERDICTS: dict[str, RuleVerdict] = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject"}
_NFT_VERDICTS: tuple[RuleVerdict, ...] = ("accept", "drop", "reject")


def _ipt_rule(words: list[str]) -> list[PortRule]:
    opts = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("-")}
    verdict = _IPT_VERDICTS.get(opts.get("-j", ""))
    dport = opts.get("--dport") or opts.get("--dports")
    if verdict is None or dport is None or opts.get("-p", "tcp") != "tcp":
        return []
    conditional = any(k in opts for k in ("-s", "-i", "-d", "--state", "--ctstate"))
    out = []
    for part in dport.split(","):  # multiport: "22,80,8000:8100"
        lo_s, _, hi_s = part.partition(":")
        out.append(PortRule(int(lo_s), int(hi_s or lo_s), verdict, conditional, "iptables"))
    return out


def read_firewall(timeout: float = 3.0) -> FirewallView | None:
    """Run ``nft -j list ruleset`` or ``iptables-save``; None when neither can be read."""
    for tool, argv, parse in (
        ("nft", ["nft", "-j", "list", "ruleset"], parse_nft_json),
        ("iptables-save", ["iptables-save"], parse_iptables_save),
    ):
        if shutil.which(argv[0]) is None:
            continue
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=True
            ).stdout
            return parse(out)
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
            log.debug("%s unreadable: %s", tool, exc)
    return None
