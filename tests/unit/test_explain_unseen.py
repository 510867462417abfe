"""Generalization: error texts of ecosystems no rule was written for (Rust, Ruby, .NET, JDBC,
Lettuce, Elixir, Kafka, RabbitMQ, aiohttp, asyncpg, Prisma, gRPC, nc, Spring, nginx …), in
the formats those tools print. Each must get its class and its address from the generic
layers (``extract``, ``classify``, the generic rules), never exit 2."""

from __future__ import annotations

import pytest

from homeport.explain.parse import parse_input

CASES: list[tuple[str, str, str | None, int | None]] = [
    ("Error: Connection refused (os error 111)", "refused", None, None),
    (
        'reqwest::Error { kind: Request, url: "http://127.0.0.1:8080/", source: hyper_util::'
        'client::legacy::Error(Connect, ConnectError("tcp connect error", 127.0.0.1:8080, Os {'
        ' code: 111, kind: ConnectionRefused, message: "Connection refused" })) }',
        "refused",
        "127.0.0.1",
        8080,
    ),
    (
        "Errno::ECONNREFUSED: Failed to open TCP connection to localhost:3000 (Connection"
        ' refused - connect(2) for "localhost" port 3000)',
        "refused",
        "localhost",
        3000,
    ),
    (
        "System.Net.Http.HttpRequestException: No connection could be made because the target"
        " machine actively refused it. (localhost:5001)",
        "refused",
        "localhost",
        5001,
    ),
    (
        "org.postgresql.util.PSQLException: Connection to localhost:5432 refused. Check that"
        " the hostname and port are correct and that the postmaster is accepting TCP/IP"
        " connections.",
        "refused",
        "localhost",
        5432,
    ),
    (
        "io.lettuce.core.RedisConnectionException: Unable to connect to"
        " localhost/<unresolved>:6379",
        "refused",
        "localhost",
        6379,
    ),
    (
        "[error] Postgrex.Protocol (#PID<0.345.0>) failed to connect: ** (DBConnection."
        "ConnectionError) tcp connect (localhost:5432): connection refused - :econnrefused",
        "refused",
        "localhost",
        5432,
    ),
    (
        "WARN [org.apache.kafka.clients.NetworkClient] [Producer clientId=producer-1] Connection"
        " to node -1 (localhost/127.0.0.1:9092) could not be established. Broker may not be"
        " available.",
        "refused",
        "127.0.0.1",
        9092,
    ),
    (
        "aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host localhost:8000"
        " ssl:default [Connect call failed ('127.0.0.1', 8000)]",
        "refused",
        "127.0.0.1",
        8000,
    ),
    (
        "Error: P1001: Can't reach database server at `localhost`:`5432`",
        "refused",
        "localhost",
        5432,
    ),
    (
        'details = "failed to connect to all addresses; last error: UNKNOWN:'
        ' ipv4:127.0.0.1:50051: Failed to connect to remote host: Connection refused"',
        "refused",
        "127.0.0.1",
        50051,
    ),
    (
        "nc: connect to localhost port 8080 (tcp) failed: Connection refused",
        "refused",
        "localhost",
        8080,
    ),
    ("Web server failed to start. Port 8080 was already in use.", "in-use", None, 8080),
    ("bind() to 0.0.0.0:80 failed (98: Address already in use)", "in-use", "0.0.0.0", 80),
    ("nginx: [emerg] bind() to [::]:80 failed (13: Permission denied)", "permission", "::", 80),
    (
        "System.Net.Sockets.SocketException (10048): Only one usage of each socket address"
        " (protocol/network address/port) is normally permitted. [::]:5000",
        "in-use",
        "::",
        5000,
    ),
]


@pytest.mark.parametrize(("text", "kind", "host", "port"), CASES, ids=[c[0][:40] for c in CASES])
def test_unseen_texts_get_class_and_address(
    text: str, kind: str, host: str | None, port: int | None
) -> None:
    p = parse_input(text)
    assert (p.kind, p.host, p.port) == (kind, host, port)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "dial unix /var/run/docker.sock: connect: no such file or directory",
            "/var/run/docker.sock",
        ),
        ("Error: connect ENOENT /tmp/app.sock", "/tmp/app.sock"),
    ],
)
def test_unseen_unix_socket_texts(text: str, path: str) -> None:
    p = parse_input(text)
    assert (p.kind, p.path) == ("refused", path)


@pytest.mark.parametrize(
    "text",
    [
        "git@github.com: Permission denied (publickey).",
        "Error: 404 Not Found at 2026-12-03T06:07:07Z",
        "TypeError: Cannot read properties of undefined (reading 'map') at main.js:12:5",
        "build finished in 1503 ms (111 modules)",
    ],
)
def test_texts_that_are_no_socket_error_stay_unread(text: str) -> None:
    from homeport.errors import UsageError

    with pytest.raises(UsageError):
        parse_input(text)


@pytest.mark.parametrize(
    "text",
    [
        'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed:'
        " No such file or directory\n\tIs the server running locally and accepting connections"
        " on that socket?",
        "psql: could not connect to server: No such file or directory\n\tIs the server running"
        " locally and accepting\n\tconnections on Unix domain socket"
        ' "/var/run/postgresql/.s.PGSQL.5432"?',
    ],
)
def test_libpq_on_its_socket(text: str) -> None:
    p = parse_input(text)
    assert (p.tool, p.kind, p.path) == ("psql", "refused", "/var/run/postgresql/.s.PGSQL.5432")
