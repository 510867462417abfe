"""Pure: parsed input + live facts -> an ``Explanation``.

``situation`` picks one id from ``rules.DIAGNOSES`` for the failure kind, from the facts
alone; ``diagnose`` fills that template and the descriptive sections. No I/O here, so the
whole decision table is tested with hand-built ``Facts``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeport.addr import address_class, in_range, ip, unmap
from homeport.explain import conn, meant
from homeport.explain import sections as sec
from homeport.explain.facts import Facts
from homeport.explain.parse import Parsed
from homeport.explain.rules import (
    BIND_BOTH_HINTS,
    CONNECT_HINTS,
    DEFAULT_BIND_KEY,
    DIAGNOSES,
    MEANING,
    TOOL_NAMES,
    UNIX_REFUSED_MEANING,
    Kind,
)
from homeport.model import Listener


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    summary: str
    detail: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "summary": self.summary, "detail": list(self.detail)}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``homeport explain`` says; ``to_json`` is the documented ``--json`` shape."""

    parsed: Parsed
    facts: Facts
    meaning: str | None
    address: tuple[str, ...]
    port: tuple[str, ...]
    live: tuple[str, ...]
    destinations: tuple[str, ...]
    serving: tuple[str, ...]
    diagnosis: tuple[Finding, ...]
    next_steps: tuple[str, ...]
    #: The listeners the user most likely meant (refused / not found / not listening).
    did_you_mean: tuple[meant.Suggestion, ...] = ()

    def to_json(self) -> dict[str, Any]:
        p, f = self.parsed, self.facts
        rule = p.rule
        return {
            "input": p.text,
            "kind": "error" if rule else "address",
            "error": None
            if rule is None
            else {
                "rule": rule.id,
                "tool": rule.tool,
                "kind": rule.kind,
                "meaning": self.meaning,
                "evidence": p.evidence,
            },
            "target": {
                "host": p.host,
                "name": p.name,
                "port": p.port,
                "path": p.path,
                "port_assumed": p.port_assumed,
            },
            "address": {
                "class": address_class(p.host) if p.host else None,
                "resolves_to": list(f.resolution.addresses) if f.resolution else None,
                "resolve_error": f.resolution.error if f.resolution else None,
                "localhost": list(f.localhost.addresses),
                "notes": list(self.address),
            },
            "port": {"number": p.port, "service": f.service, "notes": list(self.port)},
            "live": {
                "listeners": [x.to_json() for x in f.listeners],
                "destinations": list(self.destinations),
                "serving": list(self.serving),
                "time_wait": f.time_wait,
                "firewall_lo": list(f.firewall_lo),
                "tls": f.tls,
                "cgroup_connect_hooks": list(f.bpf_hooks),
                "security_modules": list(f.security),
                "landlock_abi": f.landlock,
                "notes": list(self.live),
            },
            "diagnosis": [d.to_json() for d in self.diagnosis],
            "did_you_mean": [m.to_json() for m in self.did_you_mean],
            "next_steps": list(self.next_steps),
        }


def diagnose(p: Parsed, f: Facts) -> Explanation:
    dests = sec.destinations(p, f)
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    serving = tuple(d for d in dests if any(sec.serves(x.socket, d) for x in tcp))
    sid = situation(p, f, dests, serving)
    variables = template_vars(p, f, dests)
    t = DIAGNOSES[sid]
    findings = [Finding(sid, t.summary.format_map(variables), _fmt(t.detail, variables))]
    for nid in notes(p, f, dests, sid):
        n = DIAGNOSES[nid]
        findings.append(Finding(nid, n.summary.format_map(variables), _fmt(n.detail, variables)))
    meaning = MEANING[p.kind].format_map(variables) if p.kind else None
    if p.kind == "refused" and p.path is not None and p.port is None:
        meaning = UNIX_REFUSED_MEANING.format_map(variables)
    return Explanation(
        parsed=p,
        facts=f,
        meaning=meaning,
        address=conn.address_lines(p) or sec.address_lines(p, f),
        port=sec.port_lines(p, f),
        live=sec.live_lines(p, f, dests) + conn.live_lines(p, f, dests),
        destinations=dests,
        serving=serving,
        diagnosis=tuple(findings),
        next_steps=_fmt(t.steps, variables),
        did_you_mean=meant.suggest(p, f) if _MEANT.match(sid) else (),
    )


#: The situations where the asked address is not served, so a near miss is worth naming.
_MEANT = re.compile(
    r"refused\.(?:nothing|family|other-address|udp-only|partial|no-address|unix-missing"
    r"|unix-stale|unix-unknown)$|address\.(?:not-listening"
    r"|family|other-address)$|not-found\."
)


def _fmt(lines: tuple[str, ...], variables: dict[str, str]) -> tuple[str, ...]:
    return tuple(line.format_map(variables) for line in lines)


# ------------------------------------------------------------------ choosing the situation

Chooser = Callable[[Parsed, Facts, tuple[str, ...], tuple[str, ...]], str]


def situation(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    """The ``DIAGNOSES`` id for this input and these facts."""
    chooser = _CHOOSERS[p.kind] if p.kind else _address
    return chooser(p, f, dests, serving)


def _refused(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if p.path is not None and p.port is None:
        return _unix_refused(f)
    if p.port is None:
        return "refused.no-address"
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    if not tcp:
        return "refused.udp-only" if f.listeners else "refused.nothing"
    if dests and set(serving) == set(dests):
        return "refused.listening-now"
    if serving:
        return "refused.partial"
    families = {x.socket.family for x in tcp}
    if dests and all(_family(d) not in families for d in dests):
        return "refused.family"
    return "refused.other-address"


def _unix_refused(f: Facts) -> str:
    if f.unix_listening:
        return "refused.unix-listening"
    if f.unix_socket == "it does not exist now":
        return "refused.unix-missing"
    return "refused.unix-stale" if f.unix_listening is False else "refused.unix-unknown"


def _in_use(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if p.port is None:
        return "in-use.no-port"
    held = [x for x in f.listeners if conflicts(x, p.host)]
    if held:
        return "in-use.held" if any(x.owners for x in held) else "in-use.held-unknown"
    return "in-use.time-wait" if f.time_wait else "in-use.gone"


def _permission(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if p.port is None:
        return "permission.no-port"
    if p.port < f.unprivileged_start:
        return "permission.privileged"
    return "permission.unprivileged-port"


def _not_available(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    a = ip(p.host) if p.host else None
    if a is None:
        return "not-available.no-address"
    if a.version == 6 and a.is_loopback and not f.ipv6_lo:
        return "not-available.ipv6-off"
    if f.bindable:
        return "not-available.bindable-now"
    return "not-available.not-local"


def _timeout(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if p.host is None or p.port is None:
        return "timeout.no-address"
    if any(address_class(d) in ("loopback", "unspecified") for d in dests):
        return "timeout.loopback"
    return "timeout.remote"


def _not_found(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    host = (p.host or "").lower().rstrip(".")
    if f.resolution is not None and f.resolution.addresses:
        return "not-found.resolves-now"
    if host == "localhost":
        return "not-found.localhost"
    if host.endswith(".localhost"):
        return "not-found.localhost-subdomain"
    return "not-found.other"


def _vm(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    return "vm-disconnected.listening" if serving else "vm-disconnected.gone"


def _address(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if f.resolution is not None and not f.resolution.addresses:
        return _not_found(p, f, dests, serving)  # a name that does not resolve here
    if serving and set(serving) != set(dests):
        return "refused.partial"
    if serving:
        return "address.listening"
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    if not tcp or not dests:
        return "address.not-listening"
    families = {x.socket.family for x in tcp}
    if all(_family(d) not in families for d in dests):
        return "address.family"
    return "address.other-address"


_CHOOSERS: dict[Kind, Chooser] = {
    "refused": _refused,
    "in-use": _in_use,
    "permission": _permission,
    "not-available": _not_available,
    "timeout": _timeout,
    "not-found": _not_found,
    "vm-disconnected": _vm,
    "reset": conn.reset_situation,
    "connect-denied": conn.denied_situation,
    "unreachable": conn.unreachable_situation,
}


def notes(p: Parsed, f: Facts, dests: tuple[str, ...], sid: str) -> tuple[str, ...]:
    """The ``note.*`` ids whose condition holds beside the main situation ``sid``."""
    out: list[str] = []
    if f.nearby and sid in ("refused.nothing", "address.not-listening", "refused.udp-only"):
        out.append("note.nearby")
    if (
        sid in ("refused.family", "refused.nothing")
        and "::1" in dests
        and p.host == "::1"
        and "::1" not in f.localhost.addresses
    ):
        out.append("note.v6-elsewhere")
    if p.tool == "node" and sid in ("refused.family", "refused.partial") and "::1" in dests:
        out.append("note.node-order")
    if sid == "in-use.held" and any(
        o.name in ("docker-proxy", "dockerd") for x in f.listeners for o in x.owners
    ):
        out.append("note.docker")
    if p.kind == "in-use" and p.port is not None and in_range(p.port, f.ephemeral):
        out.append("note.ephemeral")
    return (*out, *conn.notes(p, sid))


def conflicts(x: Listener, bind_host: str | None) -> bool:
    """Whether a listening socket makes ``bind(bind_host, same port)`` fail with EADDRINUSE.

    Linux (inet_csk_bind_conflict): same address, or either side a wildcard of an
    overlapping family; ``::`` without IPV6_V6ONLY overlaps every IPv4 address.
    """
    b = ip(bind_host) if bind_host else None
    held = ip(x.address)
    if b is None or held is None:
        return True  # no address in the error: anything on the port counts
    b, held = unmap(b), unmap(held)
    dual = x.socket.v6only is not True
    if b.version == held.version:
        return b == held or b.is_unspecified or held.is_unspecified
    if held.version == 6:  # held is IPv6, we bind IPv4
        return held.is_unspecified and dual
    return b.is_unspecified  # we bind ::, held is IPv4 (dual-stack by default)


def _family(addr: str) -> int:
    a = ip(addr)
    return unmap(a).version if a is not None else 4


# ------------------------------------------------------------------ template variables


def template_vars(p: Parsed, f: Facts, dests: tuple[str, ...]) -> dict[str, str]:
    port = p.port or 0
    host = p.host or "the address"
    tool = p.tool or "unknown"
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    first = dests[0] if dests else host
    eph_lo, eph_hi = f.ephemeral
    return {
        "host": host,
        "where": _where(p),
        "wait": sec.host_port(p.host, p.port) if p.host else str(port or "PORT"),
        "port": str(port) if port else "PORT",
        "tool": TOOL_NAMES.get(tool, tool),
        "listening": "; ".join(
            f"{x.proto} {sec.host_port(x.address, x.port)} ({sec.owners_text(x)})"
            for x in f.listeners
        )
        or "nothing",
        "owners": _owners(f.listeners),
        "connect_hint": _connect_hint(tool, tcp, port),
        "bind_hint": _bind_hint(tcp, port),
        "family": f"IPv{_family(first)}",
        "other_family": " and ".join(f"IPv{v}" for v in sorted({x.socket.family for x in tcp}))
        or "no family",
        "resolves": (f.resolution or f.localhost).text(),
        "first": first,
        "start": str(f.unprivileged_start),
        "eph_lo": str(eph_lo),
        "eph_hi": str(eph_hi),
        "eph_size": str(eph_hi - eph_lo + 1),
        "time_wait": str(f.time_wait),
        "alt_port": str(_alt_port(port, f.unprivileged_start)),
        "firewall": "; ".join(f.firewall_lo) or f.firewall_note or "none found",
        "nearby": "; ".join(
            f"{sec.host_port(x.address, x.port)} ({sec.owners_text(x)})" for x in f.nearby
        )
        or "none",
        **conn.template_vars(p, f, dests),
    }


def _where(p: Parsed) -> str:
    if p.path and not p.host:
        return p.path
    if p.host:
        return sec.host_port(p.host, p.port)
    return f"port {p.port}" if p.port else "the address"


def _owners(listeners: tuple[Listener, ...]) -> str:
    seen: dict[int, str] = {}
    for x in listeners:
        for o in x.owners:
            seen.setdefault(o.pid, f"{o.name} (pid {o.pid})")
    return ", ".join(seen.values()) or "a process this user cannot see"


def _connect_hint(tool: str, tcp: list[Listener], port: int) -> str:
    if tcp and all(x.socket.family == 6 for x in tcp):
        bound = ip(tcp[0].address)
        addr = "::1" if bound is None or bound.is_unspecified else str(bound)
        return f"connect to {sec.host_port(addr, port)} instead"
    return CONNECT_HINTS.get(tool, CONNECT_HINTS["unknown"]).format(port=port or "PORT")


def _bind_hint(tcp: list[Listener], port: int) -> str:
    words = [w.rsplit("/", 1)[-1] for x in tcp for o in x.owners for w in (*o.cmdline, o.name)]
    known = [w for w in words if w in BIND_BOTH_HINTS]
    # `node .../vite`, `python .../uvicorn`: the tool beats the interpreter that runs it.
    specific = [w for w in known if w not in _INTERPRETERS]
    key = (specific or known or [DEFAULT_BIND_KEY])[0]
    return BIND_BOTH_HINTS[key].format(port=port or "PORT")


_INTERPRETERS = frozenset({"node", "python", "python3", "java"})


def _alt_port(port: int, start: int) -> int:
    alt = port + 8000
    return alt if port and start <= alt < 65536 else 8080
