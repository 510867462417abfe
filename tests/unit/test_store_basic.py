"""The state database: routes, services, the access ring, events, schema version, concurrency."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeport.errors import EnvironmentProblem
from homeport.gateway.contract import AccessRecord, Route
from homeport.store import (
    COMMIT_NICE,
    MIGRATIONS,
    SCHEMA_VERSION,
    AccessWriter,
    ServiceRecord,
    Store,
)


def record(i: int, route: str | None = "api.localhost", external: bool = False) -> AccessRecord:
    return AccessRecord(
        time=1000.0 + i,
        client_addr="127.0.0.1",
        client_port=40000 + i % 1000,
        host="api.localhost:62893",
        method="GET",
        path=f"/p/{i}",
        status=200,
        bytes_in=0,
        bytes_out=i,
        duration_ms=1.5,
        route=route,
        reason=None,
        external=external,
    )


def service(sid: str = "s1", state: str = "running") -> ServiceRecord:
    return ServiceRecord(
        id=sid,
        name="web",
        cmd=("python", "-m", "http.server"),
        cwd="/tmp",
        port=4000,
        pid=10,
        pgid=10,
        owner_pid=9,
        state=state,  # type: ignore[arg-type]
        started=time.time(),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "homeport.db", access_capacity=100)
    yield s
    s.close()


def test_db_file_is_private_and_wal(store: Store) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_route_round_trip_keeps_every_field(store: Store) -> None:
    r = Route(
        "api.localhost",
        "http://127.0.0.1:3000",
        wildcard=True,
        auth="basic",
        secret="me:pw",
        same_origin=True,
        allow_hosts=("api.test",),
        service_id="x",
        allow_underscores=True,
    )
    assert store.put_route(r) is True
    assert store.routes() == [r]
    assert store.put_route(Route("api.localhost", "http://[::1]:4000")) is False
    assert store.route("api.localhost") == Route("api.localhost", "http://[::1]:4000")
    assert store.remove_route("api.localhost") is True
    assert store.remove_route("api.localhost") is False
    assert store.routes() == []


def test_routes_survive_reopen(tmp_path: Path) -> None:
    a = Store(tmp_path / "db")
    a.put_route(Route("a.localhost", "http://127.0.0.1:1"))
    a.close()
    b = Store(tmp_path / "db")
    assert [r.name for r in b.routes()] == ["a.localhost"]
    b.close()


def test_finishing_a_service_drops_its_routes_only(store: Store) -> None:
    store.put_service(service("s1"))
    store.put_route(Route("web.localhost", "http://127.0.0.1:4000", service_id="s1"))
    store.put_route(Route("db.localhost", "http://127.0.0.1:5432"))
    store.finish_service("s1", "exited", 3)
    got = store.service("s1")
    assert got is not None
    assert (got.state, got.exit_code) == ("exited", 3)
    assert got.stopped is not None
    assert [r.name for r in store.routes()] == ["db.localhost"]
    assert store.services(live_only=True) == []


def test_access_log_is_a_ring_of_capacity_rows(store: Store) -> None:
    store.append_access([record(i) for i in range(250)])
    assert store.access_count() == 100
    newest = store.access(limit=5)
    assert [e.record.path for e in newest] == [f"/p/{i}" for i in range(245, 250)]
    oldest_kept = store.access(limit=1000)[0]
    assert oldest_kept.record.path == "/p/150"


def test_access_after_and_route_filter(store: Store) -> None:
    store.append_access(
        [record(i, route="a.localhost" if i % 2 else "b.localhost") for i in range(10)]
    )
    first = store.access(limit=3)
    after = store.access(after=first[0].id, limit=100)
    assert [e.id for e in after] == [e.id for e in store.access(limit=100)][-len(after) :]
    only_a = store.access(route="a.localhost", limit=100)
    assert {e.record.route for e in only_a} == {"a.localhost"}
    assert len(only_a) == 5
    assert store.access(limit=1)[0].to_json()["path"] == "/p/9"


def test_external_flag_round_trips(store: Store) -> None:
    store.append_access([record(1, external=True)])
    assert store.access(limit=1)[0].record.external is True


def test_events_are_ordered(store: Store) -> None:
    a = store.add_event("listener-new", {"port": 1})
    b = store.add_event("listener-gone", {"port": 1})
    assert b > a
    assert [e.kind for e in store.events(after=a)] == ["listener-gone"]


def test_a_first_schema_database_gains_allow_underscores(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO routes (name, target, created) VALUES ('a.localhost', 'http://127.0.0.1:1', 0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.routes() == [Route("a.localhost", "http://127.0.0.1:1")]
    store.put_route(Route("b.localhost", "http://127.0.0.1:2", allow_underscores=True))
    assert [r.allow_underscores for r in store.routes()] == [False, True]
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EnvironmentProblem, match="newer"):
        Store(path)


def test_access_writer_batches_off_thread(tmp_path: Path) -> None:
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=1000, chunk=128)
    writer.start()
    for i in range(300):
        writer.sink(record(i))
    writer.close()  # flushes what is pending
    s = Store(path)
    assert s.access_count() == 300
    assert writer.dropped == 0
    s.close()


def test_access_writer_wakes_for_each_batch_after_sleeping(tmp_path: Path) -> None:
    """The writer sleeps with nothing to write: the first record into an empty queue wakes
    it, every time (a lost wake-up would leave rows unwritten until close)."""
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=1000, commit_interval=0.01)
    written = threading.Event()
    writer.on_written = written.set
    writer.start()
    try:
        for batch in range(3):
            written.clear()
            writer.sink(record(batch))
            assert written.wait(20), f"batch {batch} was not written"
            assert writer.written == batch + 1
    finally:
        writer.close()


def test_access_writer_loses_no_wakeup_while_records_keep_coming(tmp_path: Path) -> None:
    """Records sunk while the writer drains are written without waiting for close()."""
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=100_000, commit_interval=0.001)
    writer.start()
    try:
        for i in range(20_000):
            writer.sink(record(i))
            if i % 500 == 0:
                time.sleep(0)  # let the writer run mid-stream, as the loop would
        deadline = time.monotonic() + 30
        while writer.written < 20_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.written == 20_000
    finally:
        writer.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
def test_access_writer_commits_at_a_lower_priority(tmp_path: Path) -> None:
    """SQLite runs in a thread of its own at nice 10: it gives way to the event loop on the
    gateway's core, yet keeps up when that core is saturated. It is the writer's only
    thread (the sink encodes on the proxy's)."""
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=1000, commit_interval=0.001)
    written = threading.Event()
    writer.on_written = written.set
    writer.start()
    try:
        writer.sink(record(0))
        assert written.wait(20)
        nice = {
            t.name: os.getpriority(os.PRIO_PROCESS, t.native_id or 0)
            for t in threading.enumerate()
            if t.name.startswith("homeport-access")
        }
    finally:
        writer.close()
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert nice == {"homeport-access": max(own, COMMIT_NICE)}


def test_access_writer_encodes_whole_chunks_on_the_sinks_thread(tmp_path: Path) -> None:
    """Every ``chunk``-th record makes the sink fold and encode that chunk itself, on the
    thread that sinks (the event loop's); the writer thread only commits, and takes the
    tail once records stop coming."""
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=1000, chunk=10, commit_interval=0.01)
    folded: list[tuple[str, int]] = []
    writer.on_batch = lambda batch: folded.append((threading.current_thread().name, len(batch)))
    written = threading.Event()
    writer.on_written = written.set
    writer.start()
    try:
        for i in range(25):
            writer.sink(record(i))
        # Two chunks folded at once, here; the writer has not had its round yet.
        assert folded[:2] == [("MainThread", 10), ("MainThread", 10)]
        deadline = time.monotonic() + 20
        while writer.written < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.written == 25  # the tail of 5, without close()
        assert folded[2:] == [("homeport-access", 5)]
    finally:
        writer.close()
    s = Store(path)
    try:
        assert [e.record.path for e in s.access(limit=100)] == [f"/p/{i}" for i in range(25)]
    finally:
        s.close()


def test_access_writer_sleeps_between_busy_spells(tmp_path: Path) -> None:
    """With nothing left to write the writer thread sleeps (idle cost: no wake-ups), and
    the next record wakes it: each spell is stored without close()."""
    path = tmp_path / "db"
    Store(path).close()
    writer = AccessWriter(path, capacity=1000, chunk=4, commit_interval=0.005)
    writer.start()
    try:
        for spell in range(3):
            for i in range(6):
                writer.sink(record(spell * 6 + i))
            deadline = time.monotonic() + 20
            while writer.written < 6 * (spell + 1) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert writer.written == 6 * (spell + 1)
            while writer._armed and time.monotonic() < deadline:
                time.sleep(0.005)
            assert not writer._armed  # asleep on its event, not polling
    finally:
        writer.close()
    assert writer.dropped == 0


def test_access_writer_sheds_its_oldest_while_the_database_is_held(tmp_path: Path) -> None:
    """A committer that cannot write (another process holds the database) does not stop
    the encoder or grow memory: past ``backlog`` the oldest batches are dropped and counted,
    and every record sunk is either stored or counted once the database is free."""
    path = tmp_path / "db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the committer's BEGIN IMMEDIATE now waits
    writer = AccessWriter(path, capacity=10_000, commit_interval=0.001,
                          backlog=200)  # fmt: skip
    writer.start()
    try:
        for i in range(2000):
            writer.sink(record(i))
            if i % 50 == 49:
                time.sleep(0.005)  # let the encoder take them, as the loop would
        deadline = time.monotonic() + 20
        while writer._pending and time.monotonic() < deadline:  # each one taken or pushed out
            time.sleep(0.01)
        assert writer.written == 0
        assert writer.dropped >= 2000 - 200 - 50 * 2  # at most backlog + a batch in hand
    finally:
        blocker.rollback()
        blocker.close()
        writer.close()
    s = Store(path)
    try:
        stored = s.access_count()
        assert stored > 0
        assert stored + writer.dropped == 2000
        ids = [e.id for e in s.access(limit=10_000)]
        assert ids == list(range(1, stored + 1))  # contiguous ids, however many were shed
    finally:
        s.close()


def test_access_writer_outlives_a_database_it_cannot_open_yet(tmp_path: Path) -> None:
    """The committer opens the database when it first writes: while that fails (here its
    directory is a file) the round's records are counted as dropped, and once it can be
    opened the next records are stored. The thread does not die on it."""
    blocked = tmp_path / "state"
    blocked.write_text("not a directory")
    writer = AccessWriter(blocked / "db", capacity=1000, commit_interval=0.001)
    writer.start()
    try:
        writer.sink(record(0))
        deadline = time.monotonic() + 20
        while writer.dropped < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (writer.dropped, writer.written) == (1, 0)
        blocked.unlink()
        writer.sink(record(1))
        while writer.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (writer.dropped, writer.written) == (1, 1)
    finally:
        writer.close()
    s = Store(blocked / "db")
    try:
        assert [e.record.path for e in s.access()] == ["/p/1"]
    finally:
        s.close()


def test_encoded_batches_take_consecutive_ids_and_trim(tmp_path: Path) -> None:
    from homeport.store import _encode_batch

    s = Store(tmp_path / "db", access_capacity=25)
    try:
        chunks = [[record(i) for i in range(a, b)] for a, b in ((0, 10), (10, 13), (13, 40))]
        s.append_encoded([(len(c), *_encode_batch(c)) for c in chunks])
        entries = s.access(limit=100)
        assert [e.id for e in entries] == list(range(16, 41))  # the newest 25 of 40
        assert [e.record.path for e in entries] == [f"/p/{i}" for i in range(15, 40)]
        assert s.access_count() == 25
    finally:
        s.close()


def test_access_counts_per_route_past_an_id(store: Store) -> None:
    store.append_access([record(i) for i in range(5)])
    last, counts = store.access_counts(after=0)
    assert (last, counts) == (5, {"api.localhost": 5})
    assert sum(store.access_counts(after=3)[1].values()) == 2
    assert store.access_counts(after=5) == (5, {})


def test_access_writer_drops_oldest_beyond_backlog(tmp_path: Path) -> None:
    path = tmp_path / "db"
    # Not started: nothing is committed. The sink encodes chunks of 5; past 10 records
    # waiting, the oldest chunks go, and are counted.
    writer = AccessWriter(path, capacity=1000, chunk=5, backlog=10)
    for i in range(25):
        writer.sink(record(i))
    assert writer.dropped == 15
    assert sum(n for n, _, _ in writer._encoded) == 10


WRITER = """
import sys
from homeport.gateway.contract import Route
from homeport.store import Store
s = Store(__import__("pathlib").Path(sys.argv[1]))
for i in range(100):
    s.put_route(Route(f"{sys.argv[2]}{i}.localhost", "http://127.0.0.1:1"))
"""


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "db"
    Store(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), p]) for p in "ab"]
    assert [p.wait(60) for p in procs] == [0, 0]
    s = Store(path)
    assert len(s.routes()) == 200
    assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    s.close()


def test_access_can_skip_a_reason(store: Store) -> None:
    store.append_access(
        [record(1), record(2)._replace(reason="control"), record(3)._replace(reason="unknown-host")]
    )
    kept = store.access(limit=10, skip_reason="control")
    assert [e.record.path for e in kept] == ["/p/1", "/p/3"]
    assert len(store.access(limit=10)) == 3


def test_upgrade_to_the_cross_site_default_leaves_a_one_time_notice(tmp_path: Path) -> None:
    """Routes made before the cross-site default (schema 1) without --same-origin are named
    once; the rows keep working and read back with the new fields off."""
    from homeport.store import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    for name, same in (("api.localhost", 0), ("strict.localhost", 1), ("web.localhost", 0)):
        conn.execute(
            "INSERT INTO routes VALUES (?, 'http://127.0.0.1:3000', 0, 'none', NULL, ?, '[]',"
            " NULL, 1.0)",
            (name, same),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        routes = {r.name: r for r in store.routes()}
        assert routes["api.localhost"].allow_cross_site is False
        assert routes["api.localhost"].allow_origins == ()
        assert routes["strict.localhost"].same_origin
        assert store.take_notices() == {"cross-site-default": "api.localhost web.localhost"}
        assert store.take_notices() == {}
    finally:
        store.close()


def test_cross_site_fields_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        route = Route(
            "api.localhost",
            "http://127.0.0.1:3000",
            allow_cross_site=True,
            allow_origins=("http://localhost:5173",),
        )
        store.put_route(route)
        assert store.route("api.localhost") == route
        assert store.take_notices() == {}  # a new database has nothing to announce
    finally:
        store.close()


def test_access_rows_keep_protocol_and_tls(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        base = AccessRecord(1.0, "127.0.0.1", 1, "a.localhost", "GET", "/", 200, 0, 2, 0.1, None)
        store.append_access([base, base._replace(protocol="h2", tls=True)])
        got = [(e.record.protocol, e.record.tls) for e in store.access()]
        assert got == [("http/1.1", False), ("h2", True)]
    finally:
        store.close()


def test_schema_3_access_rows_read_back_as_plain_http11(tmp_path: Path) -> None:
    from homeport.store import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:3]:
        conn.executescript(step)
    conn.execute(
        "INSERT INTO access (time, client_addr, client_port, host, method, path, status,"
        " bytes_in, bytes_out, duration_ms, route, reason, external)"
        " VALUES (1.0, '127.0.0.1', 1, 'a.localhost', 'GET', '/', 200, 0, 2, 0.1, NULL, NULL, 0)"
    )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        (entry,) = store.access()
        assert (entry.record.protocol, entry.record.tls) == ("http/1.1", False)
    finally:
        store.close()
