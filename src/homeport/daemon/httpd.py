"""A minimal HTTP/1.1 server that serves only the ``ControlApp``.

The daemon uses it when the proxy (``homeport.gateway.server``) is not available, so the
control plane works and can be tested on its own. One request per connection
(``Connection: close``), a bounded head and body, ``Content-Length`` bodies only
(no request ``Transfer-Encoding``: answered 411/400 per RFC 9112 §6.3 rather than parsed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from http import HTTPStatus

from homeport.gateway.contract import ControlApp, ControlRequest, ControlResponse

log = logging.getLogger("homeport.daemon.httpd")

MAX_HEAD = 64 * 1024
MAX_BODY = 1 << 20
HEAD_TIMEOUT = 10.0


class ParseError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Request line and header fields of one request head (pure)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise ParseError(400, "bad bytes") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ParseError(400, "bad request line")
    method, target, _ = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        # RFC 9112 §5.1 no space before the colon; §5.2 obs-fold is refused
        if not sep or not name or name != name.strip() or line[0] in " \t" or "\0" in line:
            raise ParseError(400, "bad header line")
        headers.append((name.lower(), value.strip()))
    path, _, query = target.partition("?")
    return method, path, query, headers


def render_head(resp: ControlResponse, length: int | None) -> bytes:
    reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    lines.append(
        f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    )
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ControlServer:
    """Serves a ``ControlApp`` on a list of addresses."""

    def __init__(self, app: ControlApp) -> None:
        self.app = app
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self, listen: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        bound: list[tuple[str, int]] = []
        for host, port in listen:
            server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
            self._servers.append(server)
            bound += [(s.getsockname()[0], s.getsockname()[1]) for s in server.sockets]
        return bound

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("control request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(self._read(reader, writer), HEAD_TIMEOUT)
        except ParseError as exc:
            writer.write(render_head(ControlResponse(exc.status), 0))
            return
        resp = await self.app.handle(request)
        if resp.stream is None:
            body = b"" if request.method == "HEAD" else resp.body
            writer.write(render_head(resp, len(resp.body)) + body)
            await writer.drain()
            return
        writer.write(render_head(resp, None))
        async for chunk in resp.stream:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> ControlRequest:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ParseError(431, "header too large") from exc
        if len(head) > MAX_HEAD:
            raise ParseError(431, "header too large")
        method, path, query, headers = parse_head(head[:-4])
        names = [k for k, _ in headers]
        if "transfer-encoding" in names:
            raise ParseError(411, "chunked request bodies are not accepted here")
        lengths = {v for k, v in headers if k == "content-length"}
        if len(lengths) > 1 or not all(x.isdigit() for x in lengths):
            raise ParseError(400, "bad content-length")
        length = int(lengths.pop()) if lengths else 0
        if length > MAX_BODY:
            raise ParseError(413, "body too large")
        body = await reader.readexactly(length) if length else b""
        peer = writer.get_extra_info("peername") or ("", 0)
        return ControlRequest(method, path, query, tuple(headers), body, str(peer[0]))
