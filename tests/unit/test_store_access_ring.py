"""The access ring kept in batches (issue 9): every read answers as a list of rows would.

The model is the plain list of (id, record) the ring stands for: the newest ``capacity``
records, ids counting from 1. Batches are made small (``ACCESS_BATCH`` patched to 7) so that
writes split into several rows, trims fall inside a batch and reads cross batch edges.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeport import store as store_mod
from homeport.gateway.contract import AccessRecord
from homeport.store import MIGRATIONS, SCHEMA_VERSION, Store

ROUTES = ("api", "web", None)
REASONS = (None, "control", "upstream_refused")


def rec(i: int, route: str | None, reason: str | None) -> AccessRecord:
    return AccessRecord(
        time=1000.0 + i / 8,
        client_addr="127.0.0.1" if i % 3 else "::1",
        client_port=40000 + i,
        host=f"{route or 'x'}.localhost:62893",
        method="POST" if i % 5 == 0 else "GET",
        path=f"/p/{i}?q=é",
        status=200 if i % 4 else 502,
        bytes_in=i % 7,
        bytes_out=i * 3,
        duration_ms=0.25 * i,
        route=route,
        reason=reason,
        external=i % 11 == 0,
        protocol="h2" if i % 2 else "http/1.1",
        tls=i % 6 == 0,
    )


writes = st.lists(
    st.lists(st.tuples(st.sampled_from(ROUTES), st.sampled_from(REASONS)), max_size=30),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=writes,
    capacity=st.integers(1, 60),
    limit=st.integers(1, 80),
    route=st.sampled_from((None, "api", "web")),
    skip=st.sampled_from((None, "control")),
    after_back=st.integers(0, 90),
)
def test_reads_match_a_plain_list(
    monkeypatch: pytest.MonkeyPatch,
    batches: list[list[tuple[str | None, str | None]]],
    capacity: int,
    limit: int,
    route: str | None,
    skip: str | None,
    after_back: int,
) -> None:
    monkeypatch.setattr(store_mod, "ACCESS_BATCH", 7)
    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "db", access_capacity=capacity)
        try:
            model: list[tuple[int, AccessRecord]] = []
            for batch in batches:
                records = [rec(len(model) + k + 1, r, why) for k, (r, why) in enumerate(batch)]
                s.append_access(records)
                model += [(len(model) + k + 1, r) for k, r in enumerate(records)]
            kept = model[-capacity:]
            assert s.access_count() == len(kept)

            def wanted(entry: tuple[int, AccessRecord]) -> bool:
                r = entry[1]
                return (route is None or r.route == route) and (skip is None or r.reason != skip)

            got = [(e.id, e.record) for e in s.access(limit=limit, route=route, skip_reason=skip)]
            assert got == [e for e in kept if wanted(e)][-limit:]

            newest = model[-1][0] if model else 0
            after = max(newest - after_back, 0)
            got = s.access(limit=limit, route=route, after=after, skip_reason=skip)
            past = [e for e in kept if e[0] > after and wanted(e)]
            assert [(e.id, e.record) for e in got] == past[:limit]

            last, counts = s.access_counts(after=after)
            assert last == max(newest, after)
            expected: dict[str | None, int] = {}
            for rid, r in kept:
                if rid > after:
                    expected[r.route] = expected.get(r.route, 0) + 1
            assert counts == expected
        finally:
            s.close()


def test_ids_continue_across_writes_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    a = Store(path)
    a.append_access([rec(i, "api", None) for i in range(1, 1501)])  # two rows: 1000 + 500
    a.close()
    b = Store(path)
    b.append_access([rec(1501, "web", None)])
    (entry,) = b.access(limit=1)
    assert (entry.id, entry.record.route) == (1501, "web")
    assert b.access_count() == 1501
    rows = b._conn.execute("SELECT first, n FROM access_batches ORDER BY first").fetchall()
    assert [tuple(r) for r in rows] == [(1, 1000), (1001, 500), (1501, 1)]
    b.close()


def test_schema_5_rows_move_into_batches_with_their_ids(tmp_path: Path) -> None:
    """An existing access log survives the upgrade: same ids (a gap starts a new batch),
    same fields, bools back as bools."""
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:5]:
        assert isinstance(step, str)
        conn.executescript(step)
    ids = [*range(3, 1203), *range(1500, 1510)]  # 1,200 contiguous, a gap, 10 more
    for i in ids:
        r = rec(i, ROUTES[i % 3], REASONS[i % 3])
        conn.execute(
            "INSERT INTO access (id, time, client_addr, client_port, host, method, path, status,"
            " bytes_in, bytes_out, duration_ms, route, reason, external, protocol, tls)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (i, *r),
        )
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    s = Store(path)
    try:
        got = s.access(limit=10_000)
        assert [e.id for e in got] == ids
        assert [e.record for e in got] == [rec(i, ROUTES[i % 3], REASONS[i % 3]) for i in ids]
        assert isinstance(got[0].record.external, bool)
        assert isinstance(got[0].record.tls, bool)
        assert s.access(limit=2, after=1202) == got[1200:1202]
        s.append_access([rec(9999, "api", None)])
        assert s.access(limit=1)[0].id == 1510
        version = s._conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION
        tables = {r[0] for r in s._conn.execute("SELECT name FROM sqlite_master")}
        assert "access" not in tables
    finally:
        s.close()


def test_an_unreadable_batch_is_skipped_not_fatal(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    try:
        s.append_access([rec(1, "api", None), rec(2, "api", None)])
        s.append_access([rec(3, "api", None)])
        s._conn.execute("UPDATE access_blobs SET records = x'00ff' WHERE first = 1")
        assert [e.id for e in s.access()] == [3]
    finally:
        s.close()


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A database built by the first ``version`` migrations, as an older homeport left it
    (``user_version`` is set by the caller, once its rows are in)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:version]:
        conn.executescript(step) if isinstance(step, str) else step(conn)
    return conn


def test_schema_6_blobs_move_into_their_own_table(tmp_path: Path) -> None:
    """A schema-6 ring (blobs in ``access_batches``, the oldest batch partly trimmed) reads
    the same after the upgrade, and the blob column is gone from the batch rows."""
    path = tmp_path / "state.db"
    conn = database_at(path, 6)
    batches = [(1, [rec(i, ROUTES[i % 3], None) for i in range(1, 11)], 4),
               (11, [rec(i, "web", "control") for i in range(11, 16)], 0)]  # fmt: skip
    for first, records, skip in batches:
        routes, blob = store_mod._marshal_batch(records)  # schema 6: plain marshal
        conn.execute(
            "INSERT INTO access_batches (first, n, skip, routes, records) VALUES (?,?,?,?,?)",
            (first, len(records), skip, routes, blob),
        )
    conn.execute("PRAGMA user_version = 6")
    conn.close()
    s = Store(path)
    try:
        assert [(e.id, e.record) for e in s.access(limit=100)] == [
            (i, rec(i, ROUTES[i % 3], None)) for i in range(5, 11)
        ] + [(i, rec(i, "web", "control")) for i in range(11, 16)]
        assert s.access_count() == 11
        assert s.access_counts(after=0) == (15, {"api": 2, "web": 7, None: 2})
        columns = {r[1] for r in s._conn.execute("PRAGMA table_info(access_batches)")}
        assert columns == {"first", "n", "skip", "routes"}
        s.append_access([rec(16, "api", None)])
        assert s.access(limit=1)[0].id == 16
    finally:
        s.close()


def test_schema_7_blobs_are_compressed_on_upgrade(tmp_path: Path) -> None:
    """A schema-7 ring (plain marshal blobs) reads the same after the upgrade, each blob is
    stored smaller than it was, and new batches go on from its last id."""
    path = tmp_path / "state.db"
    conn = database_at(path, 7)
    plain: dict[int, int] = {}
    for first, k in ((1, 400), (401, 300)):
        records = [rec(i, ROUTES[i % 3], None) for i in range(first, first + k)]
        routes, blob = store_mod._marshal_batch(records)
        plain[first] = len(blob)
        conn.execute(
            "INSERT INTO access_batches (first, n, skip, routes) VALUES (?,?,?,?)",
            (first, k, 0, routes),
        )
        conn.execute("INSERT INTO access_blobs (first, records) VALUES (?,?)", (first, blob))
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    s = Store(path)
    try:
        assert [(e.id, e.record) for e in s.access(limit=1000)] == [
            (i, rec(i, ROUTES[i % 3], None)) for i in range(1, 701)
        ]
        sizes = dict(s._conn.execute("SELECT first, length(records) FROM access_blobs"))
        assert set(sizes) == set(plain)
        assert all(sizes[f] < plain[f] / 2 for f in plain), (sizes, plain)
        s.append_access([rec(701, "api", None)])
        assert s.access(limit=1)[0].id == 701
    finally:
        s.close()


def test_a_batch_of_alike_requests_is_stored_in_few_bytes(tmp_path: Path) -> None:
    """What the gateway logs under load (one route, one client, one path) compresses: the
    commit's SQLite work grows with the bytes it writes."""
    s = Store(tmp_path / "db")
    try:
        alike = [
            AccessRecord(1000.0 + i / 40_000, "127.0.0.1", 40000 + i % 50, "app.localhost:62893",
                         "GET", "/small", 200, 0, 13, 0.3 + (i % 97) / 100, "app.localhost")
            for i in range(1000)
        ]  # fmt: skip
        s.append_access(alike)
        (size,) = s._conn.execute("SELECT sum(length(records)) FROM access_blobs").fetchone()
        assert size < 25 * len(alike)  # marshal alone: ~73 bytes a record
        assert [e.record for e in s.access(limit=1000)] == alike
    finally:
        s.close()
