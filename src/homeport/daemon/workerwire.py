"""What the daemon and its gateway workers (``homeport up --workers N``) say to each other.

Two channels per worker, both socketpairs the daemon makes before it starts the worker:

- **messages**, a stream: frames of a 4-byte big-endian length and a ``marshal``-ed dict.
  Daemon to worker: ``{"routes": [route dicts]}`` whenever the route table changes (the first
  one before the worker accepts anything). Worker to daemon: ``{"ready": {...}}`` once it
  serves, then ``{"access": [record tuples]}`` batches for the one access writer.
  ``marshal`` rather than JSON: a batch of access records is a list of flat tuples, which
  marshal writes and reads ~4x faster, and both ends are the same interpreter (the daemon
  starts the worker with its own ``sys.executable``); the peer is our own child on a private
  socketpair, never anything from outside.
- **streams**, datagrams that carry one file descriptor each (``SCM_RIGHTS``): for each
  control-API request that reaches it, the worker makes a fresh socketpair and hands one end
  to the daemon; the request then runs over that connection (``write_request``, then the
  daemon's ``write_response_head`` and body, then stream chunks until EOF for Server-Sent
  Events). One connection per request keeps SSE streaming and cancellation (the client went
  away: the worker closes its end) free of any multiplexing.

The control app in the daemon makes every decision (Host, Origin, token, client address) on
the ``ControlRequest`` as the worker received it, so a worker answers exactly as the daemon
would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import marshal
import struct
from collections.abc import AsyncIterator
from typing import Any

from homeport.gateway.contract import ControlRequest, ControlResponse, Route, RouteTable

_LEN = struct.Struct(">I")
#: A frame larger than this is a bug (a route table of 10,000 routes is ~3 MB).
MAX_FRAME = 64 * 1024 * 1024


def frame(message: dict[str, Any]) -> bytes:
    data = marshal.dumps(message)
    return _LEN.pack(len(data)) + data


class Frames:
    """Splits a byte stream into messages (``feed`` returns the whole ones)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buf = self._buf
        buf += data
        out: list[dict[str, Any]] = []
        start = 0
        while len(buf) - start >= 4:
            (size,) = _LEN.unpack_from(buf, start)
            if size > MAX_FRAME:
                raise ValueError(f"worker frame of {size} bytes")
            end = start + 4 + size
            if len(buf) < end:
                break
            out.append(marshal.loads(bytes(buf[start + 4 : end])))
            start = end
        del buf[:start]
        return out


def routes_message(table: RouteTable) -> dict[str, Any]:
    """The whole table, secrets included (the worker checks route auth itself)."""
    return {"routes": [dataclasses.asdict(r) for r in table.routes]}


def routes_from(message: dict[str, Any]) -> RouteTable:
    routes = []
    for d in message["routes"]:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in _ROUTE_FIELDS
        }
        routes.append(Route(**fields))
    return RouteTable(tuple(routes))


_ROUTE_FIELDS = frozenset(f.name for f in dataclasses.fields(Route))


# -- one control request over its own connection ------------------------------------------


def write_request(writer: asyncio.StreamWriter, req: ControlRequest) -> None:
    head = {
        "kind": "control",
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": [list(h) for h in req.headers],
        "client_addr": req.client_addr,
        "body_len": len(req.body),
    }
    writer.write(json.dumps(head).encode() + b"\n" + req.body)


async def read_request(reader: asyncio.StreamReader, head: dict[str, Any]) -> ControlRequest:
    body = await reader.readexactly(int(head["body_len"]))
    return ControlRequest(
        method=str(head["method"]),
        path=str(head["path"]),
        query=str(head["query"]),
        headers=tuple((str(k), str(v)) for k, v in head["headers"]),
        body=body,
        client_addr=str(head["client_addr"]),
    )


def write_response_head(writer: asyncio.StreamWriter, resp: ControlResponse) -> None:
    head = {
        "status": resp.status,
        "headers": [list(h) for h in resp.headers],
        "body_len": len(resp.body),
        "stream": resp.stream is not None,
    }
    writer.write(json.dumps(head).encode() + b"\n" + resp.body)


def chunk(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


async def read_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> ControlResponse:
    """The daemon's answer; a stream's chunks are read as the proxy asks for them, and the
    connection closes when the stream ends or the proxy stops reading (``aclose``)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("the daemon closed the control connection")
    head = json.loads(line)
    body = await reader.readexactly(int(head["body_len"]))
    headers = [(str(k), str(v)) for k, v in head["headers"]]
    if not head["stream"]:
        writer.close()
        return ControlResponse(int(head["status"]), headers, body)
    return ControlResponse(int(head["status"]), headers, body, _chunks(reader, writer))


async def _chunks(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> AsyncIterator[bytes]:
    try:
        while True:
            try:
                size = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                return  # the daemon ended the stream
            (n,) = _LEN.unpack(size)
            yield await reader.readexactly(n)
    finally:
        writer.close()
