"""Pure rules: what was observed about one listener -> ``Finding`` records.

Severity policy (the one place it lives):

=====================  =====================================================================
rule                   severity
=====================  =====================================================================
exposed-reachable      high; critical when the service also answers without authentication
exposed-unverified     medium (high if unauthenticated); low when the firewall rules that were
                       read appear to block it
exposed-blocked        info: bound beyond loopback, the outside-in probe was stopped
unauthenticated        the catalogue's level for the service on loopback; critical when the
                       listener is (or may be) reachable from other machines
dns-rebinding          medium; high for services that run code or hand out data (``powerful``)
host-allowlist-bypass  as dns-rebinding
cors-any-origin        medium; high for powerful services that answer without auth
cors-reflected-origin  medium; high for powerful services
cors-credentials       high
private-network-access medium
websocket-origin       medium; high for powerful services
text-plain-jsonrpc     high
=====================  =====================================================================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from homeport.addr import address_class
from homeport.audit import catalogue, services
from homeport.audit.catalogue import Service
from homeport.audit.firewall import FirewallView, blocks, verdict_for
from homeport.audit.identify import Exchange, Identity, excerpt
from homeport.audit.outside import OutsideReport
from homeport.audit.severity import Severity, bump
from homeport.audit.web import WebIssue, WebIssueRecord
from homeport.model import Listener

ExposureStatus = Literal["loopback", "reachable", "blocked", "not-verified", "not-covered"]

#: rule id -> (short name, one-line description) for reports and SARIF ``rules``.
RULES: dict[str, tuple[str, str]] = {
    "exposed-reachable": ("ExposedReachable", "A listener is reachable from other machines"),
    "exposed-unverified": (
        "ExposedUnverified",
        "A listener is bound beyond loopback (not verified from outside)",
    ),
    "exposed-blocked": (
        "ExposedBlocked",
        "A listener is bound beyond loopback but the firewall stopped the probe",
    ),
    "unauthenticated": ("Unauthenticated", "A service answers without authentication"),
    "dns-rebinding": ("DnsRebinding", "An HTTP service accepts a foreign Host (DNS rebinding)"),
    "host-allowlist-bypass": ("HostAllowlistBypass", "A Host allowlist can be bypassed"),
    "cors-any-origin": ("CorsAnyOrigin", "CORS allows any Origin"),
    "cors-reflected-origin": ("CorsReflectedOrigin", "CORS reflects a foreign Origin"),
    "cors-credentials": ("CorsCredentials", "CORS reflects a foreign Origin with credentials"),
    "private-network-access": (
        "PrivateNetworkAccess",
        "The service opts into Private Network Access from any page",
    ),
    "websocket-origin": ("WebSocketOrigin", "A WebSocket upgrade is accepted from any Origin"),
    "text-plain-jsonrpc": (
        "TextPlainJsonRpc",
        "A JSON-RPC endpoint accepts cross-site text/plain POSTs",
    ),
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """The exact probe sent and an excerpt of the answer."""

    probe: str
    answer: str

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "answer": self.answer}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    title: str
    proto: str
    address: str
    port: int
    service: str | None
    owner: str | None
    pids: tuple[int, ...]
    evidence: tuple[Evidence, ...]
    fix: str

    @property
    def listener(self) -> str:
        a = f"[{self.address}]" if ":" in self.address else self.address
        return f"{a}:{self.port}/{self.proto}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "title": self.title,
            "listener": self.listener,
            "proto": self.proto,
            "address": self.address,
            "port": self.port,
            "service": self.service,
            "owner": self.owner,
            "pids": list(self.pids),
            "evidence": [e.to_json() for e in self.evidence],
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Exposure:
    status: ExposureStatus
    detail: str
    evidence: tuple[Evidence, ...] = ()


def evidence_of(ex: Exchange) -> Evidence:
    answer = excerpt(ex.answer) if ex.answer else f"({ex.error or 'no answer'})"
    sent = excerpt(ex.sent, 400)
    if ex.outcome is not None:  # a dialog: say what it was and its verdict, then the bytes
        answer = f"{ex.outcome} · {answer}"
        sent = f"{catalogue.probe(ex.probe).describe()} · {sent}"
    return Evidence(sent, answer)


def covers(bind: str, v6only: bool | None, target: str) -> bool:
    """Whether a socket bound to ``bind`` receives connections to ``target``."""
    b = ipaddress.ip_address(bind.split("%", 1)[0])
    t = ipaddress.ip_address(target)
    if b.is_unspecified:
        # A `::` socket also takes IPv4 unless IPV6_V6ONLY (Linux default bindv6only=0).
        return b.version == t.version or (b.version == 6 and v6only is not True)
    return b == t


def exposure(listener: Listener, outside: OutsideReport, fw: FirewallView | None) -> Exposure:
    """Where the outside-in probe (or, failing that, the firewall rules) puts a listener."""
    if listener.exposure == "loopback":
        return Exposure("loopback", "bound to loopback only")
    port = listener.port
    if outside.verified and listener.proto == "tcp":
        s = listener.socket
        covered = [a for a in outside.addresses if covers(s.local_addr, s.v6only, a)]
        reaches = {a: outside.reach(a, port) for a in covered}
        ok = [a for a, r in reaches.items() if r == "reachable"]
        ev = tuple(
            Evidence(f"TCP connect from {outside.source} to {_hp(a, port)}", str(r))
            for a, r in reaches.items()
        )
        if ok:
            return Exposure("reachable", f"reachable from outside at {', '.join(ok)}", ev)
        if reaches and all(r in ("timeout", "refused") for r in reaches.values()):
            how = "dropped" if "timeout" in reaches.values() else "rejected"
            return Exposure("blocked", f"the firewall {how} the outside-in probe", ev)
        if not covered:
            return Exposure("not-covered", "no probed address matches this bind address")
    why = outside.reason or ("UDP is not probed" if listener.proto == "udp" else "probe failed")
    return Exposure("not-verified", f"not verified ({why}); firewall: {verdict_for(fw, port)}")


def _hp(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def scope(listener: Listener) -> str:
    """Who the bind address admits: loopback, all-interfaces (``+dual-stack`` for a ``::``
    socket that also takes IPv4), lan, vpn-tailnet (RFC 6598 100.64.0.0/10, which
    Tailscale uses) or public."""
    s = listener.socket
    if listener.exposure == "all-interfaces":
        dual = s.family == 6 and s.v6only is not True
        return "all-interfaces+dual-stack" if dual else "all-interfaces"
    if address_class(s.local_addr) == "cgnat":
        return "vpn-tailnet"
    return listener.exposure


def owner_text(listener: Listener) -> str | None:
    if not listener.owners:
        return listener.owner_hint
    p = listener.owners[0]
    user = f", user {p.user}" if p.user else ""
    more = f" (+{len(listener.owners) - 1} more)" if len(listener.owners) > 1 else ""
    return f"{p.name} (pid {p.pid}{user}){more}"


def _finding(
    listener: Listener,
    ident: Identity | None,
    rule: str,
    severity: Severity,
    title: str,
    evidence: tuple[Evidence, ...],
    fix: str,
) -> Finding:
    return Finding(
        rule,
        severity,
        title,
        listener.proto,
        listener.address,
        listener.port,
        ident.service if ident else None,
        owner_text(listener),
        listener.pids,
        evidence,
        fix,
    )


def _service(ident: Identity | None) -> Service | None:
    return services.SERVICES.get(ident.service) if ident else None


def rules(
    listener: Listener,
    ident: Identity | None,
    exp: Exposure,
    web: tuple[WebIssueRecord, ...] = (),
    fw: FirewallView | None = None,
) -> list[Finding]:
    """Every finding for one listener."""
    out: list[Finding] = []
    f = _exposure_finding(listener, ident, exp, fw)
    if f is not None:
        out.append(f)
    f = _auth_finding(listener, ident, exp)
    if f is not None:
        out.append(f)
    for issue in web:
        # Behind a password, a rebinding page gets only what any anonymous client gets.
        if issue.kind in ("foreign-host", "host-bypass") and ident and ident.auth == "protected":
            continue
        out.append(_web_finding(listener, ident, issue))
    return out


def _exposure_finding(
    listener: Listener, ident: Identity | None, exp: Exposure, fw: FirewallView | None
) -> Finding | None:
    if exp.status == "loopback":
        return None
    svc = _service(ident)
    name = svc.label if svc else f"{listener.proto.upper()} listener"
    open_ = ident is not None and ident.auth == "open" and ident.remote_auth != "protected"
    fix = _bind_fix(listener, svc)
    where = _hp(listener.address, listener.port)
    if exp.status == "reachable":
        sev: Severity = "critical" if open_ else "high"
        return _finding(
            listener,
            ident,
            "exposed-reachable",
            sev,
            f"{name} on {where} is reachable from other machines{_dual(listener)}",
            exp.evidence,
            fix,
        )
    if exp.status == "blocked":
        return _finding(
            listener,
            ident,
            "exposed-blocked",
            "info",
            f"{name} on {where} is bound beyond loopback; {exp.detail}",
            exp.evidence,
            fix,
        )
    sev = "high" if open_ else "medium"
    if blocks(fw, listener.port):
        sev = "low"
    ev = (Evidence(f"bind address {listener.address} ({listener.exposure})", exp.detail),)
    return _finding(
        listener,
        ident,
        "exposed-unverified",
        sev,
        f"{name} on {where} listens beyond loopback{_dual(listener)} ({exp.detail})",
        ev,
        fix,
    )


def _dual(listener: Listener) -> str:
    s = listener.socket
    if s.family == 6 and s.local_addr == "::" and s.v6only is not True:
        return " (dual-stack ::, IPv4 and IPv6)"
    return ""


def _bind_fix(listener: Listener, svc: Service | None) -> str:
    if any(p.name == "docker-proxy" for p in listener.owners):
        return (
            f"published by Docker: publish it as `-p 127.0.0.1:{listener.port}:PORT` "
            "(Docker's DNAT bypasses INPUT-chain firewall rules)"
        )
    return svc.bind_fix if svc else services.SERVICES["http"].bind_fix


def _auth_finding(listener: Listener, ident: Identity | None, exp: Exposure) -> Finding | None:
    svc = _service(ident)
    if ident is None or svc is None or ident.auth != "open" or svc.open_severity == "info":
        return None
    sev: Severity = svc.open_severity
    loopback_only = ident.remote_auth == "protected"
    if exp.status in ("reachable", "not-verified", "not-covered") and not loopback_only:
        sev = "critical"
    ev: tuple[Evidence, ...] = (evidence_of(ident.evidence),) if ident.evidence else ()
    if ident.remote_evidence is not None:
        ev += (evidence_of(ident.remote_evidence),)
    what = ident.proves or "answers without authentication"
    if loopback_only:
        what += " (loopback clients only: a client from another address was refused)"
    title = f"{svc.label} answers without authentication: {what}"
    return _finding(listener, ident, "unauthenticated", sev, title, ev, svc.auth_fix)


_WEB: dict[WebIssue, tuple[str, Severity, Severity]] = {
    # kind -> (rule, severity, severity for powerful services)
    "foreign-host": ("dns-rebinding", "medium", "high"),
    "host-bypass": ("host-allowlist-bypass", "medium", "high"),
    "cors-any": ("cors-any-origin", "medium", "medium"),
    "cors-reflected": ("cors-reflected-origin", "medium", "high"),
    "cors-credentials": ("cors-credentials", "high", "high"),
    "private-network": ("private-network-access", "medium", "medium"),
    "websocket-origin": ("websocket-origin", "medium", "high"),
    "text-plain-rpc": ("text-plain-jsonrpc", "high", "high"),
}


def _web_finding(listener: Listener, ident: Identity | None, issue: WebIssueRecord) -> Finding:
    svc = _service(ident)
    rule, sev, sev_powerful = _WEB[issue.kind]
    powerful = svc is not None and svc.powerful
    severity = sev_powerful if powerful else sev
    if issue.kind == "cors-any" and powerful and ident is not None and ident.auth == "open":
        severity = bump(severity)
    label = svc.label if svc else "HTTP service"
    title = f"{label} on {_hp(listener.address, listener.port)}: {issue.detail}"
    ev = tuple(evidence_of(e) for e in issue.evidence)
    return _finding(listener, ident, rule, severity, title, ev, services.ORIGIN_FIX)
