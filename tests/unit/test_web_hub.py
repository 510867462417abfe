"""The SSE hub: wire format, fan-out, topics, and dropping a reader that falls behind."""

from __future__ import annotations

import asyncio
import json

from homeport.web import hub
from homeport.web.hub import Hub, sse


def test_sse_wire_format() -> None:
    assert sse("event", {"a": 1, "b": "x\ny"}, 7) == (
        b'event: event\nid: 7\ndata: {"a":1,"b":"x\\ny"}\n\n'
    )
    assert sse("hello", []) == b"event: hello\ndata: []\n\n"


async def _take(it: object, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(it.__anext__(), 2))  # type: ignore[attr-defined]
    return out


def test_stream_yields_snapshot_then_published_messages() -> None:
    async def go() -> None:
        h = Hub()
        it = h.stream(lambda: [sse("hello", {"n": 0})])
        h.publish("listeners", {"added": []})
        first, second = await _take(it, 2)
        assert first.startswith(b"event: hello\n")
        assert second == sse("listeners", {"added": []})
        h.close()
        assert [c async for c in it] == []  # close ends the stream
        assert len(h) == 0

    asyncio.run(go())


def test_topics_filter_messages() -> None:
    async def go() -> None:
        h = Hub()
        it = h.stream(list, frozenset({"event"}))
        h.publish("access", {"records": []})
        h.publish("event", {"id": 1})
        (chunk,) = await _take(it, 1)
        assert json.loads(chunk.split(b"data: ", 1)[1]) == {"id": 1}
        h.close()

    asyncio.run(go())


def test_a_reader_that_falls_behind_is_dropped() -> None:
    async def go() -> None:
        h = Hub()
        slow = h.stream(list)
        fast = h.stream(list)
        for i in range(hub.QUEUE_LIMIT + 1):
            h.publish("event", {"id": i})
            await _take(fast, 1)  # keeps up
        assert h.dropped == 1
        assert len(h) == 1  # only the fast reader is left
        got = [c async for c in slow]
        assert 0 < len(got) < hub.QUEUE_LIMIT  # ended, after what it could still take
        h.close()

    asyncio.run(go())


def test_heartbeat_when_idle() -> None:
    async def go() -> None:
        h = Hub(heartbeat=0.01)
        it = h.stream(list)
        assert await _take(it, 1) == [hub.PING]
        h.close()

    asyncio.run(go())
