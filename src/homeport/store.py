"""homeport's state in SQLite: routes, services, the access log and events.

The database lives at ``state_dir()/homeport.db`` (mode 0600) in WAL mode, so readers never
block the daemon's writer and a ``kill -9`` loses no committed route. Every write runs in
``BEGIN IMMEDIATE`` with a busy timeout, which makes two CLI processes and the daemon safe to
use it at once (SQLite serialises the writers; https://www.sqlite.org/wal.html).

The access log is a bounded ring: after each batch, rows older than the newest ``capacity``
are deleted. ``AccessWriter`` takes records from the proxy's hot path with one ``deque.append``
and writes them in batches from its own thread.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n to n+1.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from homeport.errors import EnvironmentProblem
from homeport.gateway.contract import AccessRecord, AuthMode, Route
from homeport.paths import DB_NAME as DB_NAME
from homeport.paths import db_path as db_path

log = logging.getLogger("homeport.store")

#: The issue asks for at least 100,000 rows of access log.
DEFAULT_ACCESS_CAPACITY = 100_000

ServiceState = Literal["starting", "running", "exited", "stopped", "reaped", "lost"]

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE routes (
        name TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        wildcard INTEGER NOT NULL DEFAULT 0,
        auth TEXT NOT NULL DEFAULT 'none',
        secret TEXT,
        same_origin INTEGER NOT NULL DEFAULT 0,
        allow_hosts TEXT NOT NULL DEFAULT '[]',
        service_id TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE services (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        cmd TEXT NOT NULL,
        cwd TEXT NOT NULL,
        port INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        pgid INTEGER NOT NULL,
        pid_start REAL,
        owner_pid INTEGER NOT NULL,
        owner_start REAL,
        state TEXT NOT NULL,
        exit_code INTEGER,
        started REAL NOT NULL,
        stopped REAL
    );
    CREATE INDEX services_state ON services(state);
    CREATE TABLE access (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        client_addr TEXT NOT NULL,
        client_port INTEGER NOT NULL,
        host TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        bytes_in INTEGER NOT NULL,
        bytes_out INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        route TEXT,
        reason TEXT,
        external INTEGER NOT NULL
    );
    CREATE INDEX access_route ON access(route, id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    """,
    # 1 -> 2: cross-site refusal on by default (issue 16). Routes that existed without
    # --same-origin are protected from now on; a one-time notice in `status` names them.
    """
    ALTER TABLE routes ADD COLUMN allow_cross_site INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE routes ADD COLUMN allow_origins TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE notices (key TEXT PRIMARY KEY, data TEXT NOT NULL);
    INSERT INTO notices (key, data)
        SELECT 'cross-site-default', group_concat(name, ' ') FROM routes
        WHERE same_origin = 0 HAVING count(*) > 0
    """,
    # 2 -> 3: projects (issue 10): the stack a daemon runs and each service's process, so a
    # restarted daemon knows what it ran and adopts what still runs (PID + start time).
    """
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE project_units (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (project, name)
    );
    """,
    # 3 -> 4: routes may opt in to forwarding field names with "_" (issue 9).
    """
    ALTER TABLE routes ADD COLUMN allow_underscores INTEGER NOT NULL DEFAULT 0;
    """,
    # 4 -> 5: the client's protocol and whether it came over TLS (issue 12: https and h2).
    """
    ALTER TABLE access ADD COLUMN protocol TEXT NOT NULL DEFAULT 'http/1.1';
    ALTER TABLE access ADD COLUMN tls INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """A process ``homeport run`` started and the daemon supervises."""

    id: str
    name: str
    cmd: tuple[str, ...]
    cwd: str
    port: int
    pid: int
    pgid: int
    owner_pid: int
    state: ServiceState
    started: float
    pid_start: float | None = None
    owner_start: float | None = None
    exit_code: int | None = None
    stopped: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cmd"] = list(self.cmd)
        return data


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One stored access-log row: the record and its position in the ring."""

    id: int
    record: AccessRecord

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.record._asdict()}


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    time: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "kind": self.kind, "data": self.data}


class Store:
    """One connection to the state database. Not shared between threads: open one per thread."""

    def __init__(self, path: Path | None = None, *, access_capacity: int = DEFAULT_ACCESS_CAPACITY):
        self.path = path or db_path()
        self.access_capacity = access_capacity
        self._conn = _connect(self.path)
        _migrate(self._conn)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise EnvironmentProblem(f"state database {self.path} is busy: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.rollback()
            raise
        self._conn.commit()

    # -- routes --------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        rows = self._conn.execute("SELECT * FROM routes ORDER BY name").fetchall()
        return [_route_from_row(r) for r in rows]

    def route(self, name: str) -> Route | None:
        row = self._conn.execute("SELECT * FROM routes WHERE name = ?", (name,)).fetchone()
        return _route_from_row(row) if row else None

    def put_route(self, route: Route) -> bool:
        """Insert or replace; True when the name was new."""
        with self._write() as c:
            existed = c.execute("SELECT 1 FROM routes WHERE name = ?", (route.name,)).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO routes (name, target, wildcard, auth, secret, "
                "same_origin, allow_hosts, service_id, created, allow_cross_site, "
                "allow_origins, allow_underscores) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (route.name, route.target, int(route.wildcard), route.auth, route.secret,
                 int(route.same_origin), json.dumps(list(route.allow_hosts)), route.service_id,
                 time.time(), int(route.allow_cross_site), json.dumps(list(route.allow_origins)),
                 int(route.allow_underscores)),
            )  # fmt: skip
        return existed is None

    def take_notices(self) -> dict[str, str]:
        """The one-time notices an upgrade left (key -> data), removed as they are read."""
        with self._write() as c:
            rows = c.execute("SELECT key, data FROM notices").fetchall()
            c.execute("DELETE FROM notices")
        return {r["key"]: r["data"] for r in rows}

    def remove_route(self, name: str) -> bool:
        with self._write() as c:
            return c.execute("DELETE FROM routes WHERE name = ?", (name,)).rowcount > 0

    # -- services ------------------------------------------------------------------------

    def put_service(self, svc: ServiceRecord) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO services VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (svc.id, svc.name, json.dumps(list(svc.cmd)), svc.cwd, svc.port, svc.pid,
                 svc.pgid, svc.pid_start, svc.owner_pid, svc.owner_start, svc.state,
                 svc.exit_code, svc.started, svc.stopped),
            )  # fmt: skip

    def service(self, service_id: str) -> ServiceRecord | None:
        row = self._conn.execute("SELECT * FROM services WHERE id = ?", (service_id,)).fetchone()
        return _service_from_row(row) if row else None

    def services(self, *, live_only: bool = False) -> list[ServiceRecord]:
        sql = "SELECT * FROM services"
        if live_only:
            sql += " WHERE state IN ('starting', 'running')"
        rows = self._conn.execute(sql + " ORDER BY started").fetchall()
        return [_service_from_row(r) for r in rows]

    def finish_service(self, service_id: str, state: ServiceState, exit_code: int | None) -> None:
        """Mark a service ended and drop the routes that pointed at it, in one transaction."""
        with self._write() as c:
            c.execute(
                "UPDATE services SET state = ?, exit_code = ?, stopped = ? WHERE id = ?",
                (state, exit_code, time.time(), service_id),
            )
            c.execute("DELETE FROM routes WHERE service_id = ?", (service_id,))

    def prune_services(self, keep: int = 200) -> None:
        """Forget all but the newest ``keep`` ended services."""
        with self._write() as c:
            c.execute(
                "DELETE FROM services WHERE state NOT IN ('starting', 'running') AND id NOT IN "
                "(SELECT id FROM services ORDER BY started DESC LIMIT ?)",
                (keep,),
            )

    # -- projects --------------------------------------------------------------------------
    # Each row is one JSON document (the supervisor's own records): the supervisor is the only
    # writer and reads them back whole, only at start-up.

    def put_project(self, project_id: str, data: dict[str, Any]) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO projects VALUES (?,?,?)",
                (project_id, json.dumps(data), time.time()),
            )

    def put_unit(self, project_id: str, name: str, data: dict[str, Any]) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO project_units VALUES (?,?,?)",
                (project_id, name, json.dumps(data)),
            )

    def remove_project(self, project_id: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM project_units WHERE project = ?", (project_id,))
            c.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    def projects(self) -> list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]]:
        """(id, project data, {unit name: unit data}) for every stored project."""
        out = []
        for row in self._conn.execute("SELECT * FROM projects ORDER BY created").fetchall():
            units = self._conn.execute(
                "SELECT name, data FROM project_units WHERE project = ?", (row["id"],)
            ).fetchall()
            out.append(
                (
                    row["id"],
                    json.loads(row["data"]),
                    {u["name"]: json.loads(u["data"]) for u in units},
                )
            )
        return out

    # -- access log ----------------------------------------------------------------------

    def append_access(self, records: Sequence[AccessRecord]) -> None:
        """Write one batch in one transaction, then trim the ring to ``access_capacity``."""
        if not records:
            return
        with self._write() as c:
            c.executemany(
                "INSERT INTO access (time, client_addr, client_port, host, method, path, status,"
                " bytes_in, bytes_out, duration_ms, route, reason, external, protocol, tls)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                # An AccessRecord is a tuple in the columns' order (``external`` and ``tls``
                # bools, which SQLite stores as 0/1): bound as it is, with no Python per row
                # on the writer's thread, whose every bytecode competes with the event loop
                # for the GIL.
                records,
            )
            last = c.execute("SELECT max(id) FROM access").fetchone()[0]
            c.execute("DELETE FROM access WHERE id <= ?", (last - self.access_capacity,))

    def access(
        self,
        *,
        limit: int = 100,
        route: str | None = None,
        after: int | None = None,
        skip_reason: str | None = None,
    ) -> list[AccessEntry]:
        """The newest ``limit`` rows (oldest first), or with ``after`` the rows past that id.
        ``skip_reason`` leaves out rows with that reason (``control``: the gateway's own API)."""
        where: list[str] = []
        params: list[Any] = []
        if skip_reason is not None:
            where.append("(reason IS NULL OR reason != ?)")
            params.append(skip_reason)
        if route is not None:
            where.append("route = ?")
            params.append(route)
        if after is not None:
            where.append("id > ?")
            params.append(after)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = "ASC" if after is not None else "DESC"
        rows = self._conn.execute(
            f"SELECT * FROM access{clause} ORDER BY id {order} LIMIT ?", (*params, limit)
        ).fetchall()
        entries = [_access_from_row(r) for r in rows]
        return entries if after is not None else entries[::-1]

    def access_counts(self, *, after: int) -> tuple[int, dict[str | None, int]]:
        """(newest id, {route: rows}) of the rows past ``after``: one aggregate over the id
        index, no row objects (the dashboard's rates while nobody watches)."""
        rows = self._conn.execute(
            "SELECT route, count(*), max(id) FROM access WHERE id > ? GROUP BY route", (after,)
        ).fetchall()
        last = max((int(r[2]) for r in rows), default=after)
        return last, {r[0]: int(r[1]) for r in rows}

    def access_count(self) -> int:
        """Rows in the ring. Its ids are contiguous (rows are only ever trimmed from the
        oldest end), so two index lookups give the count: ``count(*)`` walked all 100,000
        rows, ~4 ms on the daemon's loop for every ``status`` call."""
        row = self._conn.execute(
            "SELECT (SELECT max(id) FROM access) - (SELECT min(id) FROM access) + 1"
        ).fetchone()
        return int(row[0] or 0)

    # -- events --------------------------------------------------------------------------

    def add_event(self, kind: str, data: dict[str, Any]) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO events (time, kind, data) VALUES (?,?,?)",
                (time.time(), kind, json.dumps(data)),
            )
            c.execute("DELETE FROM events WHERE id <= ?", ((cur.lastrowid or 0) - 10_000,))
            return int(cur.lastrowid or 0)

    def events(self, *, after: int = 0, limit: int = 100) -> list[Event]:
        rows = self._conn.execute(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()
        return [Event(r["id"], r["time"], r["kind"], json.loads(r["data"])) for r in rows]


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Create the file 0600 before SQLite does (it would honour the umask, often 0644):
    # route secrets live in it.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    try:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against a process crash (kill -9); only a power
        # loss may drop the last transactions (https://www.sqlite.org/pragma.html#pragma_synchronous).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        raise EnvironmentProblem(f"cannot open state database {path}: {exc}") from exc
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise EnvironmentProblem(
                f"state database has schema {version}, newer than this homeport ({SCHEMA_VERSION})",
                hint="upgrade homeport, or move the state directory away",
            )
        for step in MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _route_from_row(r: sqlite3.Row) -> Route:
    return Route(
        name=r["name"],
        target=r["target"],
        wildcard=bool(r["wildcard"]),
        auth=cast(AuthMode, r["auth"]),
        secret=r["secret"],
        same_origin=bool(r["same_origin"]),
        allow_hosts=tuple(json.loads(r["allow_hosts"])),
        service_id=r["service_id"],
        allow_cross_site=bool(r["allow_cross_site"]),
        allow_origins=tuple(json.loads(r["allow_origins"])),
        allow_underscores=bool(r["allow_underscores"]),
    )


def _service_from_row(r: sqlite3.Row) -> ServiceRecord:
    return ServiceRecord(
        id=r["id"], name=r["name"], cmd=tuple(json.loads(r["cmd"])), cwd=r["cwd"],
        port=r["port"], pid=r["pid"], pgid=r["pgid"], owner_pid=r["owner_pid"],
        state=cast(ServiceState, r["state"]), started=r["started"], pid_start=r["pid_start"],
        owner_start=r["owner_start"], exit_code=r["exit_code"], stopped=r["stopped"],
    )  # fmt: skip


def _access_from_row(r: sqlite3.Row) -> AccessEntry:
    rec = AccessRecord(
        time=r["time"], client_addr=r["client_addr"], client_port=r["client_port"],
        host=r["host"], method=r["method"], path=r["path"], status=r["status"],
        bytes_in=r["bytes_in"], bytes_out=r["bytes_out"], duration_ms=r["duration_ms"],
        route=r["route"], reason=r["reason"], external=bool(r["external"]),
        protocol=r["protocol"], tls=bool(r["tls"]),
    )  # fmt: skip
    return AccessEntry(r["id"], rec)


class AccessWriter:
    """Batches access records into the store from a thread of its own.

    ``sink`` is the ``AccessSink`` handed to the proxy: one ``deque.append`` (atomic under the
    GIL), no lock, no I/O. If the writer falls more than ``backlog`` records behind, the oldest
    pending records are dropped and counted rather than growing memory without bound.

    The thread sleeps until there is something to write: the first record into an empty
    queue wakes it (one ``Event.set`` per batch, not per record), it waits ``interval`` for
    the batch to fill, writes, and sleeps again. A timer every ``interval`` instead woke an
    idle daemon 5 times a second for nothing (issue 9: <= 2 wakeups a second when idle).
    """

    def __init__(self, path: Path, *, capacity: int = DEFAULT_ACCESS_CAPACITY,
                 interval: float = 0.2, backlog: int = 50_000,
                 store_rows: bool = True) -> None:  # fmt: skip
        self._path = path
        #: False with ``--no-access-log``: batches still reach ``on_batch`` (the metrics).
        self._store_rows = store_rows
        self._capacity = capacity
        self._interval = interval
        self._pending: collections.deque[AccessRecord] = collections.deque(maxlen=backlog)
        self._received = 0
        self.written = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="homeport-access", daemon=True)
        #: Called from the writer's thread after rows were committed (the dashboard's nudge).
        self.on_written: Callable[[], None] | None = None
        #: Called from the writer's thread with each batch before it is stored: requests are
        #: counted here, a batch at a time, never on the proxy's per-request path.
        self.on_batch: Callable[[Sequence[AccessRecord]], None] | None = None

    def start(self) -> None:
        self._thread.start()

    def sink(self, record: AccessRecord) -> None:
        pending = self._pending
        if not pending:
            pending.append(record)
            self._wake.set()  # empty -> not empty: once per batch
        else:
            pending.append(record)
        self._received += 1

    @property
    def dropped(self) -> int:
        return self._received - self.written - len(self._pending)

    def close(self) -> None:
        """Stop the thread after a final flush."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        store = Store(self._path, access_capacity=self._capacity)
        try:
            while not self._stop.is_set():
                self._wake.wait()
                # Cleared before the batch is taken: a record that arrives after this sets
                # it again, and one that arrived before is in this batch.
                self._wake.clear()
                self._stop.wait(self._interval)  # let the batch fill (or stop now)
                self._flush(store)
            self._flush(store)
        finally:
            store.close()

    def _flush(self, store: Store) -> None:
        before = self.written
        self._write_pending(store)
        if self.written != before and self.on_written is not None:
            self.on_written()

    def _write_pending(self, store: Store) -> None:
        while self._pending:
            batch: list[AccessRecord] = []
            while self._pending and len(batch) < 5000:
                batch.append(self._pending.popleft())
            if self.on_batch is not None:
                try:
                    self.on_batch(batch)
                except Exception:  # a metrics bug must not lose the access log
                    log.exception("the access batch hook failed")
            try:
                if self._store_rows:
                    store.append_access(batch)
                self.written += len(batch)
            except Exception:  # a full disk must not kill the daemon: log, count, go on
                log.exception("could not write %d access records", len(batch))
