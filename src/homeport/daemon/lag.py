"""How late the daemon's event loop runs a callback: the stall detector of issue 9.

A callback is scheduled every ``interval`` seconds with ``call_at``; how much later than its
due time it actually runs is the loop's lag at that moment (a handler, a SQLite read, a GC
pass or another thread holding the GIL all show as lag). ``snapshot`` summarises the last
``window`` seconds and the whole run for ``homeport status --json`` under ``loop_lag_ms``:

    {"interval_ms": 20, "window_s": 10, "samples": N, "p99": 0.4, "max": 1.2,
     "p99_own": 0.3, "max_own": 1.0, "max_since_start": 3.1, "over_5ms": 0,
     "over_5ms_own": 0}

(``p99``/``max`` over the window, milliseconds; ``over_5ms`` counts samples since start that
ran more than 5 ms late.) uvloop's timers have a resolution of one millisecond, so a sample
reads 0-1 ms late on a loop that is free.

On a shared machine much of the lag is the kernel giving the core to someone else. The
``_own`` figures subtract the time the loop's thread waited for a CPU meanwhile (``run_delay``,
the second field of ``/proc/thread-self/schedstat``, in ns): what is left is what the daemon
did itself (a long handler, its other threads holding the GIL). Where that file is missing
they equal the wall-clock figures.

It costs one timer wakeup per ``interval`` while ``busy()`` (the gateway has connections),
and one per ``idle_interval`` otherwise: an idle daemon must stay near zero wakeups (issue
9's idle target), and there is no lag to measure when nothing is served.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable
from typing import Any

STALL_MS = 5.0


class RunDelay:
    """The calling thread's time spent runnable but waiting for a CPU, in ms (Linux
    schedstat); ``None`` where the kernel does not offer it. Open it on the thread to watch:
    ``thread-self`` is resolved when the file is opened."""

    def __init__(self) -> None:
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)

    def __call__(self) -> float | None:
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e6  # one read: ~6 µs here
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LoopLag:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        busy: Callable[[], bool] = lambda: True,
        interval: float = 0.02,
        idle_interval: float = 5.0,
        window: float = 10.0,
        run_delay: Callable[[], float | None] | None = None,
    ) -> None:
        self._loop = loop
        self._run_delay = run_delay
        self._busy = busy
        self.interval = interval
        self.idle_interval = idle_interval
        self.window = window
        #: (loop time, lag in ms, own lag in ms) of the samples in the window.
        self._recent: collections.deque[tuple[float, float, float]] = collections.deque()
        self.max_since_start = 0.0
        self.over = 0
        self.over_own = 0
        self._waited: float | None = None
        self.samples = 0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule(self._loop.time())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, now: float) -> None:
        self._due = now + (self.interval if self._busy() else self.idle_interval)
        self._handle = self._loop.call_at(self._due, self._tick)
        if self._run_delay is not None:
            self._waited = self._run_delay()

    def _tick(self) -> None:
        now = self._loop.time()
        lag = max(0.0, (now - self._due) * 1000.0)
        waited = 0.0
        if self._run_delay is not None and self._waited is not None:
            later = self._run_delay()
            waited = 0.0 if later is None else later - self._waited
        self.record(now, lag, max(0.0, lag - waited))
        self._schedule(now)

    def record(self, now: float, lag_ms: float, own_ms: float | None = None) -> None:
        """One sample (``_tick`` calls it; tests feed it directly)."""
        own = lag_ms if own_ms is None else own_ms
        self.samples += 1
        self.max_since_start = max(self.max_since_start, lag_ms)
        self.over += lag_ms > STALL_MS
        self.over_own += own > STALL_MS
        self._recent.append((now, lag_ms, own))
        self._trim(now)

    def _trim(self, now: float) -> None:
        recent = self._recent
        while recent and recent[0][0] < now - self.window:
            recent.popleft()

    def snapshot(self) -> dict[str, Any]:
        self._trim(self._loop.time())
        lags = sorted(lag for _, lag, _ in self._recent)
        own = sorted(o for _, _, o in self._recent)
        return {
            "interval_ms": round(self.interval * 1000.0, 3),
            "window_s": self.window,
            "samples": len(lags),
            "p99": _p99(lags),
            "max": round(lags[-1], 3) if lags else 0.0,
            "p99_own": _p99(own),
            "max_own": round(own[-1], 3) if own else 0.0,
            "max_since_start": round(self.max_since_start, 3),
            "over_5ms": self.over,
            "over_5ms_own": self.over_own,
        }


def _p99(ordered: list[float]) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3) if ordered else 0.0
