"""Address, port and target classification tables."""

from __future__ import annotations

import pytest

from homeport import addr
from homeport.errors import UsageError


@pytest.mark.parametrize(
    ("text", "cls", "exposure"),
    [
        ("127.0.0.1", "loopback", "loopback"),
        ("127.0.0.2", "loopback", "loopback"),  # the whole 127.0.0.0/8 block
        ("127.255.255.254", "loopback", "loopback"),
        ("::1", "loopback", "loopback"),
        ("[::1]", "loopback", "loopback"),
        ("::ffff:127.0.0.1", "loopback", "loopback"),
        ("0.0.0.0", "unspecified", "all-interfaces"),
        ("::", "unspecified", "all-interfaces"),
        ("192.168.1.20", "private", "lan"),
        ("10.0.0.5", "private", "lan"),
        ("172.16.0.1", "private", "lan"),
        ("169.254.10.1", "link-local", "lan"),
        ("fe80::1%eth0", "link-local", "lan"),
        ("100.101.102.103", "cgnat", "lan"),  # tailnets live here
        ("fd12:3456::1", "ula", "lan"),
        ("8.8.8.8", "public", "public"),
        ("2001:4860::1", "public", "public"),
    ],
)
def test_address_class_and_exposure(text: str, cls: str, exposure: str) -> None:
    assert addr.address_class(text) == cls
    assert addr.exposure(text) == exposure


def test_names_are_not_addresses() -> None:
    assert addr.address_class("localhost") == "name"


@pytest.mark.parametrize(
    ("port", "cls"),
    [
        (22, "system"),
        (1023, "system"),
        (1024, "registered"),
        (49151, "registered"),
        (49152, "dynamic"),
        (65535, "dynamic"),
    ],
)
def test_port_class(port: int, cls: str) -> None:
    assert addr.port_class(port) == cls


def test_needs_privilege_follows_the_system_setting() -> None:
    assert addr.needs_privilege(80)
    assert not addr.needs_privilege(80, unprivileged_start=0)
    assert not addr.needs_privilege(8080)


@pytest.mark.parametrize(
    ("text", "host", "port", "scheme"),
    [
        ("3000", None, 3000, None),
        (":3000", None, 3000, None),
        ("localhost:3000", "localhost", 3000, None),
        ("127.0.0.1:62893", "127.0.0.1", 62893, None),
        ("[::1]:5432", "::1", 5432, None),
        ("http://api.localhost:62893/x", "api.localhost", 62893, "http"),
        ("https://example.test", "example.test", 443, "https"),
        ("postgres://u@localhost/db", "localhost", 5432, "postgres"),
    ],
)
def test_parse_target(text: str, host: str | None, port: int, scheme: str | None) -> None:
    t = addr.parse_target(text)
    assert (t.host, t.port, t.scheme) == (host, port, scheme)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("70000", "out of range"),
        ("::1", "without a port"),
        ("[::1]", "[IPv6]:PORT"),
        ("localhost", "no port"),
        ("host:http", "cannot read a port"),
        ("ftp2://x", "no default"),
    ],
)
def test_parse_target_rejects_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("[", r"\[").replace("]", r"\]")):
        addr.parse_target(text)


def test_target_display() -> None:
    assert addr.parse_target("[::1]:5432").display == "[::1]:5432"
    assert addr.parse_target("5432").display == ":5432"


def test_render_clean_defuses_control_characters() -> None:
    from homeport.cli.render import clean

    assert clean("python3 -c \nimport os\tx") == "python3 -c \\nimport os x"
    assert clean("evil\x1b]0;title\x07name") == "evil\\x1b]0;title\\x07name"
    assert clean("caf\u00e9 \u2603") == "caf\u00e9 \u2603"  # printable non-ASCII stays
