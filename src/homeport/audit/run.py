"""``audit()``: inventory -> probes (concurrent, time-bounded) -> rules -> ``AuditReport``.

Fingerprints and browser-risk checks connect only through loopback (a ``0.0.0.0``
listener is probed at 127.0.0.1, ``::`` at ::1); a listener bound to one of this host's
own addresses is probed at that address. Only the outside-in probe aims elsewhere, at
the host's own non-loopback addresses (or ``probe_addresses``), from its namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeport import addr
from homeport.audit import catalogue, findings, firewall, outside, services, web
from homeport.audit.findings import Exposure, Finding
from homeport.audit.identify import Auth, Identity
from homeport.audit.probe import UNCHECKED, Fingerprint, Prober, Target, fingerprint
from homeport.audit.severity import Severity, rank
from homeport.model import Listener

log = logging.getLogger("homeport.audit")

#: progress(done, total, what) — called as each listener finishes.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Options for one audit; the CLI and the library both build this."""

    port: int | None = None
    #: Seconds for one probe (connect + answer).
    probe_timeout: float = 1.0
    #: Seconds for the whole fingerprint + web checks of one listener.
    listener_timeout: float = 8.0
    #: Run the outside-in namespace probe when privileged.
    outside: bool = True
    #: Limit the outside-in probe to these addresses (default: all of the host's own).
    probe_addresses: tuple[str, ...] = ()
    web: bool = True
    concurrency: int = 64


@dataclass(frozen=True, slots=True)
class ListenerAudit:
    listener: Listener
    target: str | None
    identity: Identity | None
    exposure: Exposure
    http: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        s = self.listener
        return {
            "proto": s.proto,
            "address": s.address,
            "port": s.port,
            "exposure": s.exposure,
            "scope": findings.scope(s),
            "v6only": s.socket.v6only,
            "owner": findings.owner_text(s),
            "pids": list(s.pids),
            "probed_at": self.target,
            "service": self.identity.to_json() if self.identity else None,
            "outside": {"status": self.exposure.status, "detail": self.exposure.detail},
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    findings: tuple[Finding, ...]
    listeners: tuple[ListenerAudit, ...]
    outside: outside.OutsideReport
    firewall: firewall.FirewallView | None
    started: float
    duration: float
    notes: tuple[str, ...] = field(default=())

    @property
    def worst(self) -> Severity | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=rank)


def probe_host(listener: Listener) -> str:
    """The address fingerprints connect to: loopback for wildcard binds."""
    a = addr.ip(listener.address)
    if a is None:
        return "127.0.0.1"
    a = addr.unmap(a)
    if a.is_unspecified:
        return "::1" if a.version == 6 else "127.0.0.1"
    return str(a)


async def _remote_auth(
    prober: Prober, listener: Listener, ident: Identity | None, sources: Sequence[str]
) -> Identity | None:
    """Replay the proof of open access from a non-loopback address of this host, for a
    listener bound beyond loopback: services such as Redis (protected-mode) answer loopback
    clients only, and then other machines get nothing."""
    if ident is None or ident.auth != "open" or ident.evidence is None:
        return ident
    s = listener.socket
    src = next((a for a in sources if findings.covers(s.local_addr, s.v6only, a)), None)
    if listener.exposure == "loopback" or src is None:
        return ident
    target = Target(src, listener.port, source=src)
    proof = ident.evidence
    http = proof.response is not None
    data = web.rewrite(proof.sent, host=target.netloc) if http else proof.sent
    if proof.outcome is not None:  # a dialog (MySQL login): run it again, not its bytes
        ex = await prober.run(target, catalogue.probe(proof.probe))
        if ex.outcome is None or ex.outcome.startswith(UNCHECKED):
            return dataclasses.replace(ident, remote_evidence=ex)  # no conclusion either way
    else:
        ex = await prober.send(target, proof.probe, data, http=http, tls=proof.tls)
    verdict: Auth = "open" if web.still_open(ident.service, ex) else "protected"
    return dataclasses.replace(ident, remote_auth=verdict, remote_evidence=ex)


async def _audit_one(
    prober: Prober, listener: Listener, cfg: AuditConfig, sources: Sequence[str] = ()
) -> tuple[Fingerprint | None, tuple[web.WebIssueRecord, ...], str | None, str | None]:
    if listener.proto != "tcp":
        return None, (), None, None
    target = Target(probe_host(listener), listener.port)
    try:
        async with asyncio.timeout(cfg.listener_timeout):
            fp = await fingerprint(prober, target)
            ident = await _remote_auth(prober, listener, fp.identity, sources)
            fp = dataclasses.replace(fp, identity=ident)
            issues: tuple[web.WebIssueRecord, ...] = ()
            if cfg.web and fp.http and fp.identity is not None:
                svc = services.SERVICES[fp.identity.service]
                _, found = await web.check(
                    prober, target, svc, fp.identity, fp.exchanges, tls=fp.tls
                )
                issues = tuple(found)
            return fp, issues, target.netloc, None
    except TimeoutError:
        return None, (), target.netloc, f"probing took longer than {cfg.listener_timeout}s"


#: Routes checked through the gateway in one audit, at most (each costs two probes).
MAX_ROUTES = 200


@dataclass(frozen=True, slots=True)
class GatewayRoutes:
    """This user's running homeport gateway: where it listens and the names it routes."""

    port: int
    pid: int
    names: tuple[str, ...]


def gateway_routes() -> GatewayRoutes | None:
    """Read, without touching the daemon's state: its info file and the route table."""
    from homeport.daemon.config import DaemonConfig
    from homeport.daemon.process import read_info
    from homeport.errors import HomeportError
    from homeport.paths import db_path, read_route_targets

    try:
        config = DaemonConfig.build()
    except HomeportError:
        return None
    info = read_info(config) or {}
    port, pid = info.get("port"), info.get("pid")
    if not isinstance(port, int) or not isinstance(pid, int):
        return None
    names = tuple(n for n, _ in read_route_targets(db_path(config.state_dir)))
    return GatewayRoutes(port, pid, names[:MAX_ROUTES]) if names else None


async def _route_issues(
    prober: Prober, listeners: Sequence[Listener], cfg: AuditConfig, gw: GatewayRoutes | None
) -> tuple[Listener | None, tuple[web.WebIssueRecord, ...]]:
    """The gateway's routes, checked through its first listener (see ``web.check_routes``)."""
    if not cfg.web or gw is None:
        return None, ()
    x = next(
        (x for x in listeners if x.proto == "tcp" and x.port == gw.port and gw.pid in x.pids),
        None,
    )
    if x is None:
        return None, ()
    try:
        async with asyncio.timeout(cfg.listener_timeout):
            found = await web.check_routes(prober, Target(probe_host(x), x.port), gw.names)
    except TimeoutError:
        return x, ()
    return x, tuple(found)


async def audit_async(
    cfg: AuditConfig,
    listeners: Sequence[Listener],
    progress: Progress | None = None,
) -> AuditReport:
    started = time.time()
    t0 = time.monotonic()
    prober = Prober(timeout=cfg.probe_timeout, concurrency=cfg.concurrency)
    ports = sorted({x.port for x in listeners if x.proto == "tcp"})
    sources: Sequence[str] = cfg.probe_addresses
    if not sources and any(x.exposure != "loopback" for x in listeners):
        sources = await asyncio.to_thread(_own_addresses)
    cancel = threading.Event()
    out_task = asyncio.create_task(asyncio.to_thread(_outside, cfg, ports, cancel))
    done = 0

    async def one(x: Listener) -> tuple[Any, ...]:
        nonlocal done
        result = await _audit_one(prober, x, cfg, sources)
        done += 1
        if progress is not None:
            progress(done, len(listeners), f"{x.address}:{x.port}")
        return result

    gw = await asyncio.to_thread(gateway_routes) if cfg.web else None
    try:
        results = await asyncio.gather(*(one(x) for x in listeners))
        gateway_listener, route_issues = await _route_issues(prober, listeners, cfg, gw)
        out_report, fw = await asyncio.shield(out_task)
    except BaseException:
        # Ctrl-C/SIGTERM: stop the outside probe early. Its thread still runs the namespace
        # removal, and asyncio.run joins executor threads before returning.
        cancel.set()
        raise
    audits: list[ListenerAudit] = []
    found: list[Finding] = []
    for x, (fp, issues, target, error) in zip(listeners, results, strict=True):
        ident = fp.identity if fp else None
        exp = findings.exposure(x, out_report, fw)
        audits.append(ListenerAudit(x, target, ident, exp, bool(fp and fp.http), error))
        if x is gateway_listener:
            issues = (*issues, *route_issues)
        found += findings.rules(x, ident, exp, issues, fw)
    found.sort(key=lambda f: (-rank(f.severity), f.port, f.address, f.rule))
    return AuditReport(
        tuple(found),
        tuple(audits),
        out_report,
        fw,
        started,
        time.monotonic() - t0,
        _notes(out_report, fw) + _unchecked(audits),
    )


def _own_addresses() -> list[str]:
    try:
        return outside.own_targets(outside.host_addresses())
    except (OSError, subprocess.SubprocessError, ValueError):
        return []  # no `ip`: the loopback verdict stands alone


def _outside(
    cfg: AuditConfig, ports: list[int], cancel: threading.Event
) -> tuple[outside.OutsideReport, firewall.FirewallView | None]:
    if not cfg.outside:
        report = outside.OutsideReport(False, "outside-in probe turned off")
    else:
        report = outside.run_probe(ports, cfg.probe_addresses or None, cfg.probe_timeout, cancel)
    fw = None if report.verified else firewall.read_firewall()
    return report, fw


def _notes(rep: outside.OutsideReport, fw: firewall.FirewallView | None) -> tuple[str, ...]:
    notes = []
    if rep.verified:
        notes.append(
            f"outside-in probe from {rep.source} to {', '.join(rep.addresses)}; "
            "rules that match an input interface name are not exercised"
        )
    else:
        notes.append(
            f"exposure not verified from outside: {rep.reason}; firewall rules read "
            f"instead ({fw.tool if fw else 'unreadable'})"
        )
    if fw is not None and fw.docker:
        notes.append(
            "Docker chains present: ports published with -p are DNAT-ed before "
            "INPUT rules and reachable unless published on 127.0.0.1"
        )
    return tuple(notes)


def _unchecked(audits: Sequence[ListenerAudit]) -> tuple[str, ...]:
    """Say so where an auth check ran but could not conclude (e.g. a MySQL login that
    met an auth plugin needing a real password): "unknown" alone reads like "not tried"."""
    return tuple(
        f"{x.listener.address}:{x.listener.port}: {x.identity.label}: {x.identity.proves}"
        for x in audits
        if x.identity is not None and x.identity.auth == "unknown" and x.identity.proves
    )


def audit(
    config: AuditConfig | None = None,
    *,
    listeners: Sequence[Listener] | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit every listener on this machine (or ``config.port``, or ``listeners``)."""
    cfg = config or AuditConfig()
    if listeners is None:
        from homeport.inventory import listeners as inventory

        listeners = inventory(port=cfg.port)
    elif cfg.port is not None:
        listeners = [x for x in listeners if x.port == cfg.port]
    listeners = [x for x in listeners if x.socket.listening]
    with outside.sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: cleanup runs
        return asyncio.run(audit_async(cfg, listeners, progress))
