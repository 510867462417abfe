"""The daemon client's HTTP/1.1 response reader (daemon/client.py), on response bytes."""

from __future__ import annotations

import pytest

from homeport.daemon.client import parse_response

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def test_content_length_body_is_cut_at_its_length() -> None:
    assert parse_response(HEAD + b"Content-Length: 2\r\n\r\n{}trailing") == (200, b"{}")


def test_chunked_body_is_joined_and_extensions_ignored() -> None:
    raw = (
        HEAD + b'Transfer-Encoding: chunked\r\n\r\n3;x=1\r\n{"a\r\n4\r\n": 1\r\n1\r\n}\r\n0\r\n\r\n'
    )
    assert parse_response(raw) == (200, b'{"a": 1}')


def test_without_length_the_body_runs_to_the_close() -> None:
    assert parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnot here") == (404, b"not here")


def test_field_names_are_case_insensitive() -> None:
    assert parse_response(b"HTTP/1.1 201 Created\r\ncontent-LENGTH: 1\r\n\r\nxy") == (201, b"x")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "not an HTTP/1.1 response"),  # the server closed without answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "not an HTTP/1.1 response"),
        (HEAD + b"Content-Length: 10\r\n\r\nshort", "cut short: 5 of 10"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", "chunked body cut short"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.1 response"),
    ],
)
def test_malformed_or_truncated_responses_raise_value_error(raw: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_response(raw)
