"""The issue's acceptance check end to end: the real daemon (``homeport up``), its local CA
trusted by ``homeport trust`` in a temporary HOME's NSS database, and real Chromium:
``https://app.localhost:PORT`` loads with no certificate interstitial, over HTTP/2
(``nextHopProtocol == "h2"``), and ``http://`` on the same port still answers; after
``homeport trust --uninstall`` Chromium refuses the page."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Daemon
from tests.integration.gateway_support import backend

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.skipif(shutil.which("certutil") is None, reason="certutil (libnss3-tools) absent"),
]

Cli = Callable[..., Any]


@pytest.fixture
def app_route(daemon: Daemon) -> Iterator[int]:
    with backend() as (port, _state):
        body = {"name": "app", "target": f"127.0.0.1:{port}"}
        r = daemon.api("POST", "/api/routes", json=body)
        assert r.status_code in (200, 201), r.text
        yield port


def visit(home: Path, profile: Path, port: int) -> list[tuple[str | None, str | None]]:
    """(error, nextHopProtocol) for the https and the http URL, in a Chromium with HOME."""
    from playwright.sync_api import Error, sync_playwright

    urls = [f"https://app.localhost:{port}/page", f"http://app.localhost:{port}/page"]
    rules = f"--host-resolver-rules=MAP app.localhost:{port} 127.0.0.1:{port}"
    out: list[tuple[str | None, str | None]] = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, rules],
            env={**os.environ, "HOME": str(home)},
        )
        try:
            page = ctx.new_page()
            for url in urls:
                try:
                    page.goto(url, timeout=60_000)
                except Error as exc:
                    out.append((str(exc), None))
                    continue
                protocol = page.evaluate(
                    "performance.getEntriesByType('navigation')[0].nextHopProtocol"
                )
                out.append((None, str(protocol)))
        finally:
            ctx.close()
    return out


def test_https_over_h2_through_the_daemon_once_trusted(
    daemon: Daemon, app_route: int, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    sysd = tmp_path / "sys"
    sysd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # Chromium on Linux reads NSS, not the system store: point that one at a throwaway dir.
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_DIR", str(sysd))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_UPDATE", "true")
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(sysd / "bundle.pem"))

    assert "nss:chromium" in cli("trust").stdout
    (https_error, https_proto), (http_error, http_proto) = visit(
        home, tmp_path / "profile-1", daemon.port
    )
    assert https_error is None, https_error
    assert https_proto == "h2"
    assert http_error is None, http_error
    assert http_proto == "http/1.1"  # the same port, plain

    assert cli("trust", "--uninstall").status == 0
    (https_error, _), _ = visit(home, tmp_path / "profile-2", daemon.port)
    assert https_error is not None
    assert "ERR_CERT_AUTHORITY_INVALID" in https_error


def test_dashboard_live_over_h2(
    daemon: Daemon, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard (its login link, its event stream) works the same over https and h2."""
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_DIR", str(tmp_path))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_UPDATE", "true")
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(tmp_path / "bundle.pem"))
    assert "nss:chromium" in cli("trust").stdout
    code = daemon.login_url().split("token=", 1)[1]
    url = f"https://homeport.localhost:{daemon.port}/login?token={code}"
    rules = f"--host-resolver-rules=MAP homeport.localhost:{daemon.port} 127.0.0.1:{daemon.port}"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, rules],
            env={**os.environ, "HOME": str(home)},
        )
        try:
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector("#app:not([hidden])")
            page.wait_for_selector("#conn.live")  # the event stream is open
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
        finally:
            ctx.close()
    assert protocol == "h2"
    # The access log records it so (written by the daemon's batcher: wait, bounded).
    deadline = time.monotonic() + 20
    while True:
        records = daemon.api("GET", "/api/access?limit=500").json()["records"]
        h2 = [r for r in records if r["protocol"] == "h2" and r["tls"]]
        if any(r["path"] == "/login" for r in h2) or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # the writer commits in batches; no push for "committed"
    assert any(r["path"] == "/login" for r in h2), [r["path"] for r in records]
