"""Read the gateway's access log, or the last output lines of a service ``homeport run`` started.

Every request through the gateway is recorded: time, client, Host, method, path, status,
bytes in/out, duration, route, and why homeport answered itself (unknown-host, upstream-refused,
auth …). Requests from a client that is not on loopback are flagged EXTERNAL: that is traffic
that should never reach a localhost-only app. The log keeps the newest 100,000 requests.

examples:
  homeport logs                          the last 50 requests (the same as --access)
  homeport logs -f                       follow new requests as they come (Ctrl-C stops)
  homeport logs --access --route api -n 200
  homeport logs --access --json          {"records": [...]}
  homeport logs --access -f --json       one JSON record per line
  homeport logs --access --control       also requests to the gateway's own API
  homeport logs web                      the last output lines of the service named web

In a project (homeport.toml here or in a parent folder), the services' output instead:
  homeport logs                          every service's output, prefixed
  homeport logs -f api worker            follow two of them
  homeport logs --since 5m --json        one JSON object per line: {"seq", "time",
                                         "service", "line"}

--json record: {"id", "time", "client_addr", "client_port", "host", "method", "path", "status",
  "bytes_in", "bytes_out", "duration_ms", "route", "reason", "external",
  "protocol" ("http/1.1" or "h2"), "tls" (true for https://)}
service --json: {"service": {...as in homeport status}, "lines": ["..."]}

The access log is read through the gateway when it runs, else straight from the state database.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from homeport.cli.env import Env

HELP = "show the gateway's access log or a service's output"

Fetch = Callable[[int | None, int, str | None], list[dict[str, Any]]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    parser.add_argument(
        "services", nargs="*", help="service names (from homeport run, or the project's)"
    )
    add_project_arguments(parser, short=False)  # -f is --follow here
    parser.add_argument("--since", help="in a project: lines from the last 30s, 5m, 2h")
    parser.add_argument("--access", action="store_true", help="the gateway's access log")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new requests")
    parser.add_argument("--route", help="only requests for this route (api or api.localhost)")
    parser.add_argument("-n", "--lines", type=int, default=50, help="how many (50)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="include requests to the gateway's own API (hidden by default)",
    )
    parser.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError

    args.service = args.services[0] if args.services else None
    if not args.access:
        from homeport.cli.project import find_file

        if args.project or find_file(args) is not None:
            from homeport.cli.project import logs

            return logs(args, env)
    if args.service and not args.access:
        return _service_lines(args, env)
    # No service named: the access log, the log there always is (--access says it outright).
    if not 1 <= args.lines <= 10_000:
        raise UsageError("-n must be 1-10000")
    fetch = _source(include_control=args.control)
    route = args.route
    if route:
        from homeport.daemon.routes import normalize_name

        route = normalize_name(route)
    records = fetch(None, args.lines, route)
    if args.json and not args.follow:
        from homeport.cli.render import dump_json

        dump_json(env, {"records": records})
        return 0 if records else 1
    _emit(env, records, args.json)
    if not records and not args.json:
        where = f" for {route}" if route else ""
        env.err(f"no requests recorded{where} yet")
    if not args.follow:
        return 0 if records else 1
    last = records[-1]["id"] if records else _newest_id(fetch, route)
    while True:
        time.sleep(args.interval)  # the log is polled: records land in batches anyway
        new = fetch(last, 1000, route)
        if new:
            _emit(env, new, args.json)
            last = new[-1]["id"]
            env.stdout.flush()


def _newest_id(fetch: Fetch, route: str | None) -> int:
    newest = fetch(None, 1, route)
    return int(newest[-1]["id"]) if newest else 0


def _source(include_control: bool) -> Fetch:
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig

    config = DaemonConfig.build()
    client = Client.for_config(config)
    if client.health() is not None:

        def via_api(after: int | None, limit: int, route: str | None) -> list[dict[str, Any]]:
            data = client.call(
                "GET",
                "/api/access",
                limit=limit,
                after=after,
                route=route,
                control=None if include_control else "0",
            )
            return list(data["records"])

        return via_api
    from homeport.store import Store

    store = Store(config.db_path)

    def via_store(after: int | None, limit: int, route: str | None) -> list[dict[str, Any]]:
        skip = None if include_control else "control"
        entries = store.access(limit=limit, route=route, after=after, skip_reason=skip)
        return [e.to_json() for e in entries]

    return via_store


def _emit(env: Env, records: list[dict[str, Any]], as_json: bool) -> None:
    import json

    for r in records:
        env.out(json.dumps(r) if as_json else format_record(env, r))


def format_record(env: Env, r: dict[str, Any]) -> str:
    from homeport.cli.render import host_port, paint

    when = time.strftime("%H:%M:%S", time.localtime(r["time"]))
    status = str(r["status"])
    style = "red" if r["status"] >= 500 else "yellow" if r["status"] >= 400 else "green"
    parts = [
        when,
        host_port(r["client_addr"], r["client_port"]).ljust(21),
        paint(env, status, style),
        r["method"],
        f"{'https://' if r.get('tls') else ''}{r['host']}{r['path']}",
        f"{r['duration_ms']:.1f}ms",
        f"{r['bytes_out']}B",
    ]
    if r.get("protocol") == "h2":
        parts.append("h2")
    if r.get("reason"):
        parts.append(f"({r['reason']})")
    if r.get("external"):
        parts.append(paint(env, "EXTERNAL", "red"))
    return " ".join(parts)


def _service_lines(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.daemon.client import connect
    from homeport.errors import NotFound

    client = connect()
    services = client.call("GET", "/api/services", all="1")["services"]
    match = [s for s in services if s["name"] == args.service]
    if not match:
        raise NotFound(f"no service named {args.service}", hint="homeport status lists them")
    data = client.call("GET", f"/api/services/{match[-1]['id']}")
    if args.json:
        dump_json(env, data)
    else:
        for line in data["lines"][-args.lines :]:
            env.out(line)
    return 0
