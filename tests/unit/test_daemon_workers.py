"""The daemon-worker wire (``daemon.workerwire``) and ``--workers`` as an option: frames
split anywhere, route tables with every field, the count's checks, and the argv of ``-d``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeport.cli.up import _workers
from homeport.daemon import workerwire
from homeport.daemon.config import MAX_WORKERS, DaemonConfig
from homeport.daemon.process import daemon_argv
from homeport.errors import UsageError
from homeport.gateway.contract import (
    AccessRecord,
    ControlRequest,
    ControlResponse,
    Route,
    RouteTable,
)

_RECORD = AccessRecord(
    1.5, "127.0.0.1", 5000, "api.localhost:62893", "GET", "/x?y=ü", 200, 0, 12, 0.4, "api"
)


@given(st.lists(st.integers(min_value=1, max_value=97), max_size=40))
def test_frames_come_out_whole_however_the_stream_is_cut(cuts: list[int]) -> None:
    messages: list[dict[str, Any]] = [
        {"access": [tuple(_RECORD), tuple(_RECORD._replace(status=502, reason="upstream"))]},
        {"ready": {"pid": 7, "listen": [["127.0.0.1", 1]]}},
        {"routes": []},
    ]
    data = b"".join(workerwire.frame(m) for m in messages)
    frames = workerwire.Frames()
    out = []
    pos = 0
    for n in cuts:
        out += frames.feed(data[pos : pos + n])
        pos += n
    out += frames.feed(data[pos:])
    assert out == messages
    assert AccessRecord._make(out[0]["access"][0]) == _RECORD


def test_a_frame_claiming_too_many_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="frame"):
        workerwire.Frames().feed((workerwire.MAX_FRAME + 1).to_bytes(4, "big") + b"x")


def test_a_route_table_crosses_with_every_field_secrets_included() -> None:
    table = RouteTable(
        (
            Route(
                "api.localhost",
                "http://127.0.0.1:8000",
                auth="basic",
                secret="me:pw",
                allow_hosts=("api.lan",),
                service_id="s1",
                allow_cross_site=True,
                allow_origins=("http://web.localhost:5173",),
                allow_underscores=True,
            ),
            Route("shop.localhost", "unix:/tmp/s.sock", wildcard=True, same_origin=True),
        )
    )
    [message] = workerwire.Frames().feed(workerwire.frame(workerwire.routes_message(table)))
    assert workerwire.routes_from(message) == table


def test_a_control_request_and_a_streamed_answer_cross_one_connection() -> None:
    async def main() -> tuple[ControlRequest, ControlResponse, list[bytes]]:
        got: list[ControlRequest] = []

        async def daemon_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            import json

            head = json.loads(await reader.readline())
            got.append(await workerwire.read_request(reader, head))

            async def chunks() -> AsyncIterator[bytes]:
                yield b"event: hello\n\n"
                yield b"data: 2\n\n"

            resp = ControlResponse(200, [("content-type", "text/event-stream")], b"", chunks())
            workerwire.write_response_head(writer, resp)
            assert resp.stream is not None
            async for c in resp.stream:
                writer.write(workerwire.chunk(c))
            await writer.drain()
            writer.close()

        import socket

        a, b = socket.socketpair()
        server_task = asyncio.ensure_future(
            daemon_side(*await asyncio.open_unix_connection(sock=a))
        )
        reader, writer = await asyncio.open_unix_connection(sock=b)
        req = ControlRequest(
            "POST", "/api/routes", "x=1", (("host", "homeport.localhost:1"),), b"{}", "::1"
        )
        workerwire.write_request(writer, req)
        resp = await workerwire.read_response(reader, writer)
        assert resp.stream is not None
        pieces = [p async for p in resp.stream]
        await server_task
        return got[0], resp, pieces

    req, resp, pieces = asyncio.run(main())
    assert req.client_addr == "::1"
    assert req.body == b"{}"
    assert req.header("Host") == "homeport.localhost:1"
    assert resp.status == 200
    assert pieces == [b"event: hello\n\n", b"data: 2\n\n"]


def test_workers_count_is_checked_and_reaches_the_background_daemon(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="out of range"):
        DaemonConfig.build(workers=0, directory=tmp_path)
    with pytest.raises(UsageError, match="out of range"):
        DaemonConfig.build(workers=MAX_WORKERS + 1, directory=tmp_path)
    config = DaemonConfig.build(workers=3, directory=tmp_path)
    argv = daemon_argv(config, 5)
    assert argv[argv.index("--workers") + 1] == "3"
    assert "--workers" not in daemon_argv(DaemonConfig.build(directory=tmp_path), 5)


def test_workers_flag_takes_a_number_or_auto() -> None:
    import os

    assert _workers("2") == 2
    assert _workers("auto") == len(os.sched_getaffinity(0))
    with pytest.raises(UsageError, match="a number or auto"):
        _workers("many")
