"""Read-only view of the packet filter: the one reader of the rules in homeport.

Pure parsers for ``nft -j list ruleset`` (libnftables JSON, schema 1) and ``iptables-save``
text turn a dump into ``FwRule``/``FwChain`` records; ``lo_effects`` says which of them can
drop or reject traffic on ``lo`` (for ``doctor`` and ``explain``); each rule also carries
the TCP destination ports it matches and whether it matches anything else, which is what
``homeport.audit.firewall`` needs to judge a port arriving from outside. ``read_firewall``
is the only edge: it runs the two tools (never anything that changes rules) and degrades
to a reading with ``status`` ``missing`` or ``denied`` when a tool is absent or the user
may not read the rules.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("homeport.doctor.firewall")

Verdict = Literal["accept", "drop", "reject", "other"]
Status = Literal["ok", "missing", "denied", "error"]
Source = Literal["nft", "iptables"]

_IFACE_KEYS = {"iif": "in", "iifname": "in", "oif": "out", "oifname": "out"}
_HOOKS = {"INPUT": "input", "OUTPUT": "output", "FORWARD": "forward"}


@dataclass(frozen=True, slots=True)
class FwChain:
    source: Source
    table: str
    name: str
    hook: str | None
    policy: Verdict
    #: nft chain type (filter, nat, route); for iptables the table's name.
    type: str = "filter"


@dataclass(frozen=True, slots=True)
class FwRule:
    """One rule, reduced to what matters for loopback: its verdict and interface matches."""

    source: Source
    table: str
    chain: str
    hook: str | None
    text: str
    verdict: Verdict
    #: (direction "in"/"out", interface, negated) for every interface match.
    ifaces: tuple[tuple[str, str, bool], ...] = ()
    #: TCP destination port ranges (inclusive) the rule matches; empty = no port match.
    tcp_dports: tuple[tuple[int, int], ...] = ()
    #: The rule also matches on something other than the protocol and ports (addresses,
    #: interfaces, conntrack state …): it applies to some packets only.
    conditional: bool = False

    @property
    def applies_to_lo(self) -> bool:
        """Whether loopback packets can match: no interface match, or one that admits lo."""
        return all((name == "lo") != negated for _direction, name, negated in self.ifaces)

    @property
    def names_lo(self) -> bool:
        return any(name == "lo" and not neg for _d, name, neg in self.ifaces)


@dataclass(frozen=True, slots=True)
class FirewallReading:
    status: Status
    source: Source | None = None
    chains: tuple[FwChain, ...] = ()
    rules: tuple[FwRule, ...] = ()
    message: str | None = None


# ---------------------------------------------------------------- nft JSON (pure)


def parse_nft_json(text: str) -> tuple[tuple[FwChain, ...], tuple[FwRule, ...]]:
    """Parse ``nft -j list ruleset``; unknown expressions are kept as text, never fatal."""
    items = json.loads(text).get("nftables", [])
    chains: list[FwChain] = []
    hooks: dict[tuple[str, str, str], str | None] = {}
    rules: list[FwRule] = []
    for item in items:
        if "chain" in item:
            c = item["chain"]
            table = f"{c.get('family', '?')} {c.get('table', '?')}"
            hook = c.get("hook")
            hooks[(c.get("family", "?"), c.get("table", "?"), c.get("name", "?"))] = hook
            policy = _verdict_word(c.get("policy", "accept")) if hook else "accept"
            kind = str(c.get("type", "filter"))
            chains.append(FwChain("nft", table, c.get("name", "?"), hook, policy, kind))
        elif "rule" in item:
            rules.append(_nft_rule(item["rule"], hooks))
    return tuple(chains), tuple(rules)


def _nft_rule(r: dict[str, Any], hooks: dict[tuple[str, str, str], str | None]) -> FwRule:
    parts: list[str] = []
    ifaces: list[tuple[str, str, bool]] = []
    ports: list[tuple[int, int]] = []
    conditional = False
    verdict: Verdict = "other"
    for expr in r.get("expr", []):
        key, value = next(iter(expr.items())) if expr else ("", None)
        if key == "match" and isinstance(value, dict):
            parts.append(_nft_match(value, ifaces))
            conditional |= _nft_scope(value, ports)
        elif key in ("accept", "drop", "reject"):
            verdict = _verdict_word(key)
            parts.append(key)
        elif key == "xt" and isinstance(value, dict):  # iptables-nft targets (REJECT …)
            verdict = _verdict_word(str(value.get("name", "")))
            parts.append(str(value.get("name", "xt")).lower())
        elif key in ("jump", "goto") and isinstance(value, dict):
            parts.append(f"{key} {value.get('target', '?')}")
        elif key != "counter":
            parts.append(key)
    fam, table, chain = r.get("family", "?"), r.get("table", "?"), r.get("chain", "?")
    return FwRule(
        "nft",
        f"{fam} {table}",
        chain,
        hooks.get((fam, table, chain)),
        " ".join(p for p in parts if p),
        verdict,
        tuple(ifaces),
        tuple(ports),
        conditional,
    )


def _nft_scope(m: dict[str, Any], ports: list[tuple[int, int]]) -> bool:
    """Collect a TCP dport match into ``ports``; True when the match narrows the rule to
    some packets in another way (a protocol match alone does not)."""
    left = m.get("left", {})
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    if payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "th"):
        ports += _nft_ports(m.get("right"))
        return False
    meta = left.get("meta", {}).get("key") if isinstance(left, dict) else None
    return not (payload.get("field") == "protocol" or meta in ("l4proto", "nfproto"))


def _nft_ports(right: Any) -> list[tuple[int, int]]:
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, dict) and "range" in right:
        lo, hi = right["range"]
        return [(int(lo), int(hi))]
    if isinstance(right, dict) and "set" in right:
        return [p for x in right["set"] for p in _nft_ports(x)]
    return []


def _nft_match(m: dict[str, Any], ifaces: list[tuple[str, str, bool]]) -> str:
    left, right, op = m.get("left", {}), m.get("right"), m.get("op", "==")
    name = _nft_operand(left)
    meta = left.get("meta", {}).get("key") if isinstance(left, dict) else None
    if meta in _IFACE_KEYS and isinstance(right, str):
        ifaces.append((_IFACE_KEYS[meta], right, op == "!="))
    shown = ",".join(map(str, right)) if isinstance(right, list) else _nft_operand(right)
    return f"{name} {'' if op in ('==', 'in') else op + ' '}{shown}"


def _nft_operand(x: Any) -> str:
    if isinstance(x, dict):
        if "meta" in x:
            return str(x["meta"].get("key", "meta"))
        if "payload" in x:
            p = x["payload"]
            return f"{p.get('protocol', '')} {p.get('field', '')}".strip()
        if "ct" in x:
            return f"ct {x['ct'].get('key', '')}"
        if "prefix" in x:
            return f"{x['prefix'].get('addr')}/{x['prefix'].get('len')}"
        if "set" in x:
            return "{" + ",".join(map(str, x["set"])) + "}"
        return next(iter(x), "?")
    return str(x)


def _verdict_word(word: str) -> Verdict:
    w = word.lower()
    return w if w in ("accept", "drop", "reject") else "other"  # type: ignore[return-value]


# ---------------------------------------------------------------- iptables-save (pure)


def parse_iptables_save(text: str) -> tuple[tuple[FwChain, ...], tuple[FwRule, ...]]:
    """Parse ``iptables-save``/``ip6tables-save`` output (filter table and the rest)."""
    chains: list[FwChain] = []
    rules: list[FwRule] = []
    table = "?"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            name, policy = [*line[1:].split(), "-"][:2]
            hook = _HOOKS.get(name)
            verdict = _verdict_word(policy) if hook else "accept"
            chains.append(FwChain("iptables", table, name, hook, verdict, table))
        elif line.startswith("-A "):
            rules.append(_iptables_rule(table, line))
    return tuple(chains), tuple(rules)


def _iptables_rule(table: str, line: str) -> FwRule:
    words = line.split()
    chain = words[1]
    ifaces: list[tuple[str, str, bool]] = []
    verdict: Verdict = "other"
    for i, w in enumerate(words):
        if w in ("-i", "-o") and i + 1 < len(words):
            negated = i > 0 and words[i - 1] == "!"
            ifaces.append(("in" if w == "-i" else "out", words[i + 1], negated))
        elif w in ("-j", "-g") and i + 1 < len(words):
            verdict = _verdict_word(words[i + 1])
    opts = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("-")}
    return FwRule(
        "iptables",
        table,
        chain,
        _HOOKS.get(chain),
        " ".join(words[2:]),
        verdict,
        tuple(ifaces),
        _iptables_ports(opts),
        any(k in opts for k in ("-s", "-i", "-d", "--state", "--ctstate")),
    )


def _iptables_ports(opts: dict[str, str]) -> tuple[tuple[int, int], ...]:
    dport = opts.get("--dport") or opts.get("--dports")
    if dport is None or opts.get("-p", "tcp") != "tcp":
        return ()
    out = []
    for part in dport.split(","):  # multiport: "22,80,8000:8100"
        lo, _, hi = part.partition(":")
        if lo.isdigit() and (hi or lo).isdigit():
            out.append((int(lo), int(hi or lo)))
    return tuple(out)


# ---------------------------------------------------------------- what it means for lo (pure)


@dataclass(frozen=True, slots=True)
class LoEffects:
    """The parts of a ruleset that can stop loopback traffic."""

    #: Input/output chains whose policy drops, with no rule that accepts lo.
    closed_chains: tuple[FwChain, ...]
    #: Drop/reject rules in input/output chains that loopback packets can match.
    blocking: tuple[FwRule, ...]
    #: Rules that accept lo explicitly.
    accepting: tuple[FwRule, ...]


def lo_effects(chains: Sequence[FwChain], rules: Sequence[FwRule]) -> LoEffects:
    local_hooks = ("input", "output")
    accepting = tuple(r for r in rules if r.names_lo and r.verdict == "accept")
    accepted_chains = {(r.source, r.table, r.chain) for r in accepting}
    closed = tuple(
        c
        for c in chains
        if c.hook in local_hooks
        and c.policy == "drop"
        and (c.source, c.table, c.name) not in accepted_chains
    )
    blocking = tuple(
        r
        for r in rules
        if r.hook in local_hooks and r.verdict in ("drop", "reject") and r.applies_to_lo
    )
    return LoEffects(closed, blocking, accepting)


def describe(rule: FwRule) -> str:
    return f"{rule.source} {rule.table} {rule.chain}: {rule.text}"


# ---------------------------------------------------------------- the edge

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)


def read_firewall(
    run: Runner = _run, which: Callable[[str], str | None] = shutil.which
) -> FirewallReading:
    """nft first (it also shows iptables-nft rules); iptables-save when nft is absent, denied
    or empty (legacy iptables keeps its rules outside nftables)."""
    missing = FirewallReading("missing", message="nft not installed")
    nft = _read_nft(run) if which("nft") else missing
    if nft.status == "ok" and (nft.chains or nft.rules):
        return nft
    ipt = (
        _read_iptables(run, which)
        if which("iptables-save")
        else FirewallReading("missing", message="iptables-save not installed")
    )
    if ipt.status == "ok" and (ipt.chains or ipt.rules):
        return ipt
    if nft.status == "ok":
        return nft  # an empty ruleset
    if ipt.status == "ok":
        return ipt
    statuses = (nft.status, ipt.status)
    status: Status = (
        "denied" if "denied" in statuses else "missing" if statuses == ("missing",) * 2 else "error"
    )
    return FirewallReading(status, message=f"{nft.message}; {ipt.message}")


def _read_nft(run: Runner) -> FirewallReading:
    try:
        out = run(["nft", "-j", "list", "ruleset"])
    except (OSError, subprocess.SubprocessError) as exc:
        return FirewallReading("error", message=f"nft: {exc}")
    if out.returncode != 0:
        return _failed("nft", out.stderr)
    try:
        chains, rules = parse_nft_json(out.stdout or '{"nftables": []}')
    except (ValueError, AttributeError, StopIteration) as exc:
        return FirewallReading("error", message=f"nft: unreadable JSON ({exc})")
    return FirewallReading("ok", "nft", chains, rules)


def _read_iptables(run: Runner, which: Callable[[str], str | None]) -> FirewallReading:
    chains: list[FwChain] = []
    rules: list[FwRule] = []
    for tool in ("iptables-save", "ip6tables-save"):
        if not which(tool):
            continue
        try:
            out = run([tool])
        except (OSError, subprocess.SubprocessError) as exc:
            return FirewallReading("error", message=f"{tool}: {exc}")
        if out.returncode != 0:
            return _failed(tool, out.stderr)
        c, r = parse_iptables_save(out.stdout)
        chains.extend(c)
        rules.extend(r)
    return FirewallReading("ok", "iptables", tuple(chains), tuple(rules))


def _failed(tool: str, stderr: str) -> FirewallReading:
    text = (stderr or "").strip().splitlines()
    first = text[0] if text else "failed"
    denied = "permission" in first.lower() or "not permitted" in first.lower()
    log.debug("%s failed: %s", tool, first)
    return FirewallReading("denied" if denied else "error", message=f"{tool}: {first}")
