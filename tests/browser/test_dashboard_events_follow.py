"""``homeport events -f`` against a real daemon: an exposed listener arrives as an alert."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

READ_TIMEOUT = 30.0  # generous for a loaded machine; the test ends at the alert it waits for


def _lines(proc: subprocess.Popen[bytes], deadline: float, port: int) -> list[dict[str, Any]]:
    """Events until the alert for ``port``: other tests' listeners alert on the same machine."""
    assert proc.stdout is not None
    out: list[dict[str, Any]] = []
    buf = b""
    while time.monotonic() < deadline:
        ready = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        *done, buf = buf.split(b"\n")
        out.extend(json.loads(x) for x in done if x)
        if any(e["data"].get("alert") and e["data"].get("port") == port for e in out):
            break
    return out


def test_follow_prints_an_alert_for_a_wildcard_listener(daemon: Any) -> None:
    daemon.wait_sampled()
    env = {**os.environ, "HOMEPORT_STATE_DIR": str(daemon.state_dir),
           "HOMEPORT_PORT": str(daemon.port)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "events", "-f", "--json", "--alerts"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        got = _lines(proc, time.monotonic() + READ_TIMEOUT, port)
        alerts = [e for e in got if e["data"].get("port") == port]
        assert alerts, f"no alert for 0.0.0.0:{port} in {got}"
        assert alerts[0]["kind"] == "listener-appeared"
        assert alerts[0]["data"]["exposure"] == "all-interfaces"
    finally:
        s.close()
        os.killpg(proc.pid, 15)
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
