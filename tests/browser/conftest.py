"""Fixtures for the dashboard's browser tests: a real daemon and a real Chromium.

- ``daemon``: ``python -m homeport up --port P`` (the real gateway with the dashboard mounted)
  in its own session, on a leased free port, with a private state dir; ready when it writes
  ``ready {json}`` on the pipe given as ``--ready-fd``. Stopped by process group.
- ``browser``: Debian's ``/usr/bin/chromium`` driven by Playwright, headless, with a fresh
  user-data dir per test (cookies are per host, not per port: tests must not share them).
- ``page``: a 1280x800 page logged in through a one-time login link, as ``homeport open`` does.

Screenshots go to ``test-artifacts/screenshots/`` (printed by ``shot``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

# Generous waits for a loaded 2-core machine; the 2 s promise is checked where it is made.
expect.set_options(timeout=20_000)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "screenshots"
READY_TIMEOUT = 30.0


@dataclass
class Daemon:
    port: int
    pid: int
    state_dir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A control API call as the CLI makes it (Host: homeport.localhost, bearer token)."""
        headers = {
            "host": f"homeport.localhost:{self.port}",
            "authorization": f"Bearer {self.token}",
        }
        headers.update(kw.pop("headers", {}))
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def wait_sampled(self, timeout: float = 20.0) -> None:
        """Until the sampler has its baseline: a listener opened before it is no event."""
        deadline = time.monotonic() + timeout
        while self.api("GET", "/api/listeners").json()["samples"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no inventory sample within {timeout}s")
            time.sleep(0.05)  # the daemon offers no push for "first sample done"

    def login_url(self) -> str:
        code = self.api("POST", "/api/login-links").json()["url"].split("token=", 1)[1]
        return f"{self.base}/login?token={code}"


def _read_ready(fd: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"daemon not ready after {READY_TIMEOUT}s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"daemon exited early (status {proc.poll()})")
        buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    if not line.startswith("ready "):
        raise RuntimeError(f"daemon failed: {line}")
    info: dict[str, Any] = json.loads(line[6:])
    return info


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture
def daemon(state_dir: Path, free_port: int, tmp_path: Path) -> Iterator[Daemon]:
    r, w = os.pipe()
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "up", "--port", str(free_port), "--ready-fd", str(w)],
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HOMEPORT_STATE_DIR": str(state_dir)},
    )
    os.close(w)
    try:
        _read_ready(r, proc)
        yield Daemon(free_port, proc.pid, state_dir)
    finally:
        os.close(r)
        stop_group(proc)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(browser: Any, daemon: Daemon) -> Any:
    """A page logged in with a one-time link, the dashboard live and its first sample shown."""
    pg = browser.new_page()
    pg.set_default_timeout(60_000)  # a loaded 2-core machine; no promise is timed here
    pg.goto(daemon.login_url())
    pg.wait_for_selector("#app:not([hidden])")
    pg.wait_for_selector("#conn.live")
    expect(pg.locator("#l-body [role=row]").first).to_be_attached()
    return pg


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    def take(pg: Any, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        pg.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path

    return take
