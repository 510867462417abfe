"""Reading explain's input: addresses, URLs, error texts, --at, and bad input."""

from __future__ import annotations

import pytest

from homeport.errors import UsageError
from homeport.explain.parse import find_address, parse_input


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:62893", "127.0.0.1", 62893),
        ("[::1]:5432", "::1", 5432),
        ("localhost:3000", "localhost", 3000),
        ("0.0.0.0:8000", "0.0.0.0", 8000),
        ("127.0.0.2:80", "127.0.0.2", 80),
        ("http://api.localhost:62893/x", "api.localhost", 62893),
        ("https://localhost/", "localhost", 443),
        ("3000", None, 3000),
        ("  :8080 ", None, 8080),
    ],
)
def test_addresses(text: str, host: str | None, port: int) -> None:
    p = parse_input(text)
    assert p.rule is None
    assert (p.host, p.port) == (host, port)


@pytest.mark.parametrize(
    "text", ["", "   ", "hello world", "[::1]", "::1", "localhost:99999", "just some log line"]
)
def test_bad_input_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_input(text)
    assert "accepted" in str(info.value) or "port" in str(info.value)


def test_at_fills_what_the_text_lacks() -> None:
    p = parse_input("OSError: [Errno 98] Address already in use", at=":8000")
    assert (p.kind, p.host, p.port) == ("in-use", None, 8000)
    p = parse_input("ConnectionRefusedError: [Errno 111] Connection refused", at="[::1]:5432")
    assert (p.host, p.port) == ("::1", 5432)


def test_at_must_be_an_address() -> None:
    with pytest.raises(UsageError):
        parse_input("Connection refused", at="nope")


def test_psql_keeps_the_name_and_the_address_it_tried() -> None:
    p = parse_input(
        'psql: error: connection to server at "localhost" (::1), port 5432 failed:'
        " Connection refused"
    )
    assert (p.host, p.name, p.port) == ("::1", "localhost", 5432)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy error: could not proxy to http://localhost:5173/api", ("localhost", 5173)),
        ("upstream [::1]:8080 said no", ("::1", 8080)),
        ("at Net.java:579 then 10.0.0.1:22", ("10.0.0.1", 22)),
        ("pid 9853:9853:1127/071454 nothing here", (None, None)),
        ("web.localhost:3000 and 127.0.0.1:4000", ("web.localhost", 3000)),
    ],
)
def test_find_address(text: str, expected: tuple[str | None, int | None]) -> None:
    assert find_address(text) == expected
