"""Support for the project tests: a private daemon, the real ``homeport`` CLI as a process,
small real servers as services, and the process inventory of a stack."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from homeport.daemon.client import Client, stop_daemon
from homeport.daemon.config import DaemonConfig

#: A tiny HTTP server on $PORT that answers /health and echoes its environment's MARK.
SERVER = textwrap.dedent(
    """
    import http.server, os, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = os.environ.get("MARK", "").encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
    print("listening on", srv.server_address[1], flush=True)
    srv.serve_forever()
    """
)


@dataclass
class Homeport:
    """The CLI run as a real process against a private state dir and gateway port."""

    root: Path
    state: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOMEPORT_STATE_DIR": str(self.state),
            "HOMEPORT_PORT": str(self.port),
            "NO_COLOR": "1",
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "homeport", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"homeport {' '.join(args)} -> {done.returncode}: {done.stderr}")
        return done

    def json(self, *args: str, check: bool = True) -> dict[str, Any]:
        done = self.run(*args, "--json", check=check)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def ps(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.json("ps", check=False)["project"]["services"]}

    def write(self, toml: str, **files: str) -> None:
        (self.root / "homeport.toml").write_text(textwrap.dedent(toml))
        for name, text in files.items():
            (self.root / name).write_text(textwrap.dedent(text))

    @property
    def config(self) -> DaemonConfig:
        old = {k: os.environ.get(k) for k in ("HOMEPORT_STATE_DIR", "HOMEPORT_PORT")}
        os.environ.update(HOMEPORT_STATE_DIR=str(self.state), HOMEPORT_PORT=str(self.port))
        try:
            return DaemonConfig.build()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def daemon_pid(self) -> int | None:
        try:
            return int(json.loads((self.state / "daemon.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def stop_daemon(self) -> None:
        """Stop this test's daemon: through its API, then by PID if it is still there (a
        daemon left running was seen once under load; SIGTERM lets it stop its services)."""
        pid = self.daemon_pid()
        with contextlib.suppress(Exception):
            stop_daemon(Client.for_config(self.config), timeout=30)
        if pid is None or not alive({pid}):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while alive({pid}) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded: waiting for the daemon to exit
        if alive({pid}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def homeport_in(root: Path, state: Path, port: int) -> Iterator[Homeport]:
    state.mkdir(mode=0o700, exist_ok=True)
    hp = Homeport(root, state, port)
    try:
        yield hp
    finally:
        hp.stop_daemon()


def stack_pids(services: dict[str, dict[str, Any]]) -> set[int]:
    """Every live process of the services: their process groups and their leaders'
    descendants (the inventory by PID)."""
    groups = {s["pid"] for s in services.values() if s.get("pid")}
    out = set()
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(p.pid) in groups and p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
    for pid in groups:  # and what left the group (setsid) but descends from its leader
        with contextlib.suppress(psutil.Error):
            out |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
    return alive(out)


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (a zombie runs nothing and holds no port)."""
    out = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
    return out


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    """GET through 127.0.0.1:``port`` with ``Host: host`` (the gateway, or a service)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_for(cond: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``cond`` until truthy (bounded): the daemon signals nothing a test can wait on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")
