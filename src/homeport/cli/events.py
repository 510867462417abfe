"""What changed on this machine's ports: listeners that appeared, went away or widened their
exposure, and services that exited, as the gateway daemon recorded them.

The daemon samples every listening socket on the machine about once a second. A listener
that appears beyond loopback (0.0.0.0, ::, a LAN or a public address), or whose exposure
widens, is an ALERT: something meant for this machine may be reachable from elsewhere.

examples:
  homeport events                 the last 50 events, oldest first
  homeport events -n 200          the last 200
  homeport events --alerts        only alerts; exit status 1 when there is any
  homeport events -f              follow: print events as they happen (Ctrl-C stops)
  homeport events --json          {"events": [{"id", "time", "kind", "data"}]}
  homeport events -f --json       one {"id", "time", "kind", "data"} object per line

kinds: listener-appeared, listener-disappeared, listener-exposure-changed (data: "proto",
"address", "port", "exposure", "previous_exposure", "pids", "process", "user", "command",
"alert", "message"), listeners-changed (a burst of more than 100 in one sample, summarized:
"counts", "message"; alerts in a burst are still listed one by one), service-reaped,
service-exited, service-stopped (data: "id", "pid" ...), mcp-tool-call (every call an MCP
client made through homeport mcp; data: "client", "tool", "arguments" with secrets removed,
"outcome" ok | refused: … | failed: …, "pid", "message"), mcp-session-ended.

Without a running daemon the recorded history is read from the state database; following
needs the daemon (homeport up -d).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from homeport.cli.env import Env

HELP = "listener and service events; alerts for anything exposed beyond loopback"
FETCH_LIMIT = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--follow", action="store_true", help="print new events as they come")
    parser.add_argument(
        "-n", "--limit", type=int, default=50, metavar="N", help="show the last N (default 50)"
    )
    parser.add_argument("--alerts", action="store_true", help="only alerts; exit 1 when any")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError

    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    recorded = history(follow=args.follow)
    events = select(recorded, alerts_only=args.alerts)[-args.limit :]
    if args.json and not args.follow:
        from homeport.cli.render import dump_json

        dump_json(env, {"events": events})
    else:
        for ev in events:
            show(env, ev, args.json)
        if not events and not args.json and not args.follow:
            what = "alerts" if args.alerts else "events"
            env.err(f"no {what} recorded (the daemon records them while it runs: homeport up -d)")
    if args.follow:
        last = max((int(e["id"]) for e in recorded), default=0)
        for ev in follow(last):
            if not args.alerts or is_alert(ev):
                show(env, ev, args.json)
                env.stdout.flush()
    return 1 if args.alerts and events else 0


def is_alert(ev: dict[str, Any]) -> bool:
    data = ev.get("data")
    return isinstance(data, dict) and bool(data.get("alert"))


def select(events: list[dict[str, Any]], *, alerts_only: bool) -> list[dict[str, Any]]:
    return [e for e in events if is_alert(e)] if alerts_only else events


def line(ev: dict[str, Any]) -> str:
    """One event as a line of text (pure)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev["time"]))
    data = ev.get("data") or {}
    message = data.get("message") if isinstance(data, dict) else None
    if not message:
        message = " ".join(f"{k}={v}" for k, v in (data.items() if isinstance(data, dict) else ()))
    flag = "ALERT " if is_alert(ev) else ""
    return f"{stamp}  {flag}{ev['kind']}  {message}".rstrip()


def show(env: Env, ev: dict[str, Any], as_json: bool) -> None:
    if as_json:
        env.out(json.dumps(ev, separators=(",", ":")))
        return
    from homeport.cli.render import paint

    text = line(ev)
    env.out(paint(env, text, "red") if is_alert(ev) else text)


# -- the edges: daemon API, state database ----------------------------------------------------


def history(*, follow: bool) -> list[dict[str, Any]]:
    """Recorded events, oldest first: from the daemon, else (not following) from SQLite."""
    from homeport.daemon.client import connect
    from homeport.errors import DaemonError

    try:
        client = connect()
    except DaemonError:
        if follow:
            raise
        return _from_store()
    data = client.call("GET", "/api/events", after=0, limit=FETCH_LIMIT)
    events = data.get("events", [])
    return events if isinstance(events, list) else []


def _from_store() -> list[dict[str, Any]]:
    from homeport.store import Store, db_path

    path = db_path()
    if not path.exists():
        return []
    store = Store(path)
    try:
        return [e.to_json() for e in store.events(after=0, limit=FETCH_LIMIT)]
    finally:
        store.close()


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs from text/event-stream lines (pure; WHATWG HTML §9.2.6)."""
    kind, data = "message", list[str]()
    for raw in lines:
        text = raw.rstrip("\r\n")
        if not text:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", list[str]()
        elif text.startswith(":"):
            continue  # a comment: the server's heartbeat
        else:
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)


def follow(after: int) -> Iterator[dict[str, Any]]:
    """Events past ``after`` from the daemon's event stream, until it closes."""
    import http.client

    from homeport.daemon.client import connect
    from homeport.errors import DaemonError

    client = connect()
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=None)
    headers = {"Host": f"homeport.localhost:{client.port}", "Accept": "text/event-stream"}
    if client.token:
        headers["Authorization"] = f"Bearer {client.token}"
    try:
        conn.request("GET", f"/api/events/stream?after={after}", headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise DaemonError(f"the daemon refused the event stream ({resp.status})")
        lines = (raw.decode("utf-8", "replace") for raw in iter(resp.readline, b""))
        for kind, data in parse_sse(lines):
            if kind == "events":
                yield from json.loads(data)["events"]
    except OSError as exc:
        raise DaemonError(f"lost the daemon's event stream: {exc}") from exc
    finally:
        conn.close()
