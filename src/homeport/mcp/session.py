"""One MCP connection's state: its client, what it started, what it leased, its event log.

A session is one ``homeport mcp`` process: stdio has one client per process, and the session
ends when the client closes the pipe. ``close`` then stops the services this session started
and gives its leases back, unless the server runs with ``--keep``. Services are started with
this process as their owner, so the daemon stops them too if this process is killed before it
can clean up (``kill -9``, the client's SIGKILL escalation).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from homeport.errors import HomeportError
from homeport.mcp.policy import McpConfig, scrub, scrub_text

if TYPE_CHECKING:
    from homeport.daemon.client import Client
    from homeport.store import Store

log = logging.getLogger("homeport.mcp")

#: The event kind every tool call is recorded under (``homeport events``, the dashboard).
EVENT_KIND = "mcp-tool-call"
#: How long the known secrets (route secrets, the daemon token) are reused between reads.
SECRETS_TTL = 1.0
#: Time allowed to a daemon call that starts a service (it waits for it to listen: 30 s).
START_TIMEOUT = 45.0


class Refused(HomeportError):
    """The server's policy does not let this client do that (the message says which flag)."""


class EventLog:
    """Writes tool calls to homeport's event log from one thread of its own, so that a call's
    answer never waits for SQLite, and ``close`` flushes what is pending."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="homeport-mcp-ev")
        self._store: Store | None = None

    def add(self, kind: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # closed: the session is over
            self._pool.submit(self._write, kind, data)

    def _write(self, kind: str, data: dict[str, Any]) -> None:
        try:
            if self._store is None:
                from homeport.store import Store

                self._store = Store()
            self._store.add_event(kind, data)
        except Exception as exc:  # HomeportError, OSError, sqlite3.Error: never fail a call
            log.warning("could not record %s: %s", kind, exc)

    def close(self) -> None:
        def shut() -> None:
            if self._store is not None:
                self._store.close()

        with contextlib.suppress(RuntimeError):
            self._pool.submit(shut)
        self._pool.shutdown(wait=True)


class Session:
    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.client_name = "unknown client"
        #: service id -> name, for the services this session started and that may still run.
        self.services: dict[str, str] = {}
        #: ids of the projects this session brought up (and that were not up before).
        self.projects: set[str] = set()
        #: (port, proto) leased to this session.
        self.leases: list[tuple[int, str]] = []
        self.last_audit: dict[str, Any] | None = None
        self.events = EventLog()
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._secrets: tuple[float, tuple[str, ...]] = (0.0, ())

    # -- the daemon ---------------------------------------------------------------------------

    def daemon(self, *, start: bool = False) -> Client:
        """A client to the running daemon; with ``start``, start one when none runs."""
        from homeport.daemon.client import connect

        with self._lock:
            if self._client is not None and (not start or self._client.health() is not None):
                return self._client
        client = connect(start=start)
        with self._lock:
            self._client = client
        return client

    def daemon_if_running(self) -> Client | None:
        from homeport.daemon.client import Client
        from homeport.daemon.config import DaemonConfig

        client = Client.for_config(DaemonConfig.build())
        return client if client.health() is not None else None

    def starting_client(self) -> Client:
        return dataclasses.replace(self.daemon(start=True), timeout=START_TIMEOUT)

    # -- secrets and the event log -----------------------------------------------------------

    def secrets(self) -> tuple[str, ...]:
        """Strings no answer may contain: route secrets and the daemon's token."""
        now = time.monotonic()
        at, known = self._secrets
        if now - at < SECRETS_TTL:
            return known
        found: list[str] = []
        from homeport.paths import db_path, state_dir

        if state_dir(create=False).exists():
            with contextlib.suppress(OSError):
                found.append((state_dir(create=False) / "token").read_text().strip())
            found.extend(_route_secrets(db_path()))
        known = tuple(s for s in found if s)
        self._secrets = (now, known)
        return known

    def record(self, tool: str, arguments: dict[str, Any], outcome: str) -> None:
        """Write one tool call to homeport's event log, with the client's name."""
        args = _capped(scrub(arguments, self.secrets()))
        shown = ", ".join(f"{k}={_short(v)}" for k, v in args.items())
        self.events.add(
            EVENT_KIND,
            {
                "client": self.client_name,
                "tool": tool,
                "arguments": args,
                "outcome": outcome,
                "pid": os.getpid(),
                "message": scrub_text(
                    f"MCP {self.client_name}: {tool}({shown}) {outcome}", self.secrets()
                ),
            },
        )

    # -- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop what this session started (unless ``--keep``), then flush the event log."""
        if not self.config.keep:
            self._stop_services()
            self._down_projects()
            self._release_leases()
        self.events.add(
            "mcp-session-ended",
            {
                "client": self.client_name,
                "pid": os.getpid(),
                "kept": sorted(self.services) if self.config.keep else [],
                "message": f"MCP {self.client_name}: session ended"
                + (" (its services kept)" if self.config.keep and self.services else ""),
            },
        )
        self.events.close()

    def _stop_services(self) -> None:
        if not self.services:
            return
        try:
            client = self.daemon()
        except HomeportError as exc:  # no daemon: it stopped them already (it owned them)
            log.info("no daemon to stop services through: %s", exc)
            return
        for service_id in list(self.services):
            try:
                svc = client.call("GET", f"/api/services/{service_id}")["service"]
                if svc["state"] in ("starting", "running"):
                    client.call("POST", f"/api/services/{service_id}/stop")
            except HomeportError as exc:
                log.warning("could not stop service %s: %s", service_id, exc)
            self.services.pop(service_id, None)

    def _down_projects(self) -> None:
        if not self.projects:
            return
        from homeport.project import client as pc

        for project_id in sorted(self.projects):
            try:
                pc.down(project_id, client=self.daemon())
            except HomeportError as exc:
                log.warning("could not bring %s down: %s", project_id, exc)
        self.projects.clear()

    def _release_leases(self) -> None:
        from homeport.ports.lease import LeaseStore, holder_of

        holder = holder_of(os.getpid())
        store = LeaseStore()
        for port, _proto in self.leases:
            with contextlib.suppress(HomeportError, OSError):
                store.release(port, holder)
        self.leases.clear()


def _route_secrets(path: Any) -> list[str]:
    """Every route's secret (its token, its basic-auth credentials), read-only."""
    import sqlite3

    if not path.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            rows = con.execute("SELECT secret FROM routes WHERE secret IS NOT NULL").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    out: list[str] = []
    for (secret,) in rows:
        text = str(secret)
        out.append(text)
        # basic auth is kept as USER:PASSWORD (or a hash): the password alone is secret too
        if ":" in text:
            out.append(text.split(":", 1)[1])
    return out


#: Longest string argument kept in the event log (a pasted error text can be pages long).
MAX_LOGGED = 2000


def _capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LOGGED:
        return value[:MAX_LOGGED] + "…"
    if isinstance(value, dict):
        return {k: _capped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_capped(v) for v in value]
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
