"""The CLI's client to the daemon: one HTTP/1.1 exchange per call over loopback, with the
token file. A few lines of HTTP over a socket rather than ``http.client``, whose import
(email, ssl) cost ~30 ms of every ``homeport run``, ``route`` and ``status``; the daemon is
the only server it talks to, and it answers with Content-Length (chunked is read too).

It speaks to ``127.0.0.1:PORT`` with ``Host: homeport.localhost:PORT``; the port comes from the
running daemon's ``daemon.json``, else from ``DaemonConfig`` (``HOMEPORT_PORT`` or 62893).
Errors map back to homeport's tree: 400 -> UsageError, 404 -> NotFound, anything else that is
not 2xx -> DaemonError, each with the daemon's own message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
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
        from homeport.addr import http_url

        return http_url("homeport.localhost", self.port)

    def health(self) -> dict[str, Any] | None:
        """The daemon's ``/api/health``, or None when nothing homeport answers."""
        try:
            status, data = self._call("GET", "/api/health", None, timeout=2.0)
        except (OSError, ValueError):
            return None
        return data if status == 200 and data.get("service") == "homeport" else None

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **query: str | int | None
    ) -> dict[str, Any]:
        q = {k: str(v) for k, v in query.items() if v is not None}
        full = f"{path}?{urlencode(q)}" if q else path
        try:
            status, data = self._call(method, full, body, timeout=self.timeout)
        except OSError as exc:
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
        headers = {"Host": f"homeport.localhost:{self.port}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, raw = exchange(self.port, method, path, headers, payload, timeout)
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return status, data


def exchange(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes, timeout: float
) -> tuple[int, bytes]:
    """One request to ``127.0.0.1:port`` with ``Connection: close``; (status, body).
    Raises OSError when it cannot be sent or read, ValueError on a malformed response."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return parse_response(b"".join(chunks))


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.1 response read to EOF (RFC 9112 §6.3: chunked,
    else Content-Length, else up to the close)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.1 response: {status_line[:60]!r}")
    named = {}
    for line in fields:
        name, _, value = line.partition(b":")
        named[name.strip().lower()] = value.strip()
    if named.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
        return int(parts[1]), _dechunk(rest)
    if b"content-length" in named:
        length = int(named[b"content-length"])
        if len(rest) < length:
            raise ValueError(f"response cut short: {len(rest)} of {length} bytes")
        return int(parts[1]), rest[:length]
    return int(parts[1]), rest


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError("chunked body cut short")
        size = int(data[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = eol + 2
        if len(data) < start + size + 2:
            raise ValueError("chunked body cut short")
        out.append(data[start : start + size])
        pos = start + size + 2


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
