"""homeport's state in SQLite: routes, services, the access log and events.

The database lives at ``state_dir()/homeport.db`` (mode 0600) in WAL mode, so readers never
block the daemon's writer and a ``kill -9`` loses no committed route. Every write runs in
``BEGIN IMMEDIATE`` with a busy timeout, which makes two CLI processes and the daemon safe to
use it at once (SQLite serialises the writers; https://www.sqlite.org/wal.html).

The access log is a bounded ring of records kept in batches: one row of ``access_batches``
holds up to ``ACCESS_BATCH`` consecutive records (ids ``first`` .. ``first + n - 1``) as one
zlib-compressed marshal blob, and after each write records older than the newest ``capacity``
are trimmed.
``AccessWriter`` takes records from the proxy's hot path with one ``deque.append``, encodes
them in small batches on one thread and commits them on another, at a lower priority.
(A row per record with its route index cost 6.8 µs of the gateway's core per request; a
blob per batch ~0.9 µs: docs/design-notes.md, issue 9.)

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n to n+1.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import marshal
import operator
import os
import sqlite3
import threading
import time
import zlib
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

#: The most records one ``access_batches`` row holds. Bounds the GIL-held C stretches of
#: encoding one row (marshal, ~0.45 ms for 1,000) and of decoding one for a reader in the
#: daemon (the dashboard), each a pause of the event loop; 100 rows make the 100,000 ring.
ACCESS_BATCH = 1000
#: ``marshal`` format of the blobs: readable by every CPython since 3.4 for the plain types a
#: record holds (str, int, float, bool, None). A blob that fails to decode is skipped, logged.
_MARSHAL_VERSION = 4
#: zlib level of the blobs (schema 8). A batch's records repeat their host, path, client and
#: route: level 1 takes 73 bytes a record to ~15, for ~0.15 µs a record where the chunk is
#: encoded (``AccessWriter.sink``), and the commit, whose SQLite CPU runs on the gateway's
#: core as one stretch, takes 0.13 µs a record instead of 0.40 (its share of the small
#: keep-alive p99: bench/README.md, "Seventh session").
_ZLIB_LEVEL = 1

MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
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
    # 5 -> 6: the access ring in batches of records, not a row (and an index entry) per
    # record (issue 9); the existing rows move over with their ids.
    lambda conn: _access_rows_to_batches(conn),
    # 6 -> 7: the blobs in a table of their own. Trimming the ring updates the oldest batch's
    # ``skip`` on every flush once it is full, and SQLite rewrites a whole row on UPDATE: with
    # the blob in it, ~80 KB of overflow pages a flush, as much CPU as encoding the batch.
    lambda conn: _split_access_blobs(conn),
    # 7 -> 8: the blobs zlib-compressed (``_ZLIB_LEVEL``), the existing ones too.
    lambda conn: _compress_access_blobs(conn),
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
        """Write one batch in one transaction (a row per ``ACCESS_BATCH`` records), then trim
        the ring to ``access_capacity``."""
        self.append_encoded(
            [
                (len(chunk), *_encode_batch(chunk))
                for chunk in (
                    records[at : at + ACCESS_BATCH] for at in range(0, len(records), ACCESS_BATCH)
                )
            ]
        )

    def append_encoded(self, batches: Sequence[EncodedBatch]) -> None:
        """Write batches already encoded (``_encode_batch``: the access writer encodes on one
        thread and commits on another) in one transaction, ids following the newest, then
        trim the ring to ``access_capacity``."""
        if not batches:
            return
        with self._write() as c:
            row = c.execute(
                "SELECT first + n FROM access_batches ORDER BY first DESC LIMIT 1"
            ).fetchone()
            start = int(row[0]) if row else 1
            # Each batch starts where the one before ends; the last "start" is the next id.
            starts = list(itertools.accumulate((n for n, _, _ in batches), initial=start))
            rows = list(zip(starts[:-1], batches, strict=True))
            c.executemany(
                "INSERT INTO access_batches (first, n, routes) VALUES (?,?,?)",
                [(first, n, routes) for first, (n, routes, _) in rows],
            )
            c.executemany(
                "INSERT INTO access_blobs (first, records) VALUES (?,?)",
                [(first, blob) for first, (_, _, blob) in rows],
            )
            _trim_access(c, floor=starts[-1] - 1 - self.access_capacity)

    def access(
        self,
        *,
        limit: int = 100,
        route: str | None = None,
        after: int | None = None,
        skip_reason: str | None = None,
    ) -> list[AccessEntry]:
        """The newest ``limit`` rows (oldest first), or with ``after`` the rows past that id.
        ``skip_reason`` leaves out rows with that reason (``control``: the gateway's own API).

        Batches are read newest first (oldest first with ``after``) and decoded only until
        ``limit`` records matched; a batch whose routes do not include ``route`` is not
        decoded at all."""
        if after is None:
            rows: Iterator[sqlite3.Row] = self._conn.execute(
                "SELECT first, skip, routes FROM access_batches ORDER BY first DESC"
            )
        else:
            # A batch ending past ``after``; ``first > after - ACCESS_BATCH`` lets the
            # primary key narrow the scan, the second test is the exact one.
            rows = self._conn.execute(
                "SELECT first, skip, routes FROM access_batches"
                " WHERE first > ? AND first + n - 1 > ? ORDER BY first",
                (after - ACCESS_BATCH, after),
            )
        out: list[AccessEntry] = []
        for first, skip, routes in rows:
            if route is not None and route not in _batch_routes(routes):
                continue
            records = self._batch_records(first)
            pairs = list(enumerate(records, first))[skip:]  # (id, record), the kept ones
            if after is None:
                pairs.reverse()  # newest first, until ``limit``
            for rid, rec in pairs:
                if after is not None and rid <= after:
                    continue
                if route is not None and rec[10] != route:
                    continue
                if skip_reason is not None and rec[11] == skip_reason:
                    continue
                out.append(AccessEntry(rid, AccessRecord._make(rec)))
                if len(out) >= limit:
                    return out if after is not None else out[::-1]
        return out if after is not None else out[::-1]

    def access_counts(self, *, after: int) -> tuple[int, dict[str | None, int]]:
        """(newest id, {route: rows}) of the rows past ``after`` (the dashboard's rates while
        nobody watches): the per-batch route counts, decoding only a batch that ``after``
        falls inside of (or the oldest, partly trimmed)."""
        rows = self._conn.execute(
            "SELECT first, n, skip, routes FROM access_batches"
            " WHERE first > ? AND first + n - 1 > ? ORDER BY first",
            (after - ACCESS_BATCH, after),
        ).fetchall()
        last = after
        counts: dict[str | None, int] = {}
        for first, n, skip, routes in rows:
            last = max(last, first + n - 1)
            if skip == 0 and first > after:  # the whole batch counts: its route counts do
                for name, k in _batch_routes(routes).items():
                    counts[name] = counts.get(name, 0) + k
                continue
            for rec in self._batch_records(first)[max(after + 1, first + skip) - first :]:
                counts[rec[10]] = counts.get(rec[10], 0) + 1
        return last, counts

    def _batch_records(self, first: int) -> list[tuple[Any, ...]]:
        """The records of the batch starting at ``first``; none if it was trimmed since its
        ``access_batches`` row was read (each statement reads its own snapshot)."""
        row = self._conn.execute(
            "SELECT records FROM access_blobs WHERE first = ?", (first,)
        ).fetchone()
        return [] if row is None else _decode_batch(row[0], first)

    def access_count(self) -> int:
        """Records in the ring: its ids are contiguous (records are only ever trimmed from
        the oldest end), so the newest and the oldest batch give the count."""
        row = self._conn.execute(
            "SELECT (SELECT first + n FROM access_batches ORDER BY first DESC LIMIT 1)"
            " - (SELECT first + skip FROM access_batches ORDER BY first LIMIT 1)"
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
            if callable(step):
                step(conn)
                continue
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


#: An AccessRecord's route, by position.
_ROUTE = operator.itemgetter(10)
#: One access batch ready to store: (records in it, ``routes`` JSON, the marshal blob).
EncodedBatch = tuple[int, str, bytes]


def _encode_batch(records: Sequence[AccessRecord]) -> tuple[str, bytes]:
    """``routes`` as JSON ``[[route, count], ...]`` (so a route filter or a rate skips a batch
    without decoding it) and the blob: the records as plain tuples in ``AccessRecord``'s field
    order (marshal takes no NamedTuple), compressed."""
    routes, blob = _marshal_batch(records)
    return routes, zlib.compress(blob, _ZLIB_LEVEL)


def _marshal_batch(records: Sequence[AccessRecord]) -> tuple[str, bytes]:
    """``_encode_batch`` without the compression: the blobs of schemas 6 and 7."""
    routes = json.dumps(list(collections.Counter(map(_ROUTE, records)).items()))
    return routes, marshal.dumps(list(map(tuple, records)), _MARSHAL_VERSION)


def _batch_routes(routes: str) -> dict[str | None, int]:
    return {name: int(k) for name, k in json.loads(routes)}


def _decode_batch(blob: bytes, first: int) -> list[tuple[Any, ...]]:
    try:
        records = marshal.loads(zlib.decompress(blob))
    except (zlib.error, ValueError, EOFError, TypeError):
        log.warning("access log batch %d could not be read; skipped", first)
        return []
    return cast(list[tuple[Any, ...]], records)


def _trim_access(c: sqlite3.Connection, *, floor: int) -> None:
    """Drop the records with ids up to ``floor``: whole batches below it, and the leading
    ``skip`` records of the one it falls inside."""
    if floor < 1:
        return
    gone = "first <= ? AND first + n - 1 <= ?"
    c.execute(
        f"DELETE FROM access_blobs WHERE first IN (SELECT first FROM access_batches WHERE {gone})",
        (floor, floor),
    )
    c.execute(f"DELETE FROM access_batches WHERE {gone}", (floor, floor))
    c.execute(
        "UPDATE access_batches SET skip = ? - first + 1 WHERE first <= ? AND first + skip <= ?",
        (floor, floor, floor),
    )


def _access_rows_to_batches(conn: sqlite3.Connection) -> None:
    """Migration 5 -> 6: the row-per-record ``access`` table into ``access_batches``, ids
    kept (a new batch starts at any gap, so ``first + i`` stays each record's id)."""
    conn.execute(
        """CREATE TABLE access_batches (
            first INTEGER PRIMARY KEY,
            n INTEGER NOT NULL,
            skip INTEGER NOT NULL DEFAULT 0,
            routes TEXT NOT NULL,
            records BLOB NOT NULL
        )"""
    )
    cur = conn.execute(
        "SELECT id, time, client_addr, client_port, host, method, path, status, bytes_in,"
        " bytes_out, duration_ms, route, reason, external, protocol, tls FROM access ORDER BY id"
    )
    chunk: list[AccessRecord] = []
    first = 0

    def insert(first: int, records: list[AccessRecord]) -> None:  # the schema-6 layout
        routes, blob = _marshal_batch(records)
        conn.execute(
            "INSERT INTO access_batches (first, n, routes, records) VALUES (?,?,?,?)",
            (first, len(records), routes, blob),
        )

    for row in cur:  # streamed: a 100,000-row log is not held in memory at once
        rid, fields = row[0], row[1:]
        if chunk and (rid != first + len(chunk) or len(chunk) >= ACCESS_BATCH):
            insert(first, chunk)
            chunk = []
        if not chunk:
            first = rid
        rec = list(fields)
        rec[12], rec[14] = bool(rec[12]), bool(rec[14])  # external, tls: stored as 0/1
        chunk.append(AccessRecord._make(rec))
    if chunk:
        insert(first, chunk)
    conn.execute("DROP TABLE access")


def _split_access_blobs(conn: sqlite3.Connection) -> None:
    """Migration 6 -> 7: ``access_batches.records`` into ``access_blobs`` (a copy and a
    rename: ``DROP COLUMN`` needs SQLite 3.35)."""
    for sql in (
        "CREATE TABLE access_blobs (first INTEGER PRIMARY KEY, records BLOB NOT NULL)",
        "INSERT INTO access_blobs (first, records) SELECT first, records FROM access_batches",
        """CREATE TABLE access_batches_7 (
            first INTEGER PRIMARY KEY,
            n INTEGER NOT NULL,
            skip INTEGER NOT NULL DEFAULT 0,
            routes TEXT NOT NULL
        )""",
        "INSERT INTO access_batches_7 (first, n, skip, routes)"
        " SELECT first, n, skip, routes FROM access_batches",
        "DROP TABLE access_batches",
        "ALTER TABLE access_batches_7 RENAME TO access_batches",
    ):
        conn.execute(sql)


def _compress_access_blobs(conn: sqlite3.Connection) -> None:
    """Migration 7 -> 8: every blob compressed, one row at a time (a full ring is ~7 MB)."""
    firsts = [r[0] for r in conn.execute("SELECT first FROM access_blobs")]
    for first in firsts:
        (blob,) = conn.execute(
            "SELECT records FROM access_blobs WHERE first = ?", (first,)
        ).fetchone()
        conn.execute(
            "UPDATE access_blobs SET records = ? WHERE first = ?",
            (zlib.compress(blob, _ZLIB_LEVEL), first),
        )


#: Records the sink encodes at a time, on the proxy's thread (``AccessWriter``).
ACCESS_CHUNK = 128


class AccessWriter:
    """Takes access records off the proxy's hot path and stores them.

    ``sink`` is the ``AccessSink`` handed to the proxy. Records queue up (``deque.append``,
    no I/O), and every ``chunk``-th one makes the sink fold that chunk into the metrics
    (``on_batch``) and encode it (``_encode_batch``: marshal, then zlib) right there, on the
    proxy's thread: ~60 µs for 128 records, while they are still in the cache. One **writer**
    thread at nice 10 (``COMMIT_NICE``) commits what was encoded to SQLite, one transaction
    at most every ``commit_interval``, and takes the tail no chunk filled once records stop
    coming in chunks (within two rounds; at ``close`` everything).

    Why the proxy's thread and not a thread of its own (issue 9; docs/design-notes.md,
    "The access log in batches"): on a core the event loop keeps busy, a thread's every
    wake-up is a fight for the GIL. An encoder thread woken every 5 ms switched ~4.6 times a
    wake-up (4,607 voluntary and the loop 4,843 involuntary switches in 5 s of wrk), and
    paid ~2.1 µs a record, against ~0.5 hot, in stretches the loop waited out. Encoding in
    the sink costs the same few hundred nanoseconds a record on every request, so no
    request waits for a long stretch. SQLite stays off the loop (it may wait on a busy
    database or a slow disk); commits are 50 ms apart because each has a fixed WAL cost; at
    nice 10 the loop keeps ~90% of a contended core, and the commits, which need ~1%, keep up
    (not nice 19: at 1.4% of a saturated core they fell behind and dropped records).

    If the commits fall more than ``backlog`` records behind, the oldest encoded batches are
    dropped and counted (``dropped``) rather than growing memory without bound.
    """

    def __init__(self, path: Path, *, capacity: int = DEFAULT_ACCESS_CAPACITY,
                 chunk: int = ACCESS_CHUNK, commit_interval: float = 0.05,
                 backlog: int = 50_000, store_rows: bool = True) -> None:  # fmt: skip
        self._path = path
        #: False with ``--no-access-log``: batches still reach ``on_batch`` (the metrics).
        self._store_rows = store_rows
        self._capacity = capacity
        self._chunk = max(1, min(chunk, backlog, ACCESS_BATCH))
        self._commit_interval = commit_interval
        self._backlog = backlog
        self._pending: collections.deque[AccessRecord] = collections.deque(maxlen=backlog)
        #: Encoded, not yet committed; ``_encode`` appends, the writer pops.
        self._encoded: collections.deque[EncodedBatch] = collections.deque()
        #: Held while records are taken, folded and encoded (by the sink, a chunk, or by the
        #: writer, the tail): batches keep the records' order and the metrics see each once.
        self._taking = threading.Lock()
        #: Chunks the sink has encoded; while it goes up, the writer leaves the tail to it.
        self._chunks = 0
        #: The writer is awake or woken: the sink need not wake it.
        self._armed = False
        # Counters: received by the sink; taken and lost encoding under ``_taking``; written
        # and lost writing by the writer (with ``store_rows`` off, written under ``_taking``).
        self._received = 0
        self._taken = 0
        self._lost_encoding = 0
        self._lost_writing = 0
        self.written = 0
        self._reported = 0  # ``written`` as of the last ``on_written``
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._run, name="homeport-access", daemon=True)
        #: Called from the writer's thread after a round stored rows (the dashboard's nudge);
        #: with ``store_rows`` off, after a round that counted some.
        self.on_written: Callable[[], None] | None = None
        #: Called with each batch before it is stored, from whichever thread takes it (the
        #: sink's or the writer's, one at a time): requests are counted here, a batch at a
        #: time, never per request.
        self.on_batch: Callable[[Sequence[AccessRecord]], None] | None = None

    def start(self) -> None:
        self._writer.start()

    def sink(self, record: AccessRecord) -> None:
        pending = self._pending
        pending.append(record)
        self._received += 1
        if len(pending) >= self._chunk:
            self._chunks += 1
            self._encode(self._chunk)
        if not self._armed:  # the writer sleeps: wake it (once per busy spell, not per record)
            self._armed = True
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Records received that will never be stored: pushed out of a full queue, or lost
        encoding or writing (logged). Read in this order, a record moving between the queue
        and a batch is never counted twice."""
        queued = len(self._pending)
        overflowed = self._received - self._taken - queued
        return max(0, overflowed) + self._lost_encoding + self._lost_writing

    def close(self) -> None:
        """Stop the writer after a final flush: what was sunk before is stored."""
        self._stop.set()
        self._wake.set()
        if self._writer.is_alive():
            self._writer.join(timeout=10)

    def _encode(self, most: int) -> None:
        """Take up to ``most`` queued records, hand them to ``on_batch`` and encode them."""
        with self._taking:
            pending = self._pending
            take = min(len(pending), most)
            if not take:
                return
            # ``popleft`` called by ``starmap`` inside ``list``: one C loop, no bytecode per
            # record (a Python loop here was ~0.17 µs a record).
            batch = list(itertools.starmap(pending.popleft, itertools.repeat((), take)))
            self._taken += take
            if self.on_batch is not None:
                try:
                    self.on_batch(batch)
                except Exception:  # a metrics bug must not lose the access log
                    log.exception("the access batch hook failed")
            if not self._store_rows:
                self.written += take
                return
            try:
                self._encoded.append((take, *_encode_batch(batch)))
            except Exception:
                log.exception("could not encode %d access records", take)
                self._lost_encoding += take
                return
            self._shed_backlog()

    def _shed_backlog(self) -> None:
        """Drop the oldest encoded batches while more than ``backlog`` records wait for the
        writer (a disk that stalls, a database another process holds)."""
        while self._taken - self._lost_encoding - self.written - self._lost_writing > (
            self._backlog
        ):
            try:
                n, _, _ = self._encoded.popleft()
            except IndexError:  # the writer took it meanwhile
                return
            self._lost_encoding += n

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        lower_thread_priority()
        store: Store | None = None
        try:
            while True:
                self._wake.wait()
                # Cleared before the round: a sink that arms the writer after this wakes
                # the next round, and what it queued before is in this one.
                self._wake.clear()
                chunks = self._chunks
                self._stop.wait(self._commit_interval)  # gather a round (or stop now)
                stopping = self._stop.is_set()
                if stopping or self._chunks == chunks:
                    # No chunk came this round: records trickle in, or stopped. The tail.
                    while self._pending:
                        self._encode(ACCESS_BATCH)
                store = self._commit_encoded(store)
                if self.written != self._reported:
                    self._reported = self.written
                    if self.on_written is not None:
                        self.on_written()
                if stopping:
                    return
                self._rest()
        finally:
            if store is not None:
                store.close()

    def _rest(self) -> None:
        """After a round: go to sleep when nothing is left, else arrange another round."""
        if self._pending or self._encoded:
            self._wake.set()
            return
        self._armed = False
        # A record sunk between the test above and the line before saw the writer armed
        # and did not wake it: look again, now that any later one will.
        if self._pending or self._encoded:
            self._armed = True
            self._wake.set()

    def _commit_encoded(self, store: Store | None) -> Store | None:
        """Write what was encoded in one transaction. Returns the store, opened on first
        use: a database that cannot be opened yet (another process holding it past the busy
        timeout, an unwritable state dir) costs the records of that round, logged and
        counted, and the next round tries again; it does not end the thread."""
        encoded = self._encoded
        batches = list(itertools.starmap(encoded.popleft, itertools.repeat((), len(encoded))))
        if not batches:
            return store
        n = sum(b[0] for b in batches)
        try:
            if store is None:
                store = Store(self._path, access_capacity=self._capacity)
            store.append_encoded(batches)
        except Exception:  # a full disk must not kill the daemon: log, count, go on
            log.exception("could not write %d access records", n)
            self._lost_writing += n
            return store
        self.written += n
        return store


#: The access writer thread's nice value (it commits). Its share of a core the event loop
#: keeps busy is its CFS weight against the loop's: nice 10 is 110/1134, ~10%, for commits
#: that need ~2% at 30k req/s. At nice 19 (15/1039, ~1.4%) they fell behind on a saturated
#: core and 77,091 of 1.27M records were dropped in 4 runs of 10 s, at the same p99 as nice
#: 10 (3.73 vs 3.62 ms): bench/README.md, "The committer at nice 10".
COMMIT_NICE = 10


def lower_thread_priority(nice: int = COMMIT_NICE) -> None:
    """Lower the calling thread's CPU priority to ``nice`` (Linux's ``setpriority`` takes
    a thread id), never raise it (a daemon started with ``nice 15`` stays there);
    elsewhere, or when not allowed, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
