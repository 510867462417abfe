"""The pure side of waiting: targets, back-off, self-connect, and the loop with a script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homeport.errors import UsageError
from homeport.ports.wait import (
    Attempt,
    WaitFailed,
    WaitReport,
    WaitTarget,
    backoff,
    is_self_connect,
    parse_status_range,
    parse_wait_target,
    wait_for,
)


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("3000", "tcp", None, 3000),
        ("localhost:3000", "tcp", "localhost", 3000),
        ("[::1]:5432", "tcp", "::1", 5432),
        ("http://localhost:8000/health", "http", "localhost", 8000),
        ("https://api.localhost", "http", "api.localhost", 443),
    ],
)
def test_parse_wait_target(text: str, kind: str, host: str | None, port: int) -> None:
    t = parse_wait_target(text)
    assert (t.kind, t.host, t.port) == (kind, host, port)


def test_parse_unix_target() -> None:
    assert parse_wait_target("unix:/run/app.sock") == WaitTarget(
        "unix:/run/app.sock", "unix", path="/run/app.sock"
    )


@pytest.mark.parametrize("text", ["unix:", "redis://localhost:6379", "nope", "::1"])
def test_parse_wait_target_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_wait_target(text)


def test_status_range() -> None:
    assert parse_status_range("200-399") == (200, 399)
    assert parse_status_range("204") == (204, 204)
    for bad in ("abc", "99", "300-200", "200-700"):
        with pytest.raises(UsageError):
            parse_status_range(bad)


def test_backoff_grows_then_caps() -> None:
    steps = [backoff(n) for n in range(12)]
    assert steps[0] == pytest.approx(0.05)
    assert steps == sorted(steps)
    assert steps[-1] == 1.0
    assert backoff(10_000) == 1.0  # no overflow on a very long wait


def test_self_connect_is_same_address_and_port() -> None:
    assert is_self_connect(("127.0.0.1", 40000), ("127.0.0.1", 40000))
    assert is_self_connect(("::1", 40000, 0, 0), ("::1", 40000, 0, 0))
    assert not is_self_connect(("127.0.0.1", 40001), ("127.0.0.1", 40000))
    assert not is_self_connect(("127.0.0.2", 40000), ("127.0.0.1", 40000))


class FakeClock:
    """A clock that only moves when the loop sleeps: the loop's timing, run instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(results: dict[str, list[Attempt]]) -> object:
    streams: dict[str, Iterator[Attempt]] = {k: iter(v) for k, v in results.items()}

    def probe(target: WaitTarget, budget: float) -> Attempt:
        assert budget > 0
        return next(streams[target.text])

    return probe


NO = Attempt(False, "refused")
YES = Attempt(True, "accepted", address="127.0.0.1:1")


def test_waits_until_every_target_is_ready() -> None:
    clock = FakeClock()
    probe = scripted({"1": [NO, NO, YES], "2": [YES]})
    report = wait_for("1", "2", timeout=10, probe=probe, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert report.ready
    by = {t.target: t for t in report.targets}
    assert by["1"].attempts == 3
    assert by["2"].attempts == 1  # a ready target is not probed again
    assert by["1"].address == "127.0.0.1:1"
    assert clock.sleeps[:2] == [pytest.approx(0.05), pytest.approx(0.075)]


def test_any_mode_returns_on_the_first_ready_target() -> None:
    clock = FakeClock()
    probe = scripted({"1": [NO, NO, NO, NO], "2": [NO, YES]})
    report = wait_for(
        "1",
        "2",
        any_=True,
        timeout=10,
        probe=probe,
        clock=clock,  # type: ignore[arg-type]
        sleep=clock.sleep,
    )
    assert report.ready
    assert [t.ready for t in report.targets] == [False, True]


def test_timeout_raises_with_the_last_reason_and_the_report() -> None:
    clock = FakeClock()
    probe = scripted({"1": [NO] * 100})
    seen: list[WaitReport] = []
    with pytest.raises(WaitFailed, match="refused") as info:
        wait_for(
            "1",
            timeout=2.0,
            probe=probe,
            clock=clock,
            sleep=clock.sleep,  # type: ignore[arg-type]
            on_attempt=seen.append,
        )
    assert not info.value.report.ready
    assert info.value.report.targets[0].attempts == len(seen)
    assert clock.now == pytest.approx(2.0)  # never sleeps past the deadline


def test_no_targets_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        wait_for()
