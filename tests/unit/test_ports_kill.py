"""Choosing whom to signal: exact owners, each once, never PID 1 or ourselves."""

from __future__ import annotations

import signal

import pytest

from homeport.errors import UsageError
from homeport.model import Listener, Process, Socket
from homeport.ports.kill import choose, signal_of


def listener(port: int, addr: str, *owners: Process) -> Listener:
    sock = Socket("tcp", 6 if ":" in addr else 4, addr, port, "", 0, "LISTEN", 1000 + port)
    return Listener(sock, "loopback", owners=owners)


PARENT = Process(200, "gunicorn", ("gunicorn", "app"))
WORKER = Process(201, "gunicorn", ("gunicorn", "app"))


def test_forked_server_owners_are_each_signalled_once() -> None:
    both = listener(8000, "127.0.0.1", PARENT, WORKER)
    also_v6 = listener(8000, "::1", PARENT, WORKER)
    victims, refused = choose([both, also_v6], {}, me=999)
    assert [v.pid for v in victims] == [200, 201]
    assert victims[0].why == "holds tcp 127.0.0.1:8000"
    assert refused == []


def test_pid_1_and_homeport_itself_are_refused() -> None:
    init = Process(1, "systemd")
    me = Process(999, "homeport")
    victims, refused = choose([listener(80, "0.0.0.0", init, me, PARENT)], {}, me=999)
    assert [v.pid for v in victims] == [200]
    assert dict(refused) == {1: "PID 1 (init) is never signalled", 999: "homeport itself"}


def test_tree_adds_descendants_after_the_owners() -> None:
    child = Process(300, "node")
    victims, _ = choose([listener(3000, "::", PARENT)], {200: [child, WORKER]}, me=999)
    assert [(v.pid, v.why) for v in victims] == [
        (200, "holds tcp [::]:3000"),
        (300, "descendant of 200"),
        (201, "descendant of 200"),
    ]


@pytest.mark.parametrize(
    ("text", "sig"),
    [
        ("TERM", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("9", signal.SIGKILL),
        ("SIGHUP", signal.SIGHUP),
    ],
)
def test_signal_names(text: str, sig: signal.Signals) -> None:
    assert signal_of(text) is sig


@pytest.mark.parametrize("text", ["TERMINATE", "999", ""])
def test_bad_signal_is_usage(text: str) -> None:
    with pytest.raises(UsageError):
        signal_of(text)
