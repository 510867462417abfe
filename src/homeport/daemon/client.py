"""The CLI's client to the daemon: stdlib ``http.client`` over loopback with the token file.

It speaks to ``127.0.0.1:PORT`` with ``Host: homeport.localhost:PORT``; the port comes from the
running daemon's ``daemon.json``, else from ``DaemonConfig`` (``HOMEPORT_PORT`` or 62893).
Errors map back to homeport's tree: 400 -> UsageError, 404 -> NotFound, anything else that is
not 2xx -> DaemonError, each with the daemon's own message.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import read_info, start_background
from homeport.errors import DaemonError, HomeportError, NotFound, NotReady, UsageError

STARTED_BY_OTHER_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Client:
    config: DaemonConfig
    port: int
    token: str | None
    timeout: float = 10.0

    @classmethod
    def for_config(cls, config: DaemonConfig) -> Client:
        info = read_info(config) or {}
        port = info.get("port") if isinstance(info.get("port"), int) else config.port
        try:
            token: str | None = config.token_path.read_text().strip()
        except OSError:
            token = None
        return cls(config, int(port or config.port), token)

    @property
    def url(self) -> str:
        return f"http://homeport.localhost:{self.port}"

    def health(self) -> dict[str, Any] | None:
        """The daemon's ``/api/health``, or None when nothing homeport answers."""
        try:
            status, data = self._call("GET", "/api/health", None, timeout=2.0)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        return data if status == 200 and data.get("service") == "homeport" else None

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **query: str | int | None
    ) -> dict[str, Any]:
        q = {k: str(v) for k, v in query.items() if v is not None}
        full = f"{path}?{urlencode(q)}" if q else path
        try:
            status, data = self._call(method, full, body, timeout=self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonError(
                f"cannot reach the homeport daemon at {self.url}: {exc}",
                hint="homeport up starts it",
            ) from exc
        except ValueError as exc:
            raise DaemonError(f"{self.url} did not answer JSON; is it homeport?") from exc
        if 200 <= status < 300:
            return data
        raise _error(status, data)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Host": f"homeport.localhost:{self.port}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return resp.status, data


def _error(status: int, data: dict[str, Any]) -> HomeportError:
    message = str(data.get("error") or f"the daemon answered {status}")
    hint = data.get("hint") if isinstance(data.get("hint"), str) else None
    if status == 400:
        return UsageError(message, hint=hint)
    if status == 404:
        return NotFound(message, hint=hint)
    return DaemonError(message, hint=hint)


def connect(config: DaemonConfig | None = None, *, start: bool = False) -> Client:
    """A client to a live daemon; with ``start``, start one in the background when none runs."""
    config = config or DaemonConfig.build()
    client = Client.for_config(config)
    if client.health() is not None:
        return client
    if not start:
        raise DaemonError(
            f"the homeport daemon is not running ({client.url})", hint="homeport up -d starts it"
        )
    try:
        start_background(config)
    except DaemonError as exc:
        if "already running" not in exc.message:
            raise
        return _wait_for_other(config)  # another CLI started it a moment ago
    return Client.for_config(config)


def _wait_for_other(config: DaemonConfig) -> Client:
    deadline = time.monotonic() + STARTED_BY_OTHER_WAIT
    while time.monotonic() < deadline:
        client = Client.for_config(config)
        if client.health() is not None:
            return client
        time.sleep(0.1)  # the other starter's daemon has the lock but is not listening yet
    raise DaemonError("a daemon holds the lock but does not answer", hint="homeport status")


def lock_held(config: DaemonConfig) -> bool:
    """True while some process holds the daemon lock (the kernel frees it when that dies)."""
    try:
        fd = os.open(config.lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our lock if we got it
    return False


def stop_daemon(client: Client, timeout: float = 10.0) -> int | None:
    """Stop the running daemon; its pid, or None when none ran. Raises NotReady on a hang."""
    info = read_info(client.config) or {}
    health = client.health()
    pid = health.get("pid") if health else info.get("pid")
    if not isinstance(pid, int) or not lock_held(client.config):
        return None
    if health is not None:
        client.call("POST", "/api/shutdown")
    else:  # holds the lock but does not answer: ask the process itself
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    _wait_exit(pid, timeout)  # the daemon is not our child, but a pidfd still says when it exits
    while lock_held(client.config):
        if time.monotonic() > deadline:
            raise NotReady(
                f"the daemon (pid {pid}) did not stop within {timeout:g}s",
                hint=f"kill -9 {pid} ends it; routes are kept",
            )
        time.sleep(0.05)  # only without pidfd (Linux < 5.3): the lock frees at its exit
    return pid


def _wait_exit(pid: int, timeout: float) -> None:
    """Block until ``pid`` exits (its pidfd turns readable) or ``timeout`` passes; return at
    once where pidfds are not available."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(int(timeout * 1000))
    finally:
        os.close(fd)
