"""The address extractor: every form tools print, and which address a failure is about.

Property tests (hypothesis) render a random address in each form inside random filler and
check it comes back; texts with a local and a remote address check the remote is chosen.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeport.explain.extract import Address, choose, find_addresses

V4 = st.builds(
    lambda a, b, c, d: f"{a}.{b}.{c}.{d}",
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
)
V6 = st.ip_addresses(v=6).map(lambda a: str(a)).filter(lambda s: "." not in s)
LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
NAME = st.one_of(
    st.just("localhost"),
    st.lists(LABEL, min_size=2, max_size=4)
    .map(".".join)
    .filter(
        lambda n: n.rsplit(".", 1)[-1] not in ("py", "js", "go", "ts", "rs", "sh", "md", "c", "h")
    ),
)
PORT = st.integers(1, 65535)
#: Filler that a log line carries around an address, without address-like text of its own.
FILLER = st.sampled_from(
    [
        "",
        "error: ",
        "2026-12-03T06:07:07.123Z ERROR ",
        "[12:34:56] ",
        "failed after 1503 ms ",
        "at Object.<anonymous> (/app/src/index.js:12:5) ",
        'File "/usr/lib/python3.11/socket.py", line 851 ',
        "pid 4242 ",
    ]
)


def forms(host4: str, host6: str, name: str, port: int) -> list[tuple[str, str, int]]:
    """(text, host, port) for every form, for these values."""
    return [
        (f"http://{host4}:{port}/x", host4, port),
        (f"https://[{host6}]:{port}/", host6, port),
        (f"{host4}:{port}", host4, port),
        (f"{name}:{port}", name, port),
        (f"[{host6}]:{port}", host6, port),
        (f"('{host4}', {port})", host4, port),
        (f"('{host6}', {port}, 0, 0)", host6, port),
        (f"host '{name}' port {port}", name, port),
        (f"connect to host {host4} port {port}: Connection refused", host4, port),
        (f"host='{host4}', port={port})", host4, port),
        (f"Connecting to {name} ({name})|{host4}|:{port}... failed", host4, port),
        (f"Connecting to {name} ({name})|{host6}|:{port}... failed", host6, port),
        (f"Connection refused: {name}/{host4}:{port}", host4, port),
        (f"connect ECONNREFUSED {host6}:{port}", host6, port),
        (f"Can't connect to MySQL server on '{host4}:{port}' (111)", host4, port),
        (f'connection to server at "{name}" ({host4}), port {port} failed', host4, port),
        (f"last error: UNKNOWN: ipv4:{host4}:{port}: Failed to connect", host4, port),
        (f"last error: UNKNOWN: ipv6:[{host6}]:{port}: Failed to connect", host6, port),
        (f"Can't reach database server at `{name}`:`{port}`", name, port),
        (f"Unable to connect to {name}/<unresolved>:{port}", name, port),
        (f"Connection refused: {name}/{host6}:{port}", host6, port),
    ]


@settings(max_examples=150, deadline=None)
@given(V4, V6, NAME, PORT, FILLER, FILLER, st.integers(0, 20))
def test_every_form_is_read(
    host4: str, host6: str, name: str, port: int, before: str, after: str, which: int
) -> None:
    text, host, want_port = forms(host4, host6, name, port)[which]
    found = find_addresses(before + text + " " + after)
    full = [(a.host, a.port) for a in found if a.host is not None and a.port is not None]
    assert (_canon(host), want_port) in full, (text, found)


@settings(max_examples=100, deadline=None)
@given(V4, V4, PORT, PORT, st.integers(0, 4))
def test_the_remote_address_is_chosen_not_the_local_one(
    local: str, remote: str, lport: int, rport: int, shape: int
) -> None:
    texts = [
        f"Error: connect ECONNREFUSED {remote}:{rport} - Local ({local}:{lport})",
        f"read tcp {local}:{lport}->{remote}:{rport}: read: connection reset by peer",
        f"local address {local}:{lport}, connect to {remote}:{rport} refused",
        f"from {local}:{lport}: dial tcp {remote}:{rport}: connect: connection refused",
        f"laddr={local}:{lport} raddr={remote}:{rport} Connection refused",
    ]
    text = texts[shape]
    got = choose(text, find_addresses(text), "refused")
    assert got is not None
    assert (got.host, got.port) == (_canon(remote), rport), text


@settings(max_examples=60, deadline=None)
@given(V4, PORT, PORT)
def test_a_bind_failure_chooses_the_bound_address(host: str, bport: int, other: int) -> None:
    text = f"client {host}:{other}; error while attempting to bind on address ('{host}', {bport})"
    got = choose(text, find_addresses(text), "in-use")
    assert got is not None
    assert got.port == bport


@settings(max_examples=60, deadline=None)
@given(V4, PORT, st.integers(1, 40))
def test_the_address_on_the_failure_line_wins_in_a_log(host: str, port: int, lines: int) -> None:
    log = "".join(f"INFO connected to 10.0.{i % 250}.1:{1000 + i}\n" for i in range(lines))
    text = log + f"ERROR connect ECONNREFUSED {host}:{port}\n" + "INFO retrying in 1s\n"
    near = text.index("ECONNREFUSED")
    got = choose(text, find_addresses(text), "refused", near)
    assert got is not None
    assert (got.host, got.port) == (_canon(host), port)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("unix:///var/run/docker.sock", "/var/run/docker.sock"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker"
            " daemon running?",
            "/var/run/docker.sock",
        ),
        ('on socket "/tmp/.s.PGSQL.5432" failed', "/tmp/.s.PGSQL.5432"),
        ("through socket '/run/mysqld/mysqld.sock' (2)", "/run/mysqld/mysqld.sock"),
        ("http+unix://%2Fvar%2Frun%2Fdocker.sock/v1.43/info", "/var/run/docker.sock"),
    ],
)
def test_unix_socket_paths(text: str, want: str) -> None:
    paths = [a.path for a in find_addresses(text) if a.path]
    assert paths == [want]


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03 06:07:07,123 INFO started",  # a time is no host:port
        "at foo (/app/src/main.js:12:5)",  # a source position
        "main.go:42: panic",
        'File "x.py", line 12',
        "took 12:34 minutes",
        "ratio 3:2",
    ],
)
def test_no_address_in_times_and_source_positions(text: str) -> None:
    assert [a for a in find_addresses(text) if a.host is not None] == []


def test_host_only_and_port_only_forms() -> None:
    (on,) = find_addresses("Can't connect to server on '127.0.0.1' (115)")
    assert (on.form, on.host, on.port) == ("on-host", "127.0.0.1", None)
    (port,) = find_addresses("Port 5173 is already in use")
    assert (port.form, port.host, port.port) == ("port", None, 5173)


def test_a_url_without_a_port_gets_its_scheme_default() -> None:
    got = {(a.host, a.port) for a in find_addresses("GET https://localhost/ and redis://cache")}
    assert got == {("localhost", 443), ("cache", 6379)}


def test_a_v4_mapped_address_is_its_ipv4() -> None:
    found = find_addresses("connect ECONNREFUSED ::ffff:127.0.0.1:3000 and [::ffff:10.0.0.1]:80")
    assert [(a.host, a.port) for a in found] == [("127.0.0.1", 3000), ("10.0.0.1", 80)]


def test_java_prints_the_name_beside_the_ip() -> None:
    (a,) = find_addresses("Connection refused: localhost/0:0:0:0:0:0:0:1:8080")
    assert (a.name, a.host, a.port) == ("localhost", "::1", 8080)


def test_contained_forms_are_one_address() -> None:
    found = find_addresses("fatal: unable to access 'http://127.0.0.1:9/x/': Failed")
    assert [(a.form, a.host, a.port) for a in found] == [("url", "127.0.0.1", 9)]


def test_thousands_of_addresses_are_read() -> None:
    text = " ".join(f"10.1.{i // 250}.{i % 250}:{1000 + i}" for i in range(5000))
    assert len(find_addresses(text)) == 5000


def _canon(host: str) -> str:
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        return host
    mapped = getattr(a, "ipv4_mapped", None)  # ::ffff:a.b.c.d is read as a.b.c.d
    return str(mapped or a)


def test_address_is_a_frozen_record() -> None:
    a = Address(0, 1, "colon", "h", 1)
    with pytest.raises(AttributeError):
        a.port = 2  # type: ignore[misc]
