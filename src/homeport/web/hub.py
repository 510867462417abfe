"""Fan-out of live messages to Server-Sent Event streams.

Each open dashboard (or ``homeport events -f``) is one ``Subscriber`` with a bounded queue.
A message is encoded once (``sse``) and the same bytes go to every subscriber. A subscriber
that falls ``QUEUE_LIMIT`` messages behind (a stalled tab, a dead connection the kernel has
not noticed yet) is dropped: its stream ends, ``EventSource`` reconnects on its own and gets
a fresh snapshot, which is cheaper than buffering without bound for a reader that is gone.

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
``event: TYPE\\nid: N\\ndata: JSON\\n\\n``. JSON never contains a raw newline, so one ``data:``
line carries it whole. A comment line (``: ping``) every ``HEARTBEAT`` seconds makes a write
to a vanished client fail, so its subscription ends in bounded time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("homeport.web.hub")

QUEUE_LIMIT = 1000
HEARTBEAT = 15.0
PING = b": ping\n\n"
_END = b""


def sse(kind: str, data: Any, event_id: int | None = None) -> bytes:
    """One event in the text/event-stream format (pure)."""
    head = f"event: {kind}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


class Subscriber:
    def __init__(self, topics: frozenset[str] | None) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.closed = False

    def offer(self, chunk: bytes) -> bool:
        """Queue ``chunk``; False when the subscriber is too far behind and must go."""
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        self.closed = True
        # Make room for the end marker: the reader is leaving anyway.
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(_END)


class Hub:
    """Subscribers by identity; ``publish`` never blocks and never awaits."""

    def __init__(self, heartbeat: float = HEARTBEAT) -> None:
        self._subs: set[Subscriber] = set()
        self.heartbeat = heartbeat
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, data: Any, event_id: int | None = None) -> None:
        if not self._subs:
            return
        chunk = sse(kind, data, event_id)
        for sub in list(self._subs):
            if sub.topics is not None and kind not in sub.topics:
                continue
            if not sub.offer(chunk):
                log.info("dropping a live stream that fell %d messages behind", QUEUE_LIMIT)
                self.dropped += 1
                self._remove(sub)

    def _remove(self, sub: Subscriber) -> None:
        self._subs.discard(sub)
        sub.end()

    def close(self) -> None:
        """End every stream (the daemon is stopping)."""
        for sub in list(self._subs):
            self._remove(sub)

    def stream(
        self, first: Callable[[], list[bytes]], topics: frozenset[str] | None = None
    ) -> AsyncIterator[bytes]:
        """Subscribe now, then yield ``first()`` (the snapshot) and every later message.

        Subscribing before taking the snapshot means no change falls between the two; a
        change may arrive twice (in the snapshot and as a message), which applying a diff
        by key tolerates.
        """
        sub = Subscriber(topics)
        self._subs.add(sub)
        try:
            snapshot = first()
        except BaseException:
            self._subs.discard(sub)
            raise
        return self._iterate(sub, snapshot)

    async def _iterate(self, sub: Subscriber, first: list[bytes]) -> AsyncIterator[bytes]:
        try:
            for chunk in first:
                yield chunk
            while True:
                try:
                    chunk = await asyncio.wait_for(sub.queue.get(), self.heartbeat)
                except TimeoutError:
                    chunk = PING
                if chunk == _END:
                    return
                yield chunk
        finally:
            self._subs.discard(sub)
