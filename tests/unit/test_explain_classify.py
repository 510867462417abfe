"""The failure class from errno names, numbers and phrases, whatever the tool."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeport.explain.classify import ERRNO_NUMBERS, classify
from homeport.explain.parse import parse_input


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 6379)", "refused"),
        ("ConnectionRefusedError: [Errno 61] Connect call failed ('127.0.0.1', 6379)", "refused"),
        ("Can't connect to MySQL server on '127.0.0.1:3307' (111)", "refused"),
        ("Can't connect to server on '127.0.0.1' (115)", "refused"),
        ("socket error 10061 talking to 127.0.0.1:4444", "refused"),
        ("No connection could be made because the target machine actively refused it.", "refused"),
        ("io error: os error 61 while dialing 127.0.0.1:80", "refused"),
        ("WSAECONNREFUSED on 127.0.0.1:80", "refused"),
        ("bind 0.0.0.0:80: errno 48", "in-use"),
        (
            "Only one usage of each socket address (protocol/network address/port) is normally"
            " permitted",
            "in-use",
        ),
        ("listen: code 10013 on 0.0.0.0:80", "permission"),
        ("An existing connection was forcibly closed by the remote host", "reset"),
        ("send failed: os error 54", "reset"),
        ("dialing 10.0.0.9:22 gave errno 65", "unreachable"),
        (
            "A connection attempt failed because the connected party did not properly respond after"
            " a period of time",
            "timeout",
        ),
        ("dial 10.1.1.1:5432 errno=60", "timeout"),
        ("bind 10.9.9.9:80: errno 49", "not-available"),
        (
            "pymongo.errors.ServerSelectionTimeoutError: localhost:27017: [Errno 111] Connection"
            " refused, Timeout: 30s",
            "refused",
        ),
        (
            "pymongo.errors.ServerSelectionTimeoutError: No servers found yet, Timeout: 1.0s",
            "timeout",
        ),
        ("getaddrinfo for db.local failed: [Errno -2] nope", "not-found"),
    ],
)
def test_class_from_errno_and_phrases(text: str, kind: str) -> None:
    ev = classify(text)
    assert ev is not None
    assert ev.kind == kind


@pytest.mark.parametrize(
    "text",
    [
        "listening on 127.0.0.1:111",  # a port, not an errno
        "2026-12-03 06:01:11 server started (61)",  # no connect words: (61) is no errno
        "took 110 ms",
        "served 104 requests (32)",
    ],
)
def test_numbers_outside_an_errno_context_do_not_count(text: str) -> None:
    assert classify(text) is None


def test_errno_tables_name_every_system() -> None:
    systems = {where for _, where, _ in ERRNO_NUMBERS.values()}
    assert {"Linux", "macOS/BSD", "Windows"} <= systems
    for n in (61, 48, 49, 60, 54, 65, 10061, 10048, 10013, 10049, 10060, 10054):
        assert n in ERRNO_NUMBERS


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("OSError: errno 111 while calling ('::1', 6379, 0, 0)", "::1", 6379),
        ("Failed to connect: localhost/127.0.0.1:9042 (os error 111)", "127.0.0.1", 9042),
        ("Failed to fetch http://127.0.0.1:8000/api: code 10061", "127.0.0.1", 8000),
    ],
)
def test_a_text_no_rule_names_gets_class_and_address(text: str, host: str, port: int) -> None:
    p = parse_input(text)
    assert (p.kind, p.host, p.port) == ("refused", host, port)
    assert p.evidence


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(ERRNO_NUMBERS)),
    st.sampled_from(
        [
            "listening on 127.0.0.1:{n}",
            "GET /items/{n} 200",
            "2026-12-03 06:{m}:{m} started worker {n}",
            "took {n} ms",
            "[{m}:{m}:{m}] pid {n} ready",
            "port {n} open",
            "http://localhost:{n}/health ok",
        ]
    ),
    st.integers(0, 59),
)
def test_an_errno_number_as_a_port_or_a_time_is_no_evidence(n: int, shape: str, m: int) -> None:
    assert classify(shape.format(n=n, m=f"{m:02d}")) is None
