"""The listener diff: appeared / disappeared / exposure changed, and which ones alert."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import replace

import pytest

from homeport.model import Listener, Process, Socket
from homeport.web.sampler import (
    Diff,
    ListenerRow,
    Sampler,
    diff,
    listener_row,
    snapshot,
    summarize,
    widened,
)

EPHEMERAL = (32768, 60999)
EXPOSURE = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "0.0.0.0": "all-interfaces",
    "::": "all-interfaces",
    "192.168.1.5": "lan",
    "8.8.8.8": "public",
}


def row(address: str = "127.0.0.1", port: int = 8000, inode: int = 1, **kw: object) -> ListenerRow:
    exposure = EXPOSURE[address]
    base = ListenerRow(
        proto="tcp", family=6 if ":" in address else 4, address=address, port=port,
        inode=inode, exposure=exposure, pids=(42,), process="app",
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def kinds(d: Diff) -> list[tuple[str, int, bool]]:
    return [(e.kind, e.row.port, e.alert) for e in d.events]


def test_new_loopback_listener_appears_without_alert() -> None:
    d = diff({}, snapshot([row()]), EPHEMERAL)
    assert kinds(d) == [("listener-appeared", 8000, False)]
    assert [r.key for r in d.added] == ["tcp/127.0.0.1/8000/1"]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "8.8.8.8"])
def test_new_listener_beyond_loopback_is_an_alert(address: str) -> None:
    d = diff({}, snapshot([row(address)]), EPHEMERAL)
    assert kinds(d) == [("listener-appeared", 8000, True)]
    assert d.events[0].data()["alert"] is True
    assert address in d.events[0].message


def test_disappeared() -> None:
    d = diff(snapshot([row()]), {}, EPHEMERAL)
    assert kinds(d) == [("listener-disappeared", 8000, False)]
    assert d.removed == ("tcp/127.0.0.1/8000/1",)
    assert "stopped listening" in d.events[0].message


def test_rebind_wider_is_one_exposure_change_and_alerts() -> None:
    d = diff(snapshot([row()]), snapshot([row("0.0.0.0", inode=2)]), EPHEMERAL)
    assert kinds(d) == [("listener-exposure-changed", 8000, True)]
    assert d.events[0].previous_exposure == "loopback"
    assert d.events[0].data()["previous_exposure"] == "loopback"
    # The page still gets the row-level diff.
    assert d.removed == ("tcp/127.0.0.1/8000/1",)
    assert [r.key for r in d.added] == ["tcp/0.0.0.0/8000/2"]


def test_rebind_narrower_changes_exposure_without_alert() -> None:
    d = diff(snapshot([row("0.0.0.0")]), snapshot([row(inode=2)]), EPHEMERAL)
    assert kinds(d) == [("listener-exposure-changed", 8000, False)]


def test_other_owner_on_the_same_port_is_not_a_rebind() -> None:
    before = snapshot([row()])
    after = snapshot([row("0.0.0.0", inode=2, pids=(77,))])
    assert sorted(kinds(diff(before, after, EPHEMERAL))) == [
        ("listener-appeared", 8000, True),
        ("listener-disappeared", 8000, False),
    ]


def test_two_families_gone_one_wildcard_new_pairs_only_once() -> None:
    before = snapshot([row(), row("::1", inode=3)])
    after = snapshot([row("::", inode=4)])
    got = kinds(diff(before, after, EPHEMERAL))
    assert sorted(got) == [("listener-disappeared", 8000, False),
                           ("listener-exposure-changed", 8000, True)]  # fmt: skip


def test_changed_owner_is_a_row_change_not_an_event() -> None:
    d = diff(snapshot([row()]), snapshot([row(pids=(42, 43))]), EPHEMERAL)
    assert d.events == ()
    assert [r.pids for r in d.changed] == [(42, 43)]
    assert bool(d)


def test_no_change_is_empty() -> None:
    s = snapshot([row(), row("0.0.0.0", port=9000, inode=5)])
    d = diff(s, dict(s), EPHEMERAL)
    assert not d
    assert d.to_json() == {"added": [], "removed": [], "changed": []}


def test_udp_client_socket_in_ephemeral_range_never_alerts() -> None:
    client = row("0.0.0.0", port=40000, proto="udp")
    service = row("0.0.0.0", port=5353, inode=9, proto="udp")
    assert kinds(diff({}, snapshot([client, service]), EPHEMERAL)) == [
        ("listener-appeared", 5353, True),
        ("listener-appeared", 40000, False),
    ]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, "loopback", False),
        (None, "lan", True),
        ("loopback", "lan", True),
        ("lan", "all-interfaces", True),
        ("all-interfaces", "lan", False),
        ("all-interfaces", "public", False),
        ("lan", "loopback", False),
    ],
)
def test_widened(before: str | None, after: str, expected: bool) -> None:
    assert widened(before, after) is expected  # type: ignore[arg-type]


def test_listener_row_from_inventory_record() -> None:
    sock = Socket("tcp", 4, "0.0.0.0", 5432, "0.0.0.0", 0, "LISTEN", inode=77, uid=0)
    owner = Process(pid=9, name="postgres", cmdline=("postgres", "-D", "/db"), user="pg",
                    start_time=1000.0)  # fmt: skip
    r = listener_row(Listener(sock, "all-interfaces", (owner,), route="db.localhost"))
    assert r.to_json() == {
        "key": "tcp/0.0.0.0/5432/77", "proto": "tcp", "family": 4, "address": "0.0.0.0",
        "port": 5432, "exposure": "all-interfaces", "pids": [9], "process": "postgres",
        "user": "pg", "command": "postgres -D /db", "started": 1000.0,
        "owner_status": "known", "owner_hint": None, "route": "db.localhost", "url": None,
    }  # fmt: skip


def test_sampler_first_sample_is_a_baseline_then_diffs() -> None:
    samples = [
        [row()],
        [row(), row("0.0.0.0", port=9000, inode=2)],
        [row("0.0.0.0", port=9000, inode=2)],
    ]
    seen: list[Diff] = []

    async def go() -> None:
        s = Sampler(seen.append, sample=lambda: samples.pop(0), ephemeral=EPHEMERAL)
        first = await s.tick()
        assert first.events == ()
        assert len(first.added) == 1
        assert s.ready.is_set()
        second = await s.tick()
        assert kinds(second) == [("listener-appeared", 9000, True)]
        third = await s.tick()
        assert kinds(third) == [("listener-disappeared", 8000, False)]
        assert list(s.snapshot) == ["tcp/0.0.0.0/9000/2"]
        assert s.samples == 3

    asyncio.run(go())
    assert len(seen) == 3


def test_a_flood_is_summarized_but_every_alert_is_kept() -> None:
    rows = [row(port=1000 + i, inode=i) for i in range(150)]
    rows.append(row("0.0.0.0", port=5000, inode=999))
    records = summarize(diff({}, snapshot(rows), EPHEMERAL).events, limit=100)
    assert [k for k, _ in records] == ["listener-appeared", "listeners-changed"]
    assert records[0][1]["port"] == 5000
    assert records[0][1]["alert"] is True
    summary = records[1][1]
    assert summary["counts"]["listener-appeared"] == 151
    assert summary["message"].startswith("151 listeners appeared, 0 went away")


def test_few_events_are_recorded_one_by_one() -> None:
    events = diff({}, snapshot([row(), row(port=9000, inode=2)]), EPHEMERAL).events
    assert [d["port"] for _, d in summarize(events, limit=100)] == [8000, 9000]


def test_run_wakes_from_an_idle_wait_for_a_watcher() -> None:
    second = threading.Event()
    ticks: list[float] = []

    def sample() -> list[ListenerRow]:
        ticks.append(time.monotonic())
        if len(ticks) == 2:
            second.set()
        return [row()]

    async def go() -> None:
        s = Sampler(lambda d: None, sample=sample, interval=0.05, idle_interval=30.0,
                    watched=lambda: False, ephemeral=EPHEMERAL)  # fmt: skip
        task = asyncio.create_task(s.run())
        try:
            await asyncio.wait_for(s.ready.wait(), 5)
            s.wake()  # the idle interval is 30 s: only the wake brings the next sample
            assert await asyncio.to_thread(second.wait, 5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(go())
    assert ticks[1] - ticks[0] < 5


def test_cached_inventory_walks_proc_only_when_sockets_changed_or_stale() -> None:
    from homeport.web.sampler import CachedInventory, ListenerRow

    keys = {frozenset({("tcp", 1)})}
    now = [0.0]
    walks: list[int] = []

    def full() -> list[ListenerRow]:
        walks.append(1)
        (key,) = keys
        return [ListenerRow("tcp", 4, "127.0.0.1", 80 + i, i, "loopback") for _, i in key]

    inv = CachedInventory(
        10.0, socket_keys=lambda: next(iter(keys)), full=full, clock=lambda: now[0]
    )
    first = inv()
    now[0] = 1.0
    assert inv() is first  # same sockets, fresh walk: no new walk
    assert len(walks) == 1
    keys.clear()
    keys.add(frozenset({("tcp", 1), ("tcp", 2)}))  # a listener appeared
    now[0] = 2.0
    assert sorted(r.inode for r in inv()) == [1, 2]
    assert len(walks) == 2
    now[0] = 13.0  # same sockets, but the walk is older than `refresh`: owners may differ
    inv()
    assert len(walks) == 3
