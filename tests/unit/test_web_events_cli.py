"""``homeport events``: the SSE line parser, the text form, and history without a daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homeport.cli.events import line, parse_sse
from homeport.store import Store, db_path


def test_parse_sse_events_comments_and_multiline_data() -> None:
    text = [
        ": ping\n",
        "\n",
        "event: event\n",
        "id: 3\n",
        'data: {"id": 3}\n',
        "\n",
        "data: a\n",
        "data:b\n",
        "\n",
        "event: partial\n",
    ]
    assert list(parse_sse(text)) == [("event", '{"id": 3}'), ("message", "a\nb")]


def test_line_marks_alerts() -> None:
    ev = {"id": 1, "time": 0.0, "kind": "listener-appeared",
          "data": {"alert": True, "message": "tcp 0.0.0.0:8000 is listening"}}  # fmt: skip
    assert line(ev).endswith("  ALERT listener-appeared  tcp 0.0.0.0:8000 is listening")
    plain = {"id": 2, "time": 0.0, "kind": "service-reaped", "data": {"id": "ab", "pid": 7}}
    assert line(plain).endswith("  service-reaped  id=ab pid=7")


@pytest.fixture
def recorded(state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Events in the state database and no daemon on HOMEPORT_PORT."""
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    store = Store(db_path())
    store.add_event("listener-appeared", {"alert": False, "message": "tcp 127.0.0.1:1 up"})
    store.add_event("listener-appeared", {"alert": True, "message": "tcp 0.0.0.0:2 up"})
    store.add_event("listener-disappeared", {"alert": False, "message": "tcp 127.0.0.1:1 gone"})
    store.close()
    return state_dir


def test_history_from_the_database_without_a_daemon(recorded: Path, cli: Any) -> None:
    res = cli("events", "--json")
    assert res.status == 0, res.stderr
    events = json.loads(res.stdout)["events"]
    assert [e["id"] for e in events] == [1, 2, 3]
    assert events[1]["data"]["alert"] is True


def test_alerts_only_exits_1_when_any(recorded: Path, cli: Any) -> None:
    res = cli("events", "--alerts")
    assert res.status == 1
    assert res.stdout.count("\n") == 1
    assert "ALERT listener-appeared  tcp 0.0.0.0:2 up" in res.stdout


def test_limit_keeps_the_newest(recorded: Path, cli: Any) -> None:
    res = cli("events", "-n", "1")
    assert res.status == 0
    assert res.stdout.strip().endswith("listener-disappeared  tcp 127.0.0.1:1 gone")
    assert cli("events", "-n", "0").status == 2


def test_follow_needs_the_daemon(recorded: Path, cli: Any) -> None:
    res = cli("events", "-f")
    assert res.status == 3
    assert "not running" in res.stderr


def test_no_database_is_no_events(
    state_dir: Path, free_port: int, monkeypatch: Any, cli: Any
) -> None:
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    res = cli("events", "--json")
    assert res.status == 0
    assert json.loads(res.stdout) == {"events": []}
