"""The loop-lag sampler: what it reports, and that a blocked loop shows as lag."""

from __future__ import annotations

import asyncio
import time

from homeport.daemon.lag import LoopLag, RunDelay


def test_snapshot_summarises_the_window_and_the_run() -> None:
    loop = asyncio.new_event_loop()
    try:
        lag = LoopLag(loop, window=10.0)
        now = loop.time()
        lag.record(now - 30.0, 40.0)  # outside the window: only in the totals
        for i in range(99):
            lag.record(now - 1.0 + i / 100, 0.5)
        lag.record(now, 7.0, own_ms=1.0)  # late, but mostly waiting for a CPU
        snap = lag.snapshot()
    finally:
        loop.close()
    assert snap["samples"] == 100
    assert snap["max"] == 7.0
    assert snap["p99"] == 7.0
    assert snap["max_own"] == 1.0
    assert snap["max_since_start"] == 40.0
    assert snap["over_5ms"] == 2
    assert snap["over_5ms_own"] == 1


def test_a_blocked_loop_shows_as_lag() -> None:
    loop = asyncio.new_event_loop()
    delay = RunDelay()
    try:
        lag = LoopLag(loop, interval=0.001, run_delay=delay)
        lag.start()
        loop.call_later(0.01, time.sleep, 0.05)  # a handler that holds the loop for 50 ms
        loop.run_until_complete(asyncio.sleep(0.1))  # ends after the block, ticks resumed
        lag.stop()
        snap = lag.snapshot()
    finally:
        delay.close()
        loop.close()
    # The tick due during the block ran at least 40 ms late (never earlier than the block
    # ended).
    assert float(snap["max_since_start"]) >= 40.0
    assert int(snap["over_5ms"]) >= 1


def test_an_idle_daemon_samples_rarely() -> None:
    loop = asyncio.new_event_loop()
    try:
        lag = LoopLag(loop, busy=lambda: False, interval=0.02, idle_interval=5.0)
        lag.start()
        handle = lag._handle
        assert handle is not None
        assert handle.when() - loop.time() > 4.0
        lag.stop()
    finally:
        loop.close()
