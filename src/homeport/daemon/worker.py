"""One gateway worker process of ``homeport up --workers N``: a ``ProxyServer`` on listening
sockets the daemon bound for it (``SO_REUSEPORT``, so the kernel spreads connections over
the daemon and its workers), and nothing else.

The daemon keeps the control plane. A worker gets the route table from the daemon, sends
every access record back to the daemon's one access writer, and hands each control-API
request (``homeport.localhost``, the dashboard) to the daemon over its own connection
(``workerwire``). It ends when the daemon's end of its message channel closes, so no worker
outlives its daemon, even one killed with SIGKILL.

Started by ``homeport.daemon.workers`` as ``python -m homeport.daemon.worker``; not a command
for people.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from homeport.daemon import workerwire
from homeport.gateway.contract import AccessRecord, ControlRequest, ControlResponse

log = logging.getLogger("homeport.worker")

#: Access records go to the daemon in batches: at this many, or after ``_FLUSH_S``.
_BATCH = 512
_FLUSH_S = 0.05
#: How long a 502 page may wait for the daemon's word on the service behind it.
_STATUS_TIMEOUT = 0.25


class Channel(asyncio.Protocol):
    """The worker's end of its message channel to the daemon."""

    def __init__(self, on_message: Any) -> None:
        self._frames = workerwire.Frames()
        self._on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for message in self._frames.feed(data):
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.write(workerwire.frame(message))


class AccessBatcher:
    """``AccessSink`` for a worker: records leave in batches, with a timer only while some
    are waiting (an idle worker does not wake)."""

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop) -> None:
        self._channel = channel
        self._loop = loop
        self._batch: list[AccessRecord] = []
        self._timer: asyncio.TimerHandle | None = None

    def put(self, record: AccessRecord) -> None:
        batch = self._batch
        batch.append(record)
        if len(batch) >= _BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(_FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch:
            batch, self._batch = self._batch, []
            self._channel.send({"access": [tuple(r) for r in batch]})


class RemoteControl:
    """``ControlApp`` for a worker: the daemon's control app answers, over a connection
    of its own per request (see ``workerwire``)."""

    def __init__(self, streams: socket.socket) -> None:
        self._streams = streams

    def _connect(self) -> socket.socket:
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self._streams, [b"c"], [theirs.fileno()])
        except BlockingIOError:
            mine.close()
            raise
        finally:
            theirs.close()
        return mine

    async def handle(self, request: ControlRequest) -> ControlResponse:
        try:
            sock = self._connect()
        except OSError as exc:
            log.warning("control request not passed to the daemon: %s", exc)
            return ControlResponse(
                503, [("content-type", "text/plain")], b"homeport: the daemon is busy\n"
            )
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        workerwire.write_request(writer, request)
        try:
            return await workerwire.read_response(reader, writer)
        except BaseException:
            writer.close()
            raise

    def service_status(self, key: str) -> tuple[str, list[str]] | None:
        """``ServiceStatusLookup``: called for a 502 page (rare), synchronous by contract,
        so a short blocking round trip with a deadline."""
        try:
            sock = self._connect()
        except OSError:
            return None
        with sock:
            sock.settimeout(_STATUS_TIMEOUT)
            try:
                sock.sendall(json.dumps({"kind": "status", "key": key}).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    got = sock.recv(65536)
                    if not got:
                        break
                    data += got
            except OSError:
                return None
        answer = json.loads(data) if data.strip() else None
        if not answer:
            return None
        return str(answer[0]), [str(line) for line in answer[1]]


async def serve(args: argparse.Namespace) -> None:
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.server import ProxyServer

    loop = asyncio.get_running_loop()
    listeners = [socket.socket(fileno=int(fd)) for fd in args.listen_fds.split(",")]
    streams = socket.socket(fileno=args.streams_fd)
    streams.setblocking(False)
    remote = RemoteControl(streams)
    server = ProxyServer(
        ProxyConfig(https_only=args.https_only),
        control=remote,
        service_status=remote.service_status,
        tls=_tls(args),
    )
    first_routes = loop.create_future()

    def on_message(message: dict[str, Any]) -> None:
        if "routes" in message:
            server.set_routes(workerwire.routes_from(message))
            if not first_routes.done():
                first_routes.set_result(None)

    messages = socket.socket(fileno=args.messages_fd)
    _, channel = await loop.create_unix_connection(lambda: Channel(on_message), sock=messages)
    batcher = AccessBatcher(channel, loop)
    server.access_sink = batcher.put
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Ctrl-C in a terminal reaches the whole process group: the daemon decides, and ends
    # the workers by closing their channels.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.closed.add_done_callback(lambda _: stop.set())
    try:
        await asyncio.wait_for(asyncio.shield(first_routes), 30)
        bound = await server.adopt(listeners)
        channel.send({"ready": {"pid": os.getpid(), "listen": [list(b) for b in bound]}})
        await stop.wait()
    finally:
        await server.close()
        batcher.flush()
        if channel.transport is not None:
            channel.transport.close()


def _tls(args: argparse.Namespace) -> Any:
    """The same local CA as the daemon's (files under the state dir)."""
    from pathlib import Path

    from homeport.tls import server_context

    try:
        return server_context(Path(args.state_dir))
    except (OSError, ValueError) as exc:
        if args.https_only:
            raise SystemExit(f"homeport worker: --https-only needs TLS: {exc}") from exc
        log.warning("worker: https is off, the local CA could not be loaded (%s)", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="homeport-worker")
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--listen-fds", required=True)
    ap.add_argument("--messages-fd", type=int, required=True)
    ap.add_argument("--streams-fd", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--https-only", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s %(name)s[{args.index}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from homeport.daemon.main import _run_loop

    started = time.monotonic()
    try:
        _run_loop(serve(args))
    except (TimeoutError, ConnectionError) as exc:
        log.error("worker %d ends: %s", args.index, exc or type(exc).__name__)
        return 1
    log.debug("worker %d ran %.1f s", args.index, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
