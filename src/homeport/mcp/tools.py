"""The MCP tools that read the machine: each takes the session, its validated arguments and a
progress callback, and returns the same JSON record as the CLI's ``--json`` for that query
(the CLI's own builders, not a second renderer). They block; the server runs them in a thread.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any, Literal

from homeport.errors import NotFound, UsageError
from homeport.mcp.session import Session

#: ``progress(done, total, message)``, callable from the tool's thread.
Progress = Callable[[float, float | None, str | None], None]
Args = dict[str, Any]
Tool = Callable[[Session, Args, Progress], dict[str, Any]]

#: Least time between two progress notifications of one call (an attempt every 50 ms early on).
PROGRESS_GAP = 0.2
#: ``wait_for`` and the daemon's limits on a request.
WAIT_DEFAULT = 30.0


def listeners(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.cli.ls import attention, collect, listing_json

    ns = argparse.Namespace(
        port=a.get("port"),
        pid=a.get("pid"),
        user=a.get("user"),
        exposed=bool(a.get("exposed")),
        tcp=bool(a.get("tcp")),
        udp=bool(a.get("udp")),
        all=bool(a.get("all")),
    )
    items = collect(ns)
    return {"listeners": listing_json(items), "attention": attention(items)}


def who(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.inventory import who as who_

    tcp, udp = bool(a.get("tcp")), bool(a.get("udp"))
    return who_(str(a["target"]), tcp=tcp or not udp, udp=udp or not tcp).to_json()


def explain(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.explain import explain as explain_

    if not str(a["text"]).strip():
        raise UsageError("nothing to explain: give an address, a URL or an error text")
    return explain_(str(a["text"]), a.get("at")).to_json()


def doctor(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.doctor import DoctorFacts, Report, evaluate, run_checks

    only = list(a.get("only") or [])
    if only:  # as `homeport doctor --only`: check the ids before reading the machine
        ids = {c.id for c in evaluate(DoctorFacts()).checks}
        unknown = [i for i in only if i not in ids]
        if unknown:
            raise UsageError(
                f"unknown check {', '.join(unknown)} (accepted: {', '.join(sorted(ids))})"
            )
    report = run_checks()
    if only:
        report = Report(tuple(c for c in report.checks if c.id in only))
    result: dict[str, Any] = report.to_json()
    return result


def free_port(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.cli.port import DEFAULT_TTL
    from homeport.ports import pick_ports
    from homeport.ports.policy import parse_range

    try:
        span = parse_range(a["range"]) if a.get("range") else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    proto: Literal["tcp", "udp"] = "udp" if a.get("udp") else "tcp"
    # Leased to this process while it runs; with --keep, for the CLI's ttl beyond it.
    keep = s.config.keep
    leases = pick_ports(
        int(a.get("count") or 1),
        name=a.get("name"),
        proto=proto,
        ttl=DEFAULT_TTL if keep else None,
        holder_pid=os.getpid(),
        bound=not keep,
        port_range=span,
        inventory=True,
    )
    s.leases.extend((x.port, x.proto) for x in leases)
    return {"ports": [x.to_json() for x in leases]}


def wait_for(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.ports.wait import HttpCheck, WaitFailed, WaitReport, parse_status_range
    from homeport.ports.wait import wait_for as wait_for_

    timeout = float(a.get("timeout") or WAIT_DEFAULT)
    try:
        statuses = parse_status_range(a.get("status") or "200-399")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check = HttpCheck(statuses, a.get("contains"), bool(a.get("insecure")))
    started = time.monotonic()
    last = [0.0]

    def on_attempt(report: WaitReport) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_GAP:
            return
        last[0] = now
        waiting = [t for t in report.targets if not t.ready]
        what = "; ".join(f"{t.target}: {t.reason}" for t in waiting) or "ready"
        progress(round(now - started, 3), timeout, what)

    try:
        report = wait_for_(
            *[str(t) for t in a["targets"]],
            timeout=timeout,
            any_=bool(a.get("any")),
            http=check,
            on_attempt=on_attempt,
        )
    except WaitFailed as exc:  # not ready is an answer, not a failure of the tool
        result: dict[str, Any] = exc.report.to_json()
        return result
    done: dict[str, Any] = report.to_json()
    return done


def routes(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    client = s.daemon_if_running()
    if client is not None:
        return {"routes": client.call("GET", "/api/routes")["routes"], "gateway_running": True}
    from homeport.paths import db_path, state_dir

    if not state_dir(create=False).exists() or not db_path().exists():
        return {"routes": [], "gateway_running": False}
    from homeport.store import Store

    store = Store(db_path())
    try:
        return {"routes": [r.to_json() for r in store.routes()], "gateway_running": False}
    finally:
        store.close()


def access_log(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.daemon.routes import normalize_name

    route = normalize_name(a["route"]) if a.get("route") else None
    limit = int(a.get("limit") or 50)
    control = bool(a.get("control"))
    filtered = any(k in a for k in ("status", "method", "external"))
    # With filters, read more than `limit` so that `limit` matching rows can come back.
    fetch = 10_000 if filtered else limit
    records = _access(s, fetch, a.get("after"), route, control)
    if "status" in a:
        records = [r for r in records if r["status"] == a["status"]]
    if "method" in a:
        records = [r for r in records if r["method"] == str(a["method"]).upper()]
    if "external" in a:
        records = [r for r in records if bool(r["external"]) == bool(a["external"])]
    records = records[-limit:]
    return {"records": records, "last_id": records[-1]["id"] if records else a.get("after")}


def _access(
    s: Session, limit: int, after: int | None, route: str | None, control: bool
) -> list[dict[str, Any]]:
    client = s.daemon_if_running()
    if client is not None:
        data = client.call(
            "GET",
            "/api/access",
            limit=limit,
            after=after,
            route=route,
            control=None if control else "0",
        )
        return list(data["records"])
    from homeport.paths import db_path

    if not db_path().exists():
        return []
    from homeport.store import Store

    store = Store(db_path())
    try:
        skip = None if control else "control"
        entries = store.access(limit=limit, route=route, after=after, skip_reason=skip)
        return [e.to_json() for e in entries]
    finally:
        store.close()


def audit(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.audit import report as rep
    from homeport.audit.run import AuditConfig
    from homeport.audit.run import audit as audit_

    port = a.get("port")
    # The outside-in probe builds network namespaces: left to the CLI, as the dashboard does.
    cfg = AuditConfig(
        port=port,
        probe_timeout=float(a.get("timeout") or 1.0),
        outside=False,
        web=a.get("web", True) is not False,
    )

    def show(done: int, total: int, what: str) -> None:
        progress(float(done), float(total), f"{done}/{total} listeners probed ({what})")

    result = audit_(cfg, progress=show)
    if port is not None and not result.listeners:
        raise NotFound(f"nothing listens on port {port}")
    data: dict[str, Any] = rep.to_json(result)
    s.last_audit = data
    return data
