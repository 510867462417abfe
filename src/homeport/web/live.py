"""The dashboard's live state inside the daemon: the sampler, the store watcher and the hub.

Two loops, both owned by ``Dashboard`` (started by ``start``, ended by ``close``):

- the **sampler** (``sampler.Sampler``) reads the inventory every ``interval`` seconds; a
  diff goes straight to the pages as a ``listeners`` message and its events into SQLite;
- the **watcher** reads what others write to SQLite (the proxy's access log, events such as
  ``service-reaped``, route and service changes) every ``watch_interval`` seconds, by id,
  and publishes what is new. Polling an indexed ``id > N`` is how a reader follows SQLite:
  it has no change notification across connections. The access writer, a thread of this
  daemon, nudges it (``nudge``) after each commit, and the gateway after a route, service
  or output change, so those reach the pages at once; nudges within ``NUDGE_GAP`` of a poll
  wait for the next one (a chatty service's output is one poll per gap, not one per line).

While nobody is connected the watcher polls on nudges only (no timer: an idle daemon must
not wake, issue 9), it does not read access rows (building 2,000 of them a poll on the event
loop stalled it under load), only counts them per route in SQL for the request rates; with
a page connected a poll builds at most ``LIVE_ACCESS`` rows (the newest); and
the sampler walks owners only when the socket set changed (``UNWATCHED_REFRESH``).

Messages on the stream (``event:`` names; ``data:`` is JSON):

=========  ===================================================================
hello      first message: {"listeners": [row], "routes", "services", "events",
           "access", "status", "samples"} (see ``api`` for row shapes)
listeners  {"added": [row], "removed": [key], "changed": [row]}
events     {"events": [{"id", "time", "kind", "data"}]} (stored events; ``data.alert``)
access     {"records": [AccessEntry.to_json()]}
routes     {"routes": [route view]}
services   {"services": [service view]}
projects   {"projects": [project as GET /api/projects/{id}, without last_seq/version]}
output     {"id": service id, "lines": [last lines]}
=========  ===================================================================
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from homeport.web.hub import Hub, sse
from homeport.web.launch import Launcher
from homeport.web.sampler import CachedInventory, Diff, ListenerRow, Sampler, summarize

if TYPE_CHECKING:
    from homeport.daemon.control import ControlApp
    from homeport.gateway.contract import Route
    from homeport.store import Event, ServiceRecord

log = logging.getLogger("homeport.web.live")

RECENT_EVENTS = 300
RECENT_ACCESS = 300
#: Most access rows one poll builds for the pages: under load the writer commits thousands
#: per 0.2 s, and building each row's JSON on the event loop is what stalled it (issue 9).
#: Past this, a poll sends the newest rows and counts the rest for the rates in SQL.
LIVE_ACCESS = 200
RATE_WINDOW = 60.0
#: Least time between two polls of the store: a burst of nudges costs one poll.
NUDGE_GAP = 0.05
#: Sampling while nobody watches: every IDLE_SAMPLE seconds (a netlink dump), and the owner
#: walk (tens of ms of a core) again only after UNWATCHED_REFRESH seconds with the same
#: sockets. A page that connects wakes the sampler, which walks if its rows are older than
#: the watched refresh.
IDLE_SAMPLE = 30.0
WATCHED_REFRESH = 10.0
UNWATCHED_REFRESH = 300.0


def route_ports(routes: list[Route]) -> dict[int, str]:
    """Port -> route name for routes whose target is a loopback ``http://HOST:PORT`` (pure)."""
    out: dict[int, str] = {}
    for r in routes:
        if not r.target.startswith("http://"):
            continue
        port = urlsplit(r.target).port
        if port is not None:
            out.setdefault(port, r.name)
    return out


def annotate(rows: list[ListenerRow], ports: dict[int, str], url_of: Any) -> list[ListenerRow]:
    """Rows with the route that points at their port, and its URL (pure)."""
    out = []
    for row in rows:
        name = ports.get(row.port) if row.proto == "tcp" else None
        out.append(replace(row, route=name, url=url_of(name) if name else None))
    return out


def route_view(
    route: Route, url: str, listening: set[int], svc: ServiceRecord | None, rate: int
) -> dict[str, Any]:
    """A route as the page shows it: health ``up``/``down``/``starting`` and requests a minute."""
    port = urlsplit(route.target).port if route.target.startswith("http://") else None
    if svc is not None and svc.state == "starting":
        health = "starting"
    elif port is None:
        health = "unknown"  # a unix socket: the inventory lists TCP/UDP only
    elif port in listening or (svc is not None and svc.state == "running"):
        health = "up"  # a running service was seen listening before its route went live
    else:
        health = "down"
    return {**route.to_json(), "url": url, "health": health, "requests_per_min": rate}


class Dashboard:
    """Everything the dashboard needs from the daemon; ``install`` builds one per ControlApp."""

    def __init__(
        self,
        app: ControlApp,
        *,
        interval: float = 1.0,
        watch_interval: float = 0.5,
    ) -> None:
        self.app = app
        self.gateway = app.gateway
        self.store = app.gateway.store
        self.hub = Hub()
        self.launcher = Launcher(self.gateway, app.config.route_url)
        self._inventory = CachedInventory()
        self.sampler = Sampler(
            self._on_diff,
            sample=self._sample,
            interval=interval,
            idle_interval=max(interval, IDLE_SAMPLE),
            watched=self.watched,
        )
        self.watch_interval = watch_interval
        self._ports: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: collections.deque[Event] = collections.deque(maxlen=RECENT_EVENTS)
        self._last_event = self._load_events()
        recent = self.store.access(limit=RECENT_ACCESS)
        self._last_access = recent[-1].id if recent else 0
        #: (time, route, requests) for the request rates of the last minute.
        self._hits: collections.deque[tuple[float, str | None, int]] = collections.deque()
        self._seen: dict[str, Any] = {}
        self._refresh_routes()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by the watcher
        self._wake: asyncio.Event | None = None
        self.gateway.changed = self.nudge

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the sampler and the watcher (call with the daemon's loop running)."""
        self._own(self.sampler.run(), "homeport-sampler")
        self._own(self._watch(), "homeport-watcher")

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.hub.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.launcher.close()

    # -- sampling ------------------------------------------------------------------------

    def watched(self) -> bool:
        """A page or ``events -f`` is connected."""
        return len(self.hub) > 0

    def _sample(self) -> list[ListenerRow]:
        self._inventory.refresh = WATCHED_REFRESH if self.watched() else UNWATCHED_REFRESH
        return annotate(self._inventory(), self._ports, self.app.config.route_url)

    def _on_diff(self, diff: Diff) -> None:
        self.hub.publish("listeners", diff.to_json())
        records = summarize(diff.events)
        for kind, data in records:
            try:
                self.store.add_event(kind, data)
            except Exception:  # a busy or full disk must not stop sampling: log and go on
                log.exception("could not record %s", kind)
        if records:
            self._poll_events()  # publish at once: alerts should not wait for the watcher

    def rows(self) -> list[dict[str, Any]]:
        rows = sorted(self.sampler.snapshot.values(), key=lambda r: (r.port, r.proto, r.address))
        return [r.to_json() for r in rows]

    # -- watching the store --------------------------------------------------------------

    def _load_events(self) -> int:
        last = 0
        while batch := self.store.events(after=last, limit=5000):
            self.events.extend(batch)
            last = batch[-1].id
        return last

    def nudge(self) -> None:
        """Wake the watcher now (thread-safe): the access writer has committed rows."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _watch(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while True:
            try:
                self.poll()
            except Exception:  # e.g. "database is locked" past the busy timeout: try again
                log.exception("dashboard watcher failed")
            # A nudge, or the interval: SQLite has no change notification of its own.
            # Nobody watching: nudges only (see the module docstring).
            await asyncio.sleep(NUDGE_GAP)
            timeout = max(0.0, self.watch_interval - NUDGE_GAP) if self.watched() else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    def poll(self) -> None:
        """Publish what changed in the store since the last call."""
        self._poll_events()
        self._refresh_routes()
        if not self.watched():
            self._count_access()
            return
        self._poll_access()
        self._publish_if_changed("routes", {"routes": self.routes()})
        self._publish_if_changed("services", {"services": self.services()})
        if self.app.projects is not None:
            self._publish_if_changed("projects", {"projects": self.projects()})
        for sid, lines in list(self.gateway.lines.items()):
            self._publish_if_changed(f"output:{sid}", {"id": sid, "lines": list(lines)}, "output")

    def _poll_events(self) -> None:
        # One message per batch: a burst of events must not overflow a reader's queue.
        while batch := self.store.events(after=self._last_event, limit=1000):
            self._last_event = batch[-1].id
            self.events.extend(batch)
            self.hub.publish("events", {"events": [e.to_json() for e in batch]}, batch[-1].id)

    def _poll_access(self) -> None:
        entries = self.store.access(after=self._last_access, limit=LIVE_ACCESS + 1)
        if len(entries) > LIVE_ACCESS:  # a backlog: the newest rows only, the rest counted
            self._count_access()
            self.hub.publish(
                "access", {"records": [e.to_json() for e in self.store.access(limit=LIVE_ACCESS)]}
            )
            return
        if not entries:
            return
        self._last_access = entries[-1].id
        for e in entries:
            self._hits.append((e.record.time, e.record.route, 1))
        self.hub.publish("access", {"records": [e.to_json() for e in entries]})

    def _count_access(self) -> None:
        """Nobody watching: count the new rows per route (one aggregate in SQLite) for the
        rates a page shows when it connects, and move past them."""
        last, counts = self.store.access_counts(after=self._last_access)
        now = time.time()
        self._last_access = last
        self._hits.extend((now, route, n) for route, n in counts.items())

    def _publish_if_changed(self, key: str, data: dict[str, Any], kind: str | None = None) -> None:
        if self._seen.get(key) != data:
            self._seen[key] = data
            self.hub.publish(kind or key, data)

    def _refresh_routes(self) -> None:
        self._ports = route_ports(self.gateway.routes())

    # -- views ---------------------------------------------------------------------------

    def _rates(self) -> collections.Counter[str | None]:
        cutoff = time.time() - RATE_WINDOW
        while self._hits and self._hits[0][0] < cutoff:
            self._hits.popleft()
        rates: collections.Counter[str | None] = collections.Counter()
        for _, route, n in self._hits:
            rates[route] += n
        return rates

    def routes(self) -> list[dict[str, Any]]:
        listening = {r.port for r in self.sampler.snapshot.values() if r.proto == "tcp"}
        rates = self._rates()
        out = []
        for r in self.gateway.routes():
            svc = self.store.service(r.service_id) if r.service_id else None
            url = self.app.config.route_url(r.name)
            out.append(route_view(r, url, listening, svc, rates.get(r.name, 0)))
        return out

    def services(self) -> list[dict[str, Any]]:
        import os

        me = os.getpid()
        urls = {r.service_id: r.name for r in self.gateway.routes() if r.service_id}
        out = []
        for svc in reversed(self.store.services()[-50:]):
            route = urls.get(svc.id)
            out.append(
                {
                    **svc.to_json(),
                    "route": route,
                    "url": self.app.config.route_url(route) if route else None,
                    "started_by": "dashboard" if svc.owner_pid == me else "homeport run",
                }
            )
        return out

    def projects(self) -> list[dict[str, Any]]:
        """The stacks the supervisor runs, without their line counters (which move with every
        line of output: the page would be sent the whole list for each)."""
        sup = self.app.projects
        if sup is None:
            return []
        out = []
        for p in sup.to_json():
            out.append({k: v for k, v in p.items() if k not in ("last_seq", "version")})
        return out

    def hello(self) -> dict[str, Any]:
        extra = {"projects": self.projects()} if self.app.projects is not None else {}
        return {
            **extra,
            "listeners": self.rows(),
            "samples": self.sampler.samples,
            "routes": self.routes(),
            "services": self.services(),
            "events": [e.to_json() for e in self.events],
            "access": [e.to_json() for e in self.store.access(limit=RECENT_ACCESS)],
            "status": self.app.status(),
        }

    def hello_chunks(self) -> list[bytes]:
        self.sampler.wake()
        return [sse("hello", self.hello(), self._last_event)]
