"""Is the gateway running, where, and what does it serve?

examples:
  homeport status           one screen: URL, pid, uptime, routes, services
  homeport status --json    for scripts (exit 1 when the gateway is not running)

--json shape:
  {"running": true,
   "status": {"pid", "version", "url", "port", "listen": [[addr, port]], "started",
              "uptime_s", "state_dir", "routes", "services", "access_log_rows", "proxy",
              "build", "access_dropped", "dashboard",
              "loop_lag_ms": {"interval_ms", "window_s", "samples", "p99", "max", "p99_own",
                              "max_own", "max_since_start", "over_5ms", "over_5ms_own"}},
   "routes": [{"name", "target", "wildcard", "auth", "same_origin", "allow_hosts",
               "service_id", "allow_underscores"}],
   "services": [{"id", "name", "cmd", "cwd", "port", "pid", "pgid", "owner_pid", "state",
                 "started", "exit_code", ...}],
   "notices": [str]}   one-time notices after an upgrade (shown once, then gone)
  or {"running": false, "status": null, "routes": [], "services": [], "notices": []}

build: how the proxy's hot path runs: "mypyc" (compiled, what pip install . builds when a C
compiler and Python's headers are there), "python" (the pure fallback, and editable installs),
"none" when only the control API runs.

loop_lag_ms: how late the daemon's event loop ran a timer, in ms: p99 and max over the last
window_s seconds, the worst since start, and how many samples were more than 5 ms late (a
stall). The _own figures leave out the time the loop's thread waited for a CPU (the kernel's
run_delay): on a shared machine, what the daemon caused itself. Sampled every interval_ms
while the gateway has connections, every 5 s otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any

from homeport.cli.env import Env

HELP = "show whether the gateway runs, and its routes and services"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig

    client = Client.for_config(DaemonConfig.build())
    if client.health() is None:
        if args.json:
            dump_json(
                env,
                {"running": False, "status": None, "routes": [], "services": [], "notices": []},
            )
        else:
            env.out(f"the homeport gateway is not running ({client.url}); homeport up -d starts it")
        return 1
    data = {
        "running": True,
        "status": client.call("GET", "/api/status"),
        "routes": client.call("GET", "/api/routes")["routes"],
        "services": client.call("GET", "/api/services")["services"],
        "notices": client.call("POST", "/api/notices/take", {})["notices"],
    }
    if args.json:
        dump_json(env, data)
    else:
        _render(env, data)
    return 0


def _render(env: Env, data: dict[str, Any]) -> None:
    from homeport.addr import http_url
    from homeport.cli.render import age, host_port, paint, table

    st = data["status"]
    listen = ", ".join(host_port(a, p) for a, p in st["listen"])
    env.out(
        f"{paint(env, 'homeport gateway', 'bold')} at {st['url']}  (pid {st['pid']}, "
        f"up {age(st['started'])}, listening on {listen})"
    )
    if st.get("proxy") == "control-only":
        env.out(paint(env, "the proxy is not installed: only the control API answers", "yellow"))
    elif st.get("build") == "python":
        env.out("proxy: pure Python (a compiled install serves ~25% more requests a second)")
    workers = st.get("workers") or []
    if len(workers) > 1:
        shown = ", ".join(
            f"{w['pid']}"
            + ("" if w["state"] == "running" else f" {w['state']}")
            + (f", restarted {w['restarts']}x" if w["restarts"] else "")
            for w in workers
        )
        env.out(f"gateway processes: {len(workers)} (pids {shown})")
    env.out(f"access log: {st['access_log_rows']} requests kept")
    for notice in data.get("notices", []):
        env.out(paint(env, "notice: ", "yellow") + notice)
    if data["routes"]:
        env.out("")
        port = st["port"]
        rows = [
            [
                http_url(r["name"], port),
                r["target"],
                r["auth"],
                "run" if r["service_id"] else "route",
            ]
            for r in data["routes"]
        ]
        env.out(table(env, ["URL", "TARGET", "AUTH", "KIND"], rows))
    if data["services"]:
        env.out("")
        rows = [
            [s["name"], str(s["pid"]), s["state"], age(s["started"]), " ".join(s["cmd"])]
            for s in data["services"]
        ]
        env.out(table(env, ["SERVICE", "PID", "STATE", "UP", "COMMAND"], rows, shrink=4))
