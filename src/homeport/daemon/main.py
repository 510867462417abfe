"""The daemon itself: ``homeport up`` runs ``run_foreground`` (also what ``-d`` starts).

It takes the lock, makes sure of the token, opens the store, builds the gateway state, the
control app, the proxy and the dashboard, restores routes and supervision, listens, reports
readiness, and on SIGTERM/SIGINT or ``POST /api/shutdown`` closes everything in reverse.
Finding, starting and stopping a daemon from outside lives in ``homeport.daemon.process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport import __version__
from homeport.daemon.activation import PassedSocket
from homeport.daemon.config import DaemonConfig
from homeport.daemon.control import ControlApp
from homeport.daemon.lag import LoopLag, RunDelay
from homeport.daemon.process import acquire_lock, ensure_token
from homeport.daemon.routes import AuthSpec, parse_auth
from homeport.daemon.state import Gateway
from homeport.errors import DaemonError, HomeportError
from homeport.gateway.contract import RouteTable
from homeport.store import AccessWriter, Store

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("homeport.daemon")


def run_foreground(
    config: DaemonConfig,
    *,
    ready_fd: int | None = None,
    sockets: list[PassedSocket] | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT or ``POST /api/shutdown``; returns the exit status.
    ``sockets``: listening sockets to serve instead of binding (socket activation)."""
    ready = _Ready(ready_fd)
    try:
        lock = acquire_lock(config)
    except HomeportError as exc:
        ready.fail(exc.message)
        raise
    try:
        token = ensure_token(config.token_path)
        _run_loop(_serve(config, token, ready, sockets or []))
    except HomeportError as exc:
        ready.fail(exc.message)
        raise
    finally:
        with contextlib.suppress(OSError):
            config.info_path.unlink()
        os.close(lock)
    return 0


def _run_loop(main: Any) -> None:
    """On the proxy's choice of loop (uvloop when installed); ``HOMEPORT_UVLOOP=0`` opts out."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if os.environ.get("HOMEPORT_UVLOOP") != "0":
        with contextlib.suppress(ImportError):
            from homeport.gateway.server import loop_factory

            factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


class _Ready:
    """The pipe to a waiting parent (``-d``); silent in the foreground."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self.foreground = fd is None

    def _send(self, line: str) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode() + b"\n")
            os.close(self._fd)
        self._fd = None

    def ok(self, info: dict[str, Any]) -> None:
        self._send("ready " + json.dumps(info))

    def fail(self, message: str) -> None:
        self._send("error " + message.replace("\n", " "))


class _Parts:
    """Everything one daemon run owns, built in order and closed in reverse."""

    def __init__(self, config: DaemonConfig, token: str, stop: asyncio.Event) -> None:
        self.store = Store(config.db_path, access_capacity=config.access_capacity)
        # Requests are counted for /metrics from the access batches, so the writer runs even
        # with --no-access-log; it then stores no rows.
        self.writer = AccessWriter(
            config.db_path, capacity=config.access_capacity, store_rows=config.access_log
        )
        self._targets: list[Callable[[RouteTable], None]] = []
        self.table = RouteTable()
        self.bound: list[tuple[str, int]] = []
        #: ``--workers N``: the N-1 gateway worker processes (``daemon.workers``), once started.
        self.workers: Any = None
        self.gateway = Gateway(self.store, self._publish, _default_auth(config, token))
        self.app = ControlApp(
            config, self.gateway, token, on_shutdown=stop.set, status_extra=self._status
        )
        self.supervisor = _mount_projects(config, self.app, self.gateway)
        self.server, self.kind = _make_server(config, self.app, self.gateway, self.writer)
        self.tcp: Any = None
        if hasattr(self.server, "set_routes"):
            from homeport.gateway.tcp import http_only, leased_tcp_routes

            proxy_set = self.server.set_routes
            self._targets.append(lambda table: proxy_set(http_only(table)))
            # TCP routes (issue 11): their own listeners, same process, same access log.
            self.tcp = self.gateway.tcp = leased_tcp_routes(
                self.writer.sink if config.access_log else None
            )
            self._targets.append(self.tcp.set_routes)
        conns = getattr(self.server, "conns", None)
        self._run_delay = RunDelay()  # opened on the loop's thread: the one it measures
        self.lag = LoopLag(
            asyncio.get_running_loop(), busy=lambda: bool(conns), run_delay=self._run_delay
        )
        self.dashboard = _mount_dashboard(self.app)
        self.app.metrics = _mount_metrics(config, self)
        if self.dashboard is not None:  # access rows reach the pages as soon as committed
            self.writer.on_written = self.dashboard.nudge

    def _publish(self, table: RouteTable) -> None:
        self.table = table
        for set_routes in self._targets:
            set_routes(table)

    def _status(self) -> dict[str, Any]:
        # What was really bound (or passed by socket activation), not what config asked for.
        listen = {"listen": [list(b) for b in self.bound]} if self.bound else {}
        return {
            **listen,
            "proxy": self.kind,
            "build": _build(self.kind),
            "access_dropped": self.writer.dropped,
            "dashboard": self.dashboard is not None,
            "loop_lag_ms": self.lag.snapshot(),
            "workers": self._workers_status(),
        }

    def _workers_status(self) -> list[dict[str, Any]]:
        """The gateway's processes: this one (index 0), then each worker."""
        me = {"index": 0, "pid": os.getpid(), "state": "running", "started": self.gateway.started}
        me["restarts"] = 0
        return [me, *(self.workers.status() if self.workers is not None else [])]

    async def start_workers(self, config: DaemonConfig, shared: list[socket.socket]) -> None:
        """``--workers N``: N-1 more gateway processes on the same addresses."""
        from homeport.daemon.workers import Workers
        from homeport.gateway.tcp import http_only

        if config.workers <= 1 or self.kind != "proxy":
            return
        workers = Workers(
            config.workers,
            state_dir=str(config.state_dir),
            control=self.app,
            access_sink=self.writer.sink,
            service_status=self.gateway.status_lookup,
            https_only=getattr(self.server, "config", None) is not None
            and self.server.config.https_only,
            verbose=log.isEnabledFor(logging.DEBUG),
        )
        workers.set_routes(http_only(self.table))
        try:
            await workers.start(self.bound, shared)
        except (OSError, RuntimeError) as exc:
            raise DaemonError(f"cannot start {config.workers - 1} gateway workers: {exc}") from exc
        self.workers = workers
        self._targets.append(lambda table: workers.set_routes(http_only(table)))

    async def close(self) -> None:
        self.lag.stop()
        self._run_delay.close()
        await self.supervisor.close()  # the stacks first: their routes go with them
        if self.workers is not None:
            await self.workers.close()
        if self.tcp is not None:
            await self.tcp.close()
        await self.server.close()
        if self.dashboard is not None:
            await self.dashboard.close()
        await self.gateway.close()
        self.writer.close()
        self.store.close()


async def _serve(
    config: DaemonConfig, token: str, ready: _Ready, sockets: list[PassedSocket]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parts = _Parts(config, token, stop)
    parts.writer.start()
    try:
        await parts.gateway.restore()
        await parts.supervisor.restore()
        if sockets and hasattr(parts.server, "adopt"):
            if (
                any(p.name == "https" for p in sockets)
                and getattr(parts.server, "tls", None) is None
            ):
                # Every listener takes TLS and plain HTTP alike (the first byte decides),
                # so a socket's name changes nothing, unless TLS is off altogether.
                log.warning("a socket named https was passed, but TLS is off: plain HTTP only")
            bound = list(await parts.server.adopt([p.sock for p in sockets]))
        else:
            bound = await _start(parts.server, config, reuse_port=parts.kind == "proxy")
        parts.bound = bound
        await parts.start_workers(config, [p.sock for p in sockets])
        parts.lag.start()
        if parts.dashboard is not None:
            parts.dashboard.start()
        info = {
            "pid": os.getpid(),
            "port": config.port,
            "url": config.url,
            "version": __version__,
            "listen": [list(b) for b in bound],
            "started": parts.gateway.started,
            "proxy": parts.kind,
            "build": _build(parts.kind),
            "workers": 1 + len(parts.workers.workers if parts.workers is not None else ()),
        }
        _write_info(config.info_path, info)
        log.info("homeport gateway at %s (pid %d, %s)", config.url, os.getpid(), parts.kind)
        if ready.foreground:
            _banner(config, parts)
        ready.ok(info)
        await stop.wait()
    finally:
        await parts.close()


def _banner(config: DaemonConfig, parts: _Parts) -> None:
    """What a person running ``homeport up`` in a terminal needs: where, and how to log in.

    The login code is one-time and short-lived, and it goes to the terminal only: a daemon
    started with ``-d`` never writes one to its log file."""
    code = parts.app.sessions.new_code(time.time())
    sys.stderr.write(
        f"homeport gateway: {config.url}  (Ctrl-C to stop)\n"
        f"dashboard:        {config.url}/login?token={code}\n"
        "                  (a one-time link, valid 2 minutes; 'homeport open' makes another)\n"
    )
    sys.stderr.flush()


def _mount_projects(config: DaemonConfig, app: ControlApp, gateway: Gateway) -> Any:
    """The project supervisor (issue 10) and its endpoints."""
    from homeport.daemon import projects_api
    from homeport.services.supervisor import Supervisor

    sup = Supervisor(gateway, config.state_dir, config.route_url)
    projects_api.install(app, sup)
    app.projects = sup
    return sup


def _mount_dashboard(app: ControlApp) -> Any:
    """The dashboard (issue 5) on the control app, when its package is installed."""
    try:
        from homeport import web
    except ImportError:
        return None
    return web.install(app)


def _mount_metrics(config: DaemonConfig, parts: _Parts) -> Any:
    """``/metrics`` (issue 15), fed by the access writer's batches."""
    from homeport import metrics

    server, gateway, store = parts.server, parts.gateway, parts.store
    listeners = None
    if parts.dashboard is not None:
        # The dashboard samples the inventory every 1-2 s anyway: count its snapshot (about
        # 0.2 ms for 2,000 rows) rather than dump the sockets a second time.
        sampler = parts.dashboard.sampler
        listeners = lambda: metrics.count_rows(sampler.snapshot.values())  # noqa: E731
    m = metrics.Metrics(
        metrics.Sources(
            open_connections=lambda: len(getattr(server, "conns", ())),
            routes=lambda: len(gateway.routes()),
            dropped=lambda: parts.writer.dropped,
            services=lambda: [(s.name, s.state, s.started) for s in store.services()],
            audit=lambda: metrics.load_audit(config.state_dir),
        ),
        listeners,
    )
    parts.writer.on_batch = m.requests.observe
    return m


def _default_auth(config: DaemonConfig, token: str) -> AuthSpec:
    if config.auth == "token":
        return AuthSpec("token", token)
    return parse_auth(config.auth)


def _make_server(
    config: DaemonConfig, app: ControlApp, gateway: Gateway, writer: AccessWriter
) -> tuple[Any, str]:
    """The proxy when it is installed, else a control-only server."""
    try:
        from homeport.gateway.config import ProxyConfig
        from homeport.gateway.server import (  # type: ignore[import-not-found,unused-ignore]
            ProxyServer,
        )
    except ImportError:
        from homeport.daemon.httpd import ControlServer

        log.warning("homeport.gateway.server is missing: serving the control API only")
        return ControlServer(app), "control-only"
    tls = _tls_context(config)
    proxy = ProxyServer(
        ProxyConfig(https_only=config.https_only and tls is not None),
        control=app,
        access_sink=writer.sink,
        service_status=gateway.status_lookup,
        tls=tls,
    )
    return proxy, "proxy"


def _build(kind: str) -> str:
    """``mypyc`` or ``python`` (``homeport.gateway.build``); ``none`` without the proxy."""
    if kind != "proxy":
        return "none"
    from homeport.gateway import build

    return build()


def _tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    """The gateway's TLS context from the local CA (``homeport.tls``), so ``https://`` works
    on the same port. A CA that cannot be loaded or made (an unwritable state dir, a damaged
    key) leaves the gateway plain-HTTP only, said in the log; ``--https-only`` then fails."""
    from homeport.tls import server_context

    try:
        context: ssl.SSLContext = server_context(config.state_dir)
    except (OSError, ValueError) as exc:
        if config.https_only:
            raise DaemonError(f"--https-only needs TLS, and the local CA failed: {exc}") from exc
        log.warning("https is off: the local CA could not be loaded (%s)", exc)
        return None
    return context


async def _start(
    server: Any, config: DaemonConfig, *, reuse_port: bool = False
) -> list[tuple[str, int]]:
    listen = [a for a in config.listen if a[0] != "::1" or _ipv6_loopback()]
    try:
        if config.workers > 1 and reuse_port:
            return list(await server.start(listen, reuse_port=True))
        return list(await server.start(listen))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DaemonError(
                f"port {config.port} is already in use",
                hint=f"homeport who {config.port} shows who holds it; or use --port",
            ) from exc
        if exc.errno == errno.EACCES:
            raise DaemonError(
                f"no permission to listen on port {config.port}",
                hint="homeport doctor says how to allow low ports",
            ) from exc
        raise DaemonError(f"cannot listen on port {config.port}: {exc.strerror}") from exc


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _write_info(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
