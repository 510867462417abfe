"""``homeport mcp --http``: the same server over Streamable HTTP at
``http://homeport.localhost:PORT/mcp``, for agent hosts that speak HTTP.

It listens on loopback only (127.0.0.1 and ::1) with the control API's protections, checked
in this order before the SDK sees a request: the ``Host`` must be one of homeport's own names
with this port (DNS rebinding), an ``Origin``, when sent, must be this server's own, and
``Authorization: Bearer`` must carry the daemon's token (the token file the CLI uses). The
SDK's own transport security repeats the Host/Origin check behind it.

A separate listener, not a path on the gateway: serving it from the gateway would put the
SDK (0.8 s of imports, pydantic, starlette) and the tools' blocking work (owner walks,
audits) into the daemon that proxies every request, behind a bridge from its own HTTP/1.1
server to ASGI; here the session is this process, as on stdio, and ends with it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

log = logging.getLogger("homeport.mcp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/mcp"


def allowed_hosts(port: int) -> tuple[str, ...]:
    from homeport.daemon.config import CONTROL_HOSTS

    return tuple(f"{name}:{port}" for name in CONTROL_HOSTS)


def refusal(headers: dict[str, str], port: int, token: str) -> tuple[int, str] | None:
    """(status, message) for a request that may not reach the server, else None (pure).
    ``headers`` are lower-cased names."""
    hosts = allowed_hosts(port)
    host = headers.get("host", "").lower()
    if host not in hosts:
        return 403, f"Host {host!r} is not this server's name (use http://{hosts[0]}{PATH})"
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
        return 403, f"Origin {origin!r} may not use this server"
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return 403, "cross-site requests may not use this server"
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
        return 401, "missing or wrong token: send Authorization: Bearer <the daemon's token file>"
    return None


def guard(app: App, port: int, token: str) -> App:
    """``app`` behind ``refusal``: a refused request gets a JSON error and goes no further."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            refused = refusal(headers, port, token)
            if refused is not None:
                status, message = refused
                log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), message)
                body = json.dumps({"error": message}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def loopback_sockets(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 and ::1 (never beyond loopback)."""
    from homeport.errors import EnvironmentProblem

    out: list[socket.socket] = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(128)
            s.setblocking(False)
        except OSError as exc:
            s.close()
            if family == socket.AF_INET6 and out:  # no IPv6 here: IPv4 alone will do
                continue
            for opened in out:
                opened.close()
            raise EnvironmentProblem(f"cannot listen on {addr}:{port}: {exc.strerror}") from exc
        out.append(s)
    return out


async def serve_http(server: Any, session_close: Callable[[], None], port: int) -> None:
    """Serve ``server`` (the SDK's low-level ``Server``) at ``/mcp`` on loopback ``port``."""
    import anyio
    import anyio.to_thread
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from homeport.daemon.config import DaemonConfig
    from homeport.daemon.process import ensure_token

    token = ensure_token(DaemonConfig.build().token_path)
    hosts = list(allowed_hosts(port))
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )
    app = server.streamable_http_app(streamable_http_path=PATH, transport_security=security)
    sockets = loopback_sockets(port)

    class Server(uvicorn.Server):
        # uvicorn re-raises a captured SIGTERM once it has shut down, which would end this
        # process before the session's cleanup: the signals are watched below instead.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    srv = Server(uvicorn.Config(guard(app, port, token), log_level="warning", lifespan="on"))

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as sigs:
            async for _ in sigs:
                srv.should_exit = True
                return

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal)
            await srv.serve(sockets=sockets)
            tg.cancel_scope.cancel()
    finally:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
        await anyio.to_thread.run_sync(session_close)
