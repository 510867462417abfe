"""`homeport explain` through the CLI: sections, --json, stdin, --at, bad input."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

Cli = Callable[..., Any]


@pytest.fixture
def v4_listener() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 only, held by this test process. [::1] on the same port is
    held too, bound but not listening, so a parallel test's bind(0) on ::1 cannot land there
    and make the port answer on IPv6 (connects to it are refused, as the tests expect)."""
    for _ in range(20):
        with socket.socket() as s, socket.socket(socket.AF_INET6) as guard:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            try:
                guard.bind(("::1", port))
            except OSError:
                continue  # ::1 side already taken: pick another port
            s.listen()
            yield port
            return
    pytest.fail("no port free on both 127.0.0.1 and ::1 after 20 tries")


def test_text_has_every_section(cli: Cli, v4_listener: int) -> None:
    r = cli("explain", f"connect ECONNREFUSED ::1:{v4_listener}")
    assert r.status == 0, r.stderr
    for title in ("address", "port", "live now", "diagnosis", "next steps"):
        assert f"\n{title}\n" in r.stdout
    assert "Node.js: refused" in r.stdout
    assert "listens on IPv4 only" in r.stdout
    assert "  1. make the server listen on both families" in r.stdout
    assert r.stderr == ""


def test_error_words_may_come_unquoted(cli: Cli, v4_listener: int) -> None:
    r = cli("explain", "--json", "connect", "ECONNREFUSED", f"::1:{v4_listener}")
    assert r.status == 0
    assert json.loads(r.stdout)["diagnosis"][0]["id"] == "refused.family"


def test_json_shape(cli: Cli, v4_listener: int) -> None:
    r = cli("explain", "--json", f"127.0.0.1:{v4_listener}")
    j = json.loads(r.stdout)
    assert j["kind"] == "address"
    assert j["error"] is None
    assert j["target"] == {
        "host": "127.0.0.1",
        "name": None,
        "port": v4_listener,
        "path": None,
        "port_assumed": False,
    }
    assert j["diagnosis"][0]["id"] == "address.listening"
    # Other processes may listen on the same port number at other addresses (127.0.0.2, ::1).
    mine = [x for x in j["live"]["listeners"] if x["address"] == "127.0.0.1"]
    assert [x["port"] for x in mine] == [v4_listener]
    assert set(j["port"]) == {"number", "service", "notes"}


def test_global_json_flag(cli: Cli) -> None:
    r = cli("--json", "explain", "getaddrinfo ENOTFOUND api.localhost")
    assert json.loads(r.stdout)["error"]["kind"] == "not-found"


def test_reads_stdin_with_dash(cli: Cli) -> None:
    pasted = (
        "Traceback (most recent call last):\n  ...\nOSError: [Errno 98] Address already in use\n"
    )
    r = cli("explain", "-", "--at", ":1", stdin=pasted)
    assert r.status == 0
    assert "Python: in-use" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("explain", "hello world"),
        ("explain", "localhost:70000"),
        ("explain", "connection refused", "--at", "nope"),
        ("explain", "[::1]"),
    ],
)
def test_bad_input_is_one_line_and_status_2(cli: Cli, argv: tuple[str, ...]) -> None:
    r = cli(*argv)
    assert r.status == 2
    assert r.stdout == ""
    assert r.stderr.startswith("homeport: ")
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_teaches(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    r = cli("explain", "--help")  # argparse prints help to the process's stdout
    out = capsys.readouterr().out
    assert r.status == 0
    assert "examples:" in out
    assert '"next_steps"' in out
