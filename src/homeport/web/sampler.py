"""Listener events: a pure diff of two inventory snapshots, and the thin loop that samples.

The dashboard and ``homeport events`` show what changed on the machine, not only what
homeport started. Every ~1 s the daemon reads the inventory (``homeport.inventory.listeners``,
in a worker thread: the ``/proc/*/fd`` owner walk blocks) and compares it with the previous
snapshot:

- ``listener-appeared`` / ``listener-disappeared``: a socket keyed by
  ``proto/address/port/inode`` came or went. The inode is part of the key because a server
  that restarts on the same port is a new socket (and may have new owners).
- ``listener-exposure-changed``: a listener went away and, in the same sample, the same
  owners listen on the same proto and port with another exposure (``127.0.0.1`` became
  ``0.0.0.0``). One event, not a disappeared/appeared pair.
- ``alert``: set on an event when a listener is reachable beyond loopback and was not
  before: a new listener on ``0.0.0.0``, ``::``, a LAN or a public address, or an exposure
  that widened. UDP sockets on ports in the kernel's ephemeral range are client sockets
  (a resolver's query, QUIC), not services: they never alert.

The first sample is a baseline: its rows reach the pages as "added", but it yields no events
(a daemon restart must not replay every listener on the machine as "appeared").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from homeport.model import Listener

TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.model import Exposure

log = logging.getLogger("homeport.web.sampler")

EventKind = Literal["listener-appeared", "listener-disappeared", "listener-exposure-changed"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "listener-appeared",
    "listener-disappeared",
    "listener-exposure-changed",
)
#: More events than this in one sample are recorded as a summary (plus every alert).
FLOOD_LIMIT = 100
#: How far a bind address reaches, for "did the exposure widen?".
_REACH: dict[str, int] = {"loopback": 0, "lan": 1, "all-interfaces": 2, "public": 2}


@dataclass(frozen=True, slots=True)
class ListenerRow:
    """One listener as the dashboard's table shows it (a compact, stable JSON shape)."""

    proto: str
    family: int
    address: str
    port: int
    inode: int
    exposure: Exposure
    pids: tuple[int, ...] = ()
    process: str | None = None
    user: str | None = None
    command: str | None = None
    #: Start time of the first owner, epoch seconds (the page shows it as uptime).
    started: float | None = None
    owner_status: str = "known"
    owner_hint: str | None = None
    route: str | None = None
    url: str | None = None

    @property
    def key(self) -> str:
        return f"{self.proto}/{self.address}/{self.port}/{self.inode}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "proto": self.proto,
            "family": self.family,
            "address": self.address,
            "port": self.port,
            "exposure": self.exposure,
            "pids": list(self.pids),
            "process": self.process,
            "user": self.user,
            "command": self.command,
            "started": self.started,
            "owner_status": self.owner_status,
            "owner_hint": self.owner_hint,
            "route": self.route,
            "url": self.url,
        }


def listener_row(listener: Listener) -> ListenerRow:
    s = listener.socket
    first = listener.owners[0] if listener.owners else None
    return ListenerRow(
        proto=s.proto,
        family=s.family,
        address=s.local_addr,
        port=s.local_port,
        inode=s.inode,
        exposure=listener.exposure,
        pids=listener.pids,
        process=first.name if first else None,
        user=first.user if first else None,
        command=first.command if first else None,
        started=first.start_time if first else None,
        owner_status=listener.owner_status,
        owner_hint=listener.owner_hint,
        route=listener.route,
    )


Snapshot = dict[str, ListenerRow]


def snapshot(rows: Iterable[ListenerRow]) -> Snapshot:
    return {r.key: r for r in rows}


@dataclass(frozen=True, slots=True)
class ListenerEvent:
    kind: EventKind
    row: ListenerRow
    alert: bool = False
    previous_exposure: Exposure | None = None

    def data(self) -> dict[str, Any]:
        """The ``data`` object stored with the event (see ``homeport events --json``)."""
        return {
            **self.row.to_json(),
            "alert": self.alert,
            "previous_exposure": self.previous_exposure,
            "message": self.message,
        }

    @property
    def message(self) -> str:
        r = self.row
        where = f"[{r.address}]:{r.port}" if ":" in r.address else f"{r.address}:{r.port}"
        who = f" by {r.process} (pid {r.pids[0]})" if r.pids and r.process else ""
        if self.kind == "listener-appeared":
            return f"{r.proto} {where} is listening{who} ({r.exposure})"
        if self.kind == "listener-disappeared":
            return f"{r.proto} {where} stopped listening"
        return f"{r.proto} {where}{who}: exposure {self.previous_exposure} -> {r.exposure}"


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed between two snapshots: rows for the page, events for the record."""

    added: tuple[ListenerRow, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ListenerRow, ...] = ()
    events: tuple[ListenerEvent, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [r.to_json() for r in self.added],
            "removed": list(self.removed),
            "changed": [r.to_json() for r in self.changed],
        }


def widened(before: Exposure | None, after: Exposure) -> bool:
    """True when ``after`` reaches further than ``before`` (None: nothing listened)."""
    if after == "loopback":
        return False
    return before is None or _REACH[after] > _REACH[before]


def _alerts(row: ListenerRow, before: Exposure | None, ephemeral: tuple[int, int]) -> bool:
    if row.proto == "udp" and ephemeral[0] <= row.port <= ephemeral[1]:
        return False
    return widened(before, row.exposure)


def _pair_key(row: ListenerRow) -> tuple[str, int, tuple[int, ...]]:
    return (row.proto, row.port, tuple(sorted(row.pids)))


def diff(
    before: Mapping[str, ListenerRow],
    after: Mapping[str, ListenerRow],
    ephemeral: tuple[int, int] = (32768, 60999),
) -> Diff:
    """Compare two snapshots (pure). Output is sorted by port so events read in order."""
    gone = [before[k] for k in before.keys() - after.keys()]
    new = [after[k] for k in after.keys() - before.keys()]
    changed = [after[k] for k in after.keys() & before.keys() if after[k] != before[k]]
    candidates: dict[tuple[str, int, tuple[int, ...]], list[ListenerRow]] = {}
    for r in sorted(gone, key=_order):
        candidates.setdefault(_pair_key(r), []).append(r)
    paired: set[str] = set()
    events: list[ListenerEvent] = []
    for row in sorted(new, key=_order):
        olds = candidates.get(_pair_key(row), []) if row.pids else []
        old = next((o for o in olds if o.exposure != row.exposure and o.key not in paired), None)
        if old is not None:
            paired.add(old.key)
            alert = _alerts(row, old.exposure, ephemeral)
            events.append(
                ListenerEvent(
                    "listener-exposure-changed", row, alert, previous_exposure=old.exposure
                )
            )
            continue
        events.append(ListenerEvent("listener-appeared", row, _alerts(row, None, ephemeral)))
    for row in gone:
        if row.key not in paired:
            events.append(ListenerEvent("listener-disappeared", row))
    return Diff(
        added=tuple(sorted(new, key=_order)),
        removed=tuple(r.key for r in sorted(gone, key=_order)),
        changed=tuple(sorted(changed, key=_order)),
        events=tuple(sorted(events, key=lambda e: _order(e.row))),
    )


def summarize(
    events: tuple[ListenerEvent, ...], limit: int = FLOOD_LIMIT
) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, data)`` to record: every event, or past ``limit`` in one sample (a benchmark
    opening 2,000 sockets) every alert plus one ``listeners-changed`` summary, so a burst
    neither floods the 10,000-row event ring nor hides an exposure."""
    if len(events) <= limit:
        return [(e.kind, e.data()) for e in events]
    counts = {k: sum(1 for e in events if e.kind == k) for k in EVENT_KINDS}
    alerts = [(e.kind, e.data()) for e in events if e.alert]
    message = (
        f"{counts['listener-appeared']} listeners appeared, "
        f"{counts['listener-disappeared']} went away, "
        f"{counts['listener-exposure-changed']} changed exposure"
    )
    summary = {"alert": False, "counts": counts, "message": message}
    return [*alerts, ("listeners-changed", summary)]


def _order(row: ListenerRow) -> tuple[int, str, str, int]:
    return (row.port, row.proto, row.address, row.inode)


# -- the thin edge: sample on a timer ---------------------------------------------------------

Sample = Callable[[], list[ListenerRow]]


def sample_inventory() -> list[ListenerRow]:
    """Every listening TCP/UDP socket with owners, as rows (blocking: run it in a thread)."""
    from homeport.inventory import listeners

    return [listener_row(x) for x in listeners()]


class CachedInventory:
    """``sample_inventory`` that walks ``/proc`` only when it may have something new.

    The owner walk (every fd link of every process) is nearly all of a sample's cost, and
    most samples find the same sockets as the last one. Each call asks the kernel for the
    socket set (one netlink dump, milliseconds); when it equals the last walk's and that walk
    is younger than ``refresh`` seconds, the last rows are returned. A socket that appears,
    goes or changes address is a new inode, so events are as prompt as before; an owner
    that changes under an unchanged socket (a fork, an exit) shows within ``refresh``.
    """

    def __init__(
        self,
        refresh: float = 10.0,
        *,
        socket_keys: Callable[[], frozenset[tuple[str, int]]] | None = None,
        full: Callable[[], list[ListenerRow]] = sample_inventory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh = refresh
        self._socket_keys = socket_keys or _socket_keys
        self._full = full
        self._clock = clock
        self._key: frozenset[tuple[str, int]] | None = None
        self._rows: list[ListenerRow] = []
        self._at = 0.0
        self.walks = 0

    def __call__(self) -> list[ListenerRow]:
        now = self._clock()
        fresh = self._key is not None and now - self._at < self.refresh
        if fresh and self._socket_keys() == self._key:
            return self._rows
        rows = self._full()
        self._rows, self._at, self.walks = rows, now, self.walks + 1
        self._key = frozenset((r.proto, r.inode) for r in rows)
        return rows


def _socket_keys() -> frozenset[tuple[str, int]]:
    from homeport.inventory import sockets

    return frozenset((s.proto, s.inode) for s in sockets())


class Sampler:
    """Samples every ``interval`` seconds while ``watched()`` (a page or ``events -f`` is
    connected), else every ``idle_interval``, and hands each non-empty ``Diff`` to ``on_diff``.
    The owner walk costs tens of milliseconds of a shared core per sample; nobody watching
    is no reason to stop recording events, but is one to sample less often.

    ``run`` is owned by the caller's task group; ``snapshot`` is the last sample, which the
    dashboard serves to a page that has just connected.
    """

    def __init__(
        self,
        on_diff: Callable[[Diff], None],
        *,
        sample: Sample = sample_inventory,
        interval: float = 1.0,
        idle_interval: float = 2.0,
        watched: Callable[[], bool] = lambda: True,
        ephemeral: tuple[int, int] | None = None,
    ) -> None:
        self.idle_interval = idle_interval
        self._watched = watched
        self._wake = asyncio.Event()
        self._on_diff = on_diff
        self._sample = sample
        self.interval = interval
        self.snapshot: Snapshot = {}
        self.samples = 0
        #: How long the last sample took (seconds): the lag a new listener may see on top
        #: of ``interval``.
        self.last_duration = 0.0
        self.ready = asyncio.Event()
        if ephemeral is None:
            from homeport.system import ephemeral_range

            ephemeral = ephemeral_range()
        self._ephemeral = ephemeral

    async def tick(self) -> Diff:
        """One sample; the first one only sets the baseline."""
        started = time.monotonic()
        rows = await asyncio.to_thread(self._sample)
        self.last_duration = time.monotonic() - started
        current = snapshot(rows)
        first = self.samples == 0
        if first:  # the baseline: rows for the pages, no events
            result = Diff(added=tuple(sorted(current.values(), key=_order)))
        else:
            result = diff(self.snapshot, current, self._ephemeral)
        self.snapshot = current
        self.samples += 1
        self.ready.set()
        if result:
            self._on_diff(result)
        return result

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # one failed sample (a /proc race) must not end sampling
                log.exception("inventory sample failed")
            period = self.interval if self._watched() else self.idle_interval
            with contextlib.suppress(TimeoutError):
                # A timer, not a readiness wait: sampling is periodic by design; ``wake``
                # cuts an idle wait short when a watcher arrives.
                await asyncio.wait_for(
                    self._wake.wait(), max(0.05, period - (loop.time() - started))
                )

    def wake(self) -> None:
        """Sample soon: a watcher has just connected (switches to the short interval)."""
        self._wake.set()
