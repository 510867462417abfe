"""The MCP tools that start and stop things: services (through the daemon, which owns their
processes, as the dashboard starts them) and ``kill_port``, under the session's policy
(``homeport.mcp.policy``)."""

from __future__ import annotations

import os
import shlex
from typing import Any

from homeport.errors import NotFound, UsageError
from homeport.mcp.policy import ProcessFacts, kill_refusal, run_refusal
from homeport.mcp.session import Refused, Session
from homeport.mcp.tools import Args, Progress

LIVE = ("starting", "running")


def run_service(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.daemon.routes import name_from_folder, normalize_name

    argv = _argv(a["command"])
    refusal = run_refusal(argv, s.config)
    if refusal is not None:
        raise Refused(refusal, hint="the allowlist is set when the server starts: --allow-run")
    cwd = str(a.get("cwd") or os.getcwd())
    if not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise UsageError(f"'cwd' must be an existing absolute folder, not {cwd!r}")
    name = str(a.get("name") or name_from_folder(os.path.basename(cwd.rstrip("/")) or "app"))
    name = normalize_name(name).removesuffix(".localhost")
    body: dict[str, Any] = {"name": name, "cmd": argv, "cwd": cwd, "port": a.get("port")}
    if not s.config.keep:
        body["owner_pid"] = os.getpid()  # the daemon stops it if this session dies
    progress(0, None, f"starting {name}")
    client = s.starting_client()
    svc = client.call("POST", "/api/services/start", body)["service"]
    s.services[svc["id"]] = svc["name"]
    return {"service": svc, "url": client.config.route_url(f"{svc['name']}.localhost")}


def _argv(command: Any) -> list[str]:
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"cannot split the command: {exc}") from None
    else:
        argv = [str(x) for x in command]
    if not argv:
        raise UsageError("'command' is empty")
    return argv


def find_service(s: Session, ref: str, *, live: bool = False) -> dict[str, Any]:
    """The service named ``ref`` (newest first, a live one before an ended one) or with id
    ``ref``."""
    client = s.daemon()
    services = client.call("GET", "/api/services", all="1")["services"]
    by_id = [x for x in services if x["id"] == ref]
    named = sorted(
        (x for x in services if x["name"] == ref.removesuffix(".localhost")),
        key=lambda x: (x["state"] in LIVE, x["started"]),
    )
    match = by_id or named[-1:]
    if not match:
        known = ", ".join(sorted({x["name"] for x in services if x["state"] in LIVE})) or "none"
        raise NotFound(f"no service named {ref} (running: {known})")
    svc: dict[str, Any] = match[0]
    if live and svc["state"] not in LIVE:
        raise UsageError(f"{svc['name']} is not running ({svc['state']})")
    return svc


def stop_service(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    # Every service in the daemon's table was started by homeport (run, the dashboard, MCP):
    # those are what the policy lets a client stop.
    svc = find_service(s, str(a["service"]), live=True)
    data = s.daemon().call("POST", f"/api/services/{svc['id']}/stop")
    s.services.pop(svc["id"], None)
    return {"service": data["service"]}


def restart_service(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    svc = find_service(s, str(a["service"]))
    body = {} if s.config.keep else {"owner_pid": os.getpid()}
    client = s.starting_client()
    new = client.call("POST", f"/api/services/{svc['id']}/restart", body)["service"]
    s.services.pop(svc["id"], None)
    s.services[new["id"]] = new["name"]
    return {"service": new, "url": client.config.route_url(f"{new['name']}.localhost")}


def service_logs(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    svc = find_service(s, str(a["service"]))
    data = s.daemon().call("GET", f"/api/services/{svc['id']}")
    lines: list[str] = list(data["lines"])
    total = int(data.get("lines_total", len(lines)))
    first = total - len(lines)  # the cursor of the oldest line the daemon still keeps
    dropped = 0
    if "since" in a:
        since = min(int(a["since"]), total)
        dropped = max(0, first - since)
        lines = lines[max(0, since - first) :]
    tail = int(a.get("tail") or 200)
    return {"service": data["service"], "lines": lines[-tail:], "next": total, "dropped": dropped}


def kill_port(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.daemon.procs import owner_uid
    from homeport.ports.kill import execute, plan_kill

    port = int(a["port"])
    plan = plan_kill(port, tree=False)
    groups = _service_groups(s)
    gateway = _gateway_pid(s)
    refused: list[tuple[int, str]] = []
    for v in plan.victims:
        facts = ProcessFacts(v.pid, owner_uid(v.pid), groups.get(_pgid(v.pid)))
        why = kill_refusal(facts, s.config, my_uid=os.getuid(), gateway_pid=gateway, me=os.getpid())
        if why is not None:
            refused.append((v.pid, f"{v.name}: {why}"))
    if refused:
        held = "; ".join(f"pid {pid} ({why})" for pid, why in refused)
        raise Refused(f"refused to stop what holds port {port}: {held}")
    if not plan.victims:
        reasons = "; ".join(f"pid {p}: {r}" for p, r in plan.refused) or "no visible owner"
        raise Refused(f"nothing this server may signal holds port {port} ({reasons})")
    progress(0, None, f"SIGTERM to {len(plan.victims)} process(es) on port {port}")
    report = execute(plan, timeout=float(a.get("timeout", 5.0)))
    result: dict[str, Any] = report.to_json()
    return result


def _service_groups(s: Session) -> dict[int | None, str]:
    """Process group -> id of every live homeport service (none when no daemon runs: then
    nothing was started by homeport that still runs, as the daemon stops its services)."""
    client = s.daemon_if_running()
    if client is None:
        return {}
    services = client.call("GET", "/api/services")["services"]
    return {int(x["pgid"]): str(x["id"]) for x in services if x["state"] in LIVE}


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _gateway_pid(s: Session) -> int | None:
    client = s.daemon_if_running()
    health = client.health() if client is not None else None
    pid = health.get("pid") if health else None
    return pid if isinstance(pid, int) else None
